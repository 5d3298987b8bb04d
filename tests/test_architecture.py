"""The package's structure: no private names cross modules, and each registry is the one
list its readers use (config validation, the command lines). The layers themselves (every
import points down, no circles) are checked by ``make lint`` (setup.cfg, [importlinter])."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = [ROOT / folder for folder in ("cxr_keras", "tests", "benchmarks", "tools")]


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cxr_keras"):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_module_imports_a_private_name_of_another():
    files = [path for folder in CODE for path in sorted(folder.rglob("*.py"))]
    assert len(files) > 80
    offenders = [hit for path in files for hit in _private_imports(path)]
    assert offenders == []


def test_the_private_import_check_sees_one(tmp_path):
    probe = ROOT / "tests" / "_probe_private_import.py"
    probe.write_text("def f():\n    from cxr_keras.data.io import _decodes\n")
    try:
        assert _private_imports(probe) == [
            "tests/_probe_private_import.py:2 cxr_keras.data.io._decodes"
        ]
    finally:
        probe.unlink()


def _choices(cls: type, field: str) -> tuple:
    return typing.get_args(typing.get_type_hints(cls)[field])


def test_backbone_choices_are_the_backbone_registry():
    from cxr_keras.config import ModelConfig
    from cxr_keras.models.backbones import BACKBONES

    assert _choices(ModelConfig, "backbone") == tuple(BACKBONES)
    assert "resnet50" in BACKBONES and "custom_cnn" in BACKBONES


def test_data_sources_are_the_generic_sources_and_the_dataset_registry():
    from cxr_keras.config import DataConfig
    from cxr_keras.data.adapters import DATASETS
    from cxr_keras.data.download import DOWNLOADS
    from cxr_keras.data.settings import GENERIC_SOURCES

    assert set(_choices(DataConfig, "source")) == set(GENERIC_SOURCES) | set(DATASETS)
    assert {download.adapter for download in DOWNLOADS.values()} <= set(DATASETS)


@pytest.mark.parametrize("name", ["kermany", "nih", "chexpert", "rsna"])
def test_each_named_dataset_has_its_own_adapter_module(name):
    from cxr_keras.data.adapters import DATASETS

    assert DATASETS[name].__module__ == f"cxr_keras.data.adapters.{name}"


def test_metric_names_are_the_registry_the_renderers_read():
    import numpy as np

    from cxr_keras.core.result_names import COUNTS, RANKING_METRICS, THRESHOLD_METRICS
    from cxr_keras.evaluation.metrics import discrimination, threshold_metrics

    y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.4], [0.6], [0.8], [0.1]])
    at = threshold_metrics(y[:, 0], p[:, 0], 0.5)
    assert set(at) == {"threshold", *COUNTS, *THRESHOLD_METRICS}
    per_label = discrimination(y, p, mask=np.ones_like(y), labels=["A"], n_resamples=20)["labels"][
        "A"
    ]
    assert set(RANKING_METRICS) <= set(per_label)


def test_threshold_rules_are_the_rule_registry():
    import numpy as np

    from cxr_keras.core.result_names import (
        THRESHOLD_RULES,
        check_decision_rule,
        rule_names,
        stressed_rule_names,
    )
    from cxr_keras.evaluation.operating_points import choose_thresholds

    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.4], [0.6]])
    table, _ = choose_thresholds(y, p, mask=np.ones_like(y), labels=["A"], min_sensitivity=0.9)
    assert list(table) == rule_names(0.9) == ["youden", "f1_max", "sensitivity_0.9"]
    stressed = stressed_rule_names(0.9)
    assert all(check_decision_rule(name) == name for name in [*table, *stressed, "default"])
    names = {name.replace("_0.9", "") for name in [*table, *stressed]} | {"default"}
    assert names == set(THRESHOLD_RULES)
    for typo in ("yuoden", "sensitivity", "sensitivity_1.5", "f1", "sensitivity_stressed"):
        with pytest.raises(ValueError, match="one of default, youden, f1_max"):
            check_decision_rule(typo)


def test_evaluate_refuses_a_misspelt_decision_rule_before_loading_a_model(tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [
            *(sys.executable, "-m", "cxr_keras.evaluate", "--model", str(tmp_path / "none")),
            *("--decision-rule", "yuoden"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "decision rule 'yuoden': one of default, youden, f1_max" in run.stderr
    assert "artifact" not in run.stderr  # refused before looking for the model


def _signatures(path: Path):
    """(name, positional, keyword-only) of the public functions and public methods of
    public classes at the top of a module."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        members = [(node, "")] if isinstance(node, ast.FunctionDef) else []
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            members = [(m, f"{node.name}.") for m in node.body if isinstance(m, ast.FunctionDef)]
        for function, owner in members:
            if function.name.startswith("_"):
                continue
            args = function.args
            positional = [
                a.arg for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")
            ]
            yield f"{owner}{function.name}", positional, [a.arg for a in args.kwonlyargs]


def test_public_functions_take_their_later_parameters_by_keyword():
    """More than three parameters: at most the first three positional (data arrays such
    as ``y, p`` or ``model, images``), the rest keyword-only."""
    offenders = [
        f"{path.relative_to(ROOT)}: {name}{tuple(positional)}"
        for path in sorted((ROOT / "cxr_keras").rglob("*.py"))
        for name, positional, keywords in _signatures(path)
        if len(positional) + len(keywords) > 3 and len(positional) > 3
    ]
    assert offenders == []


def test_reading_a_config_and_every_command_line_loads_no_tensorflow():
    """--help, config errors and the start of an isolated trial (which must follow its
    tuner's death before TensorFlow loads) stay light: the package __init__s re-export
    lazily."""
    import subprocess
    import sys

    stages = ["train", "tune", "evaluate", "compare", "explain", "predict", "app", "export"]
    others = ["datasets", "shard", "model_card", "recipe", "config", "cli"]
    commands = ", ".join(f"cxr_keras.{name}" for name in [*stages, *others])
    script = (
        f"import sys, {commands}\n"
        "heavy = sorted({'tensorflow', 'keras', 'sklearn'} & set(sys.modules))\n"
        "print(heavy)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout") :].split("\n## ", 1)[0]
    modules = [p for p in sorted((ROOT / "cxr_keras").rglob("*.py")) if p.stem != "__init__"]
    folders = {p.parent.name for p in modules if p.parent.name != "cxr_keras"}
    assert [p.name for p in modules if p.stem not in layout] == []
    assert [f for f in sorted(folders) if f"{f}/" not in layout] == []
