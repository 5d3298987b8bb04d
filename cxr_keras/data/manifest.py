"""The manifest: one pandas DataFrame row per image, the contract between data stages.

Columns: ``path`` (absolute), one float column per label (1.0 positive, 0.0 negative, NaN
ignored, e.g. an uncertain CheXpert label under the ``ignore`` policy), ``patient_id``,
``view``, and optionally ``split`` and source-specific extras (age, sex, subtype, ...).

Two facts travel in ``DataFrame.attrs``: ``labels`` (the label columns, in model output
order) and ``skipped`` (files left out, each with a short code and the reason), so every
stage can report what it dropped instead of losing it silently.

Example:
    >>> df = new_manifest([{"path": "/a.png", "PNEUMONIA": 1.0, "patient_id": "p1"}],
    ...                   labels=["PNEUMONIA"])
    >>> manifest_labels(df), len(skipped_files(df))
    (['PNEUMONIA'], 0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "Skip",
    "add_skipped",
    "check_manifest",
    "manifest_labels",
    "new_manifest",
    "read_manifest",
    "save_manifest",
    "skipped_files",
    "skipped_summary",
]

Skip = tuple[str, str, str]  # (path, code, reason)
_BASE_COLUMNS = ("path", "patient_id", "view")


def new_manifest(
    rows: Iterable[dict] | pd.DataFrame, labels: list[str], skipped: Iterable[Skip] = ()
) -> pd.DataFrame:
    """Build a manifest from rows, putting ``path``, labels, patient and view first."""
    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for col in _BASE_COLUMNS:
        if col not in df.columns:
            df[col] = None
    for label in labels:
        df[label] = df[label].astype(float) if label in df.columns else np.nan
    extras = [c for c in df.columns if c not in (*_BASE_COLUMNS, *labels)]
    df = df[["path", *labels, "patient_id", "view", *extras]].reset_index(drop=True)
    df["path"] = df["path"].astype(str)
    # Ids are text (NIH 75 and "75" are one patient); an image without one is its own.
    missing = df["patient_id"].isna() | (df["patient_id"].astype(str).str.strip() == "")
    df["patient_id"] = [
        f"image:{path}" if gone else str(pid).strip()
        for path, pid, gone in zip(df["path"], df["patient_id"], missing, strict=True)
    ]
    df["patient_id"] = df["patient_id"].astype(object)
    df.attrs["labels"] = list(labels)
    df.attrs["skipped"] = list(skipped)
    return df


def manifest_labels(df: pd.DataFrame) -> list[str]:
    """The label columns of a manifest, in model output order."""
    labels = df.attrs.get("labels")
    if not labels:
        raise ValueError(
            "this DataFrame carries no label list (attrs['labels']); build it with "
            "a cxr_keras.data source or new_manifest(rows, labels=...)"
        )
    return list(labels)


def add_skipped(df: pd.DataFrame, records: Iterable[Skip]) -> pd.DataFrame:
    """Record more skipped files on a manifest (in place) and return it."""
    df.attrs["skipped"] = [*df.attrs.get("skipped", []), *records]
    return df


def skipped_files(df: pd.DataFrame) -> pd.DataFrame:
    """The files left out of a manifest so far: columns path, code, reason."""
    return pd.DataFrame(df.attrs.get("skipped", []), columns=["path", "code", "reason"])


def skipped_summary(df: pd.DataFrame) -> dict[str, int]:
    """How many files were left out, per reason code.

    Example:
        >>> df = new_manifest([], labels=["A"], skipped=[("x.png", "empty", "empty file")])
        >>> skipped_summary(df)
        {'empty': 1}
    """
    counts = skipped_files(df)["code"].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def check_manifest(df: pd.DataFrame, labels: list[str] | None = None) -> list[str]:
    """Check the manifest contract; return the labels. Raises ``ValueError`` on violations."""
    labels = labels or manifest_labels(df)
    missing = [c for c in ("path", "patient_id", *labels) if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}; has {list(df.columns)}")
    values = df[labels].to_numpy(dtype=float)
    bad = ~np.isnan(values) & (values != 0.0) & (values != 1.0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{df['path'].iloc[row]}: label {labels[col]} is {values[row, col]}, "
            "expected 1, 0 or NaN (ignored)"
        )
    dupes = df["path"][df["path"].duplicated()]
    if len(dupes):
        raise ValueError(f"{dupes.iloc[0]}: listed more than once in the manifest")
    return labels


def save_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a manifest as CSV plus a ``.json`` sidecar with its labels, skipped files and
    notes, so :func:`read_manifest` gets back exactly what was saved."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    sidecar = {
        "labels": manifest_labels(df),
        "skipped": [list(s) for s in df.attrs.get("skipped", [])],
        "notes": list(df.attrs.get("notes", [])),
    }
    if "shards" in df.attrs:  # a shard-backed manifest reads its images from the shards
        sidecar["shards"] = df.attrs["shards"]
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    return path


def read_manifest(path: str | os.PathLike, labels: list[str] | None = None) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`save_manifest` (or any CSV with ``path``,
    ``patient_id`` and label columns, naming ``labels``).

    Example:
        >>> import tempfile, os
        >>> df = new_manifest([{"path": "/a.png", "A": 1.0, "patient_id": 7}], labels=["A"])
        >>> out = save_manifest(df, os.path.join(tempfile.mkdtemp(), "m.csv"))
        >>> back = read_manifest(out)
        >>> manifest_labels(back), back["patient_id"].tolist()
        (['A'], ['7'])
    """
    path = Path(path)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    labels = labels or meta.get("labels")
    if not labels:
        raise ValueError(f"{path}: no label list (no {sidecar.name} sidecar); pass labels=[...]")
    try:
        table = pd.read_csv(path, dtype={"patient_id": str, "path": str})
    except FileNotFoundError:
        raise ValueError(f"{path}: manifest not found") from None
    df = new_manifest(table, labels, [tuple(s) for s in meta.get("skipped", [])])
    df.attrs["notes"] = list(meta.get("notes", []))
    if "shards" in meta:
        df.attrs["shards"] = meta["shards"]
    check_manifest(df, labels)
    return df
