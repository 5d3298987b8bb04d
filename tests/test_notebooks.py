"""The notebooks in notebooks/ run top to bottom on the bundled sample (in a scratch
folder) and are committed without outputs."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert names == ["01_dataset_exploration", "02_train_and_evaluate", "03_explanations"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), (
        f"{path.name}: commit notebooks without outputs"
    )
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count for c in code)
