"""cxr-keras as a user installs it: a wheel in a fresh virtualenv, used outside the checkout
through the ``cxr-keras`` command, with its recipes and shipped model inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from cxr_keras import __version__
from cxr_keras.sample_data import sample_files
from tests.conftest import REPO, copy_source


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> dict:
    """The wheel built from a copy of the source (no build folder in the checkout),
    installed with ``--no-deps`` in a fresh virtualenv. Its dependencies are this test
    environment's (a ``.pth`` line adds its site-packages after the venv's own, so the
    wheel's cxr_keras is the one imported): the pinned TensorFlow is not downloaded again."""
    where = tmp_path_factory.mktemp("package")
    source = copy_source(where / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", where / "dist", f"{source}/"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((where / "dist").glob("cxr_keras-*.whl"))
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {"wheel": wheel, "python": python, "bin": where / "venv" / "bin", "env": env}


def _run(install: dict, *args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [install["bin"] / "cxr-keras", *map(str, args)],
        cwd=cwd,
        env={**install["env"], "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_wheel_holds_the_recipes_the_shipped_model_and_the_command(wheel_install):
    names = zipfile.ZipFile(wheel_install["wheel"]).namelist()
    for recipe in ("demo", "kermany_resnet50_tuned", "nih14_resnet50_lse"):
        assert f"cxr_keras/recipes/{recipe}.yaml" in names
    shipped = "cxr_keras/pretrained/kermany_pneumonia/"
    for part in ("model.keras", "cxr_model.json", "ood.npz", "MODEL_CARD.md"):
        assert shipped + part in names
    assert shipped + "export/onnx/model.onnx" in names
    assert shipped + "export/litert/model.tflite" in names
    assert any(n.startswith("cxr_keras/sample_data/kermany/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel_install["wheel"]).read(entry_points).decode()
    assert "cxr-keras = cxr_keras.__main__:main" in text
    # the [app] extra resolves against the pinned versions, without any download
    pip = [wheel_install["python"], "-m", "pip", "install", "--dry-run", "--no-index", "--quiet"]
    constraints = REPO / "requirements" / "constraints.txt"
    dry = subprocess.run(
        [*pip, "--constraint", constraints, f"{wheel_install['wheel']}[app]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]


def test_the_installed_command_predicts_with_the_shipped_model_and_trains_a_recipe(
    wheel_install, tmp_path
):
    version = _run(wheel_install, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"cxr-keras {__version__}"
    where = subprocess.run(
        [wheel_install["python"], "-c", "import cxr_keras; print(cxr_keras.__file__)"],
        cwd=tmp_path,
        env=wheel_install["env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(wheel_install["bin"].parent)), where  # the wheel's copy

    film = sample_files("kermany")[0]
    run = _run(
        wheel_install,
        "predict",
        "--model",
        "kermany_pneumonia",
        "--out",
        "answers",
        film,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = pd.read_csv(tmp_path / "answers" / "predictions.csv")
    assert len(answers) == 1 and answers["decision"][0] in ("PNEUMONIA", "negative")
    assert "failed call to cuInit" not in run.stderr and "oneDNN" not in run.stderr

    run = _run(wheel_install, "train", "--recipe", "demo", "--smoke", cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{") :])
    artifact = tmp_path / "runs" / "demo_smoke"
    assert (tmp_path / result["artifact"]).resolve() == artifact.resolve()
    assert (artifact / "model.keras").is_file()
    meta = json.loads((artifact / "cxr_model.json").read_text())
    assert meta["image_spec"]["size"] == [64, 64]  # the smoke settings
    assert any("validation split has" in note for note in meta["data"]["summary"]["notes"])
