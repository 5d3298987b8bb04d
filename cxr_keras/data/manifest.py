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

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "Skip",
    "add_skipped",
    "check_manifest",
    "manifest_labels",
    "new_manifest",
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
