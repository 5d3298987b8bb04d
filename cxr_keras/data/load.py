"""The one entry from a run's data settings to a manifest: read the configured source
(generic or a named dataset), map labels, verify the files and split by patient.

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> from cxr_keras.data.settings import DataConfig
    >>> data = prepare_data(DataConfig(source="folder", root="sample:kermany"), ImageSpec())
    >>> sorted(data["split"].unique())
    ['train', 'val']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.paths import resolve_path
from cxr_keras.data.adapters import adapter_parameters, open_dataset
from cxr_keras.data.label_map import map_labels, source_labels
from cxr_keras.data.manifest import skipped_summary
from cxr_keras.data.settings import DataConfig
from cxr_keras.data.shard_reader import shard_source
from cxr_keras.data.sources import csv_source, dicom_source, folder_source
from cxr_keras.data.splits import assign_splits, note_small_validation
from cxr_keras.data.verify import verify_files

__all__ = ["load_manifest", "prepare_data"]


def load_manifest(data: DataConfig) -> pd.DataFrame:
    """The manifest a :class:`DataConfig` describes (paths resolved, ``sample:`` allowed).

    A list of roots (folder and dicom sources) gives one manifest of all of them, e.g.
    two packs of one dataset; their labels must agree, and a file listed twice is kept once.
    ``data.label_map`` and ``data.exclude`` then make the learned labels
    (:mod:`cxr_keras.data.label_map`).

    Example:
        >>> from cxr_keras.data.settings import DataConfig
        >>> df = load_manifest(DataConfig(source="folder", root="sample:kermany"))
        >>> len(df)
        262
    """
    requested = source_labels(data.labels, data.label_map, data.exclude)
    if isinstance(data.root, str):
        df = _load_one(data, resolve_path(data.root), requested)
    else:
        df = _load_roots(data, requested)
    if data.label_map or data.exclude:
        df = map_labels(df, label_map=data.label_map, labels=data.labels, exclude=data.exclude)
    return df


def _load_roots(data: DataConfig, labels: list[str] | None) -> pd.DataFrame:
    """One manifest of several roots of one dataset."""
    parts = [_load_one(data, resolve_path(root), labels) for root in data.root]
    labels = [part.attrs["labels"] for part in parts]
    if any(found != labels[0] for found in labels[1:]):
        raise ValueError(
            "data.root: the folders have different labels ("
            + "; ".join(f"{root}: {found}" for root, found in zip(data.root, labels, strict=True))
            + "); set data.labels or use folders of one dataset"
        )
    df = pd.concat(parts, ignore_index=True)
    before = len(df)
    df = df.drop_duplicates("path", ignore_index=True)
    df.attrs = {
        "labels": labels[0],
        "skipped": [s for part in parts for s in part.attrs.get("skipped", [])],
        "notes": [n for part in parts for n in part.attrs.get("notes", [])],
    }
    if len(df) < before:
        df.attrs["notes"].append(f"{before - len(df)} files listed under two roots kept once")
    return df


def _load_one(data: DataConfig, root: Path, labels: list[str] | None) -> pd.DataFrame:
    """The manifest of one root, with the source labels ``labels`` (None: all)."""
    csv = resolve_path(data.csv) if data.csv else None
    if data.source == "folder":
        return folder_source(
            root,
            labels=labels,
            negative_classes=data.negative_classes,
            patient_id_pattern=data.patient_id_pattern,
            patient_id_key=data.patient_id_key,
            patient_ids_per_split=data.patient_ids_per_split,
        )
    if data.source == "csv":
        return csv_source(
            csv,
            root=root,
            labels=labels,
            path_column=data.path_column,
            finding_column=data.finding_column,
            finding_separator=data.finding_separator,
            patient_column=data.patient_column,
            view_column=data.view_column,
            uncertain=data.uncertain or "zeros",
            blank=data.blank,
            patient_id_pattern=data.patient_id_pattern,
        )
    if data.source == "shards":
        return shard_source(data.root if "://" in str(data.root) else root, labels)
    if data.source == "dicom":
        return dicom_source(
            root,
            csv,
            id_column=data.id_column,
            labels=labels,
            patient_column=data.patient_column,
            patient_id_key=data.patient_id_key,
            negative_classes=data.negative_classes,
            uncertain=data.uncertain or "zeros",
            blank=data.blank,
        )
    return _load_named(data, root, csv, labels)


def _load_named(
    data: DataConfig, root: Path, csv: Path | None, labels: list[str] | None
) -> pd.DataFrame:
    """A named public dataset (:mod:`cxr_keras.data.adapters`) with the data.* keys it
    takes passed on; a key it does not take is refused rather than ignored."""
    options = dict(data.options)
    given = {"csv": csv, "labels": labels, "uncertain": data.uncertain}
    if data.blank != "zeros":
        given["blank"] = data.blank
    accepted = adapter_parameters(data.source)
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            raise ValueError(f"data.{key}: the {data.source} dataset does not take it")
        options[key] = value
    return open_dataset(data.source, root, **options)


def prepare_data(
    data: DataConfig, spec: ImageSpec, *, seed: int = 42, progress: bool = False
) -> pd.DataFrame:
    """Load the configured source, verify its files, and split it by patient.

    Returns the whole manifest with a ``split`` column; files left out are in
    ``attrs["skipped"]`` with their reasons (see :func:`skipped_summary`).
    """
    manifest = load_manifest(data)
    if "shards" not in manifest.attrs:  # shard records were decoded when written
        manifest = verify_files(manifest, spec, mode=data.verify, progress=progress)
    if len(manifest) == 0:
        raise ValueError(
            f"no usable images in {data.root} "
            f"(skipped: {skipped_summary(manifest) or 'none found'})"
        )
    return note_small_validation(assign_splits(manifest, data.split, seed))
