"""The images an evaluation scores, and the validation split its thresholds come from.

The artifact records its data config and split seed, so its own splits are rebuilt
exactly (from the run's saved manifest when it is there, which also survives a data
folder that changed since). Other data comes as a dataset config (YAML), a manifest CSV,
or a folder of class subfolders (``[split/]CLASS/image``).

Example:
    >>> from cxr_keras.artifact.store import load_artifact
    >>> artifact = load_artifact("runs/demo")  # doctest: +SKIP
    >>> evaluated, val, source = evaluation_frames(artifact, None, "test")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from cxr_keras.config import load_config
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.serialize import section_from_dict
from cxr_keras.data.manifest import check_manifest
from cxr_keras.data.settings import DataConfig

__all__ = ["artifact_manifest", "evaluation_frames", "external_manifest", "select_split"]

log = logging.getLogger(__name__)


def artifact_manifest(artifact) -> pd.DataFrame:
    """The artifact's whole split manifest (train/val/test), as training made it."""
    from cxr_keras.data import prepare_data
    from cxr_keras.data.manifest import read_manifest

    saved = Path(artifact.path) / "train" / "manifest.csv"
    if saved.is_file():
        manifest = read_manifest(saved)
        if all(Path(p).is_file() for p in manifest["path"].head(20)):
            return manifest
    data = artifact.meta.get("data") or {}
    if "config" not in data:
        raise ConfigError(f"{artifact.path}: the artifact records no data config")
    config = section_from_dict(DataConfig, data["config"], "data")
    return prepare_data(config, artifact.image_spec, seed=int(data.get("split_seed", 42)))


def select_split(manifest: pd.DataFrame, split: str, where: str) -> pd.DataFrame:
    """The rows of ``split`` (``all``: every row), attrs kept; a clear error if empty."""
    if split == "all":
        out = manifest.reset_index(drop=True)
    elif "split" not in manifest.columns or manifest["split"].isna().all():
        raise ValueError(f"{where} has no split column: evaluate it with --split all")
    else:
        out = manifest[manifest["split"] == split].reset_index(drop=True)
    if len(out) == 0:
        available = sorted(manifest["split"].dropna().unique()) if "split" in manifest else []
        raise ValueError(f"{where}: split {split!r} has no images (splits: {available or 'none'})")
    out.attrs = dict(manifest.attrs)
    return out


def external_manifest(artifact, data: str | os.PathLike) -> pd.DataFrame:
    """A manifest from a YAML dataset config, a manifest CSV, or a class-folder tree."""
    from cxr_keras.data import assign_splits, load_manifest, verify_files
    from cxr_keras.data.manifest import read_manifest

    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file or folder")
    if path.suffix.lower() in (".yaml", ".yml"):
        cfg = load_config(path)
        manifest = load_manifest(cfg.data)
        manifest = verify_files(manifest, artifact.image_spec, mode=cfg.data.verify)
        return assign_splits(manifest, cfg.data.split, cfg.seed)
    if path.suffix.lower() == ".csv":
        manifest = read_manifest(path, labels=artifact.labels)
        return verify_files(manifest, artifact.image_spec)
    if path.is_dir():
        recorded = (artifact.meta.get("data") or {}).get("config") or {}
        config = DataConfig(
            source="folder",
            root=str(path),
            labels=artifact.labels,
            negative_classes=recorded.get("negative_classes", ["NORMAL", "No Finding"]),
        )
        return verify_files(load_manifest(config), artifact.image_spec)
    raise ValueError(f"--data {path}: give a dataset config (.yaml), a manifest (.csv) or a folder")


def evaluation_frames(
    artifact, data: pd.DataFrame | str | os.PathLike | None, split: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(rows to evaluate, the artifact's validation rows or None, a sentence saying where
    they came from). Validation is None when the training data cannot be found: the
    stored thresholds and temperature are then used as they are."""
    own = val = None
    try:
        own = artifact_manifest(artifact)
    except (OSError, ValueError, ConfigError) as exc:
        log.warning("the artifact's data cannot be rebuilt (%s)", exc)
    if own is not None:
        try:
            val = select_split(own, "val", "the artifact's data")
        except ValueError as exc:
            log.warning("no validation split to choose thresholds on (%s)", exc)
    if data is None:
        if own is None:
            raise ValueError(
                f"{artifact.path}: its training data cannot be found; give --data to evaluate"
            )
        seed = (artifact.meta.get("data") or {}).get("split_seed")
        evaluated = select_split(own, split, "the artifact's data")
        source = f"the artifact's own {split!r} split (data rebuilt with split seed {seed})"
    else:
        external = (
            data.copy() if isinstance(data, pd.DataFrame) else external_manifest(artifact, data)
        )
        if isinstance(data, pd.DataFrame):
            external.attrs = dict(data.attrs)
            data = "the given manifest"
            if "patient_id" not in external.columns:  # each image its own bootstrap unit
                external["patient_id"] = [f"image:{p}" for p in external["path"]]
        missing = [label for label in artifact.labels if label not in external.columns]
        if missing:
            raise ValueError(f"--data {data}: no column for the model's labels {missing}")
        external.attrs["labels"] = artifact.labels
        check_manifest(external, artifact.labels)  # labels 0, 1 or NaN; no duplicate paths
        evaluated = select_split(external, split, f"--data {data}")
        source = f"{data} ({'all rows' if split == 'all' else f'split {split!r}'})"
    return evaluated, val, source
