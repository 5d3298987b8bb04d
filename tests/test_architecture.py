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
