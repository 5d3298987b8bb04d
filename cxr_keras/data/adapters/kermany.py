"""Kermany "Chest X-Ray Images (Pneumonia)": ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}``.

Example:
    >>> from cxr_keras.sample_data import sample_path
    >>> df = kermany_source(sample_path("kermany"))
    >>> df.attrs["labels"], sorted(df["subtype"].unique())
    (['PNEUMONIA'], ['bacteria', 'normal', 'virus'])
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cxr_keras.data.adapters.common import (
    finish_manifest,
    select_labels,
)
from cxr_keras.data.files import SPLIT_FOLDERS
from cxr_keras.data.sources import folder_source

__all__ = ["KERMANY_SUBTYPE_LABELS", "kermany_source"]

log = logging.getLogger(__name__)


_KERMANY_SUBTYPE = re.compile(r"_(bacteria|virus)_", re.IGNORECASE)


KERMANY_SUBTYPE_LABELS = ("Bacterial Pneumonia", "Viral Pneumonia")


def _kermany_layout(root: Path) -> list[tuple[str | None, Path]]:
    """(split, folder) pairs of the folder that holds the split (or class) folders.

    The Kaggle archive nests ``chest_xray/chest_xray/`` and adds ``__MACOSX``; the first
    level with split or class folders wins, and stray folders beside the splits are ignored.
    """
    for base in (root, root / "chest_xray", root / "chest_xray" / "chest_xray"):
        if not base.is_dir():
            continue
        folders = [p for p in sorted(base.iterdir()) if p.is_dir()]
        splits = [
            (SPLIT_FOLDERS[p.name.lower()], p) for p in folders if p.name.lower() in SPLIT_FOLDERS
        ]
        if splits:
            return splits
        if any(p.name.upper() in ("NORMAL", "PNEUMONIA") for p in folders):
            return [(None, base)]
    raise ValueError(
        f"{root}: not the Kermany layout: expected chest_xray/{{train,val,test}}/"
        "{NORMAL,PNEUMONIA}/ (or the class folders alone)"
    )


def kermany_source(
    root: str | os.PathLike,
    *,
    labels: Iterable[str] | None = None,
    task: str = "pneumonia",
    official_val: bool = False,
) -> pd.DataFrame:
    """Kermany et al. "Chest X-Ray Images (Pneumonia)" as Kaggle and Mendeley ship it.

    ``root``: the ``chest_xray`` folder or a folder above it (the Kaggle archive's nested
    ``chest_xray/chest_xray`` is found), or class folders alone. The official splits are
    kept; patient ids (``personN``, ``IM-NNNN``) are only unique within one official split,
    so they are prefixed with it. ``subtype`` (bacteria / virus / normal) comes from the
    file name. ``task``: ``pneumonia`` (one label ``PNEUMONIA``) or ``subtype`` (one-vs-rest
    ``Bacterial Pneumonia`` and ``Viral Pneumonia``). The official val folder holds 16
    images, too few to stop early or choose a threshold on: by default it joins train and
    a validation split is carved from the training patients (``data.split.val``);
    ``official_val=True`` keeps it as the validation split. ``labels`` picks some of the
    task's.

    Example:
        >>> from cxr_keras.sample_data import sample_path
        >>> df = kermany_source(sample_path("kermany"), task="subtype")
        >>> df.attrs["labels"]
        ['Bacterial Pneumonia', 'Viral Pneumonia']
    """
    if task not in ("pneumonia", "subtype"):
        raise ValueError(f"kermany task must be 'pneumonia' or 'subtype', got {task!r}")
    groups = _kermany_layout(Path(root).expanduser())
    parts = []
    for split, folder in groups:
        part = folder_source(folder, labels=["PNEUMONIA"], negative_classes=["NORMAL"])
        if split is not None:
            part["patient_id"] = split + "/" + part["patient_id"].astype(str)
            part["split"] = "train" if split == "val" and not official_val else split
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    skipped = [s for part in parts for s in part.attrs.get("skipped", [])]
    notes = [n for part in parts for n in part.attrs.get("notes", [])]
    names = df["path"].map(lambda p: Path(p).name)
    subtype = names.str.extract(_KERMANY_SUBTYPE, expand=False).str.lower()
    df["subtype"] = subtype.where(df["PNEUMONIA"] == 1.0, "normal")
    unknown = (df["PNEUMONIA"] == 1.0) & subtype.isna()
    df.loc[unknown, "subtype"] = "unknown"
    if unknown.any():
        notes.append(f"{int(unknown.sum())} PNEUMONIA image(s) name no subtype (bacteria/virus)")
    labels_of_task = ["PNEUMONIA"]
    if task == "subtype":
        labels_of_task = list(KERMANY_SUBTYPE_LABELS)
        df[labels_of_task[0]] = (df["subtype"] == "bacteria").astype(float)
        df[labels_of_task[1]] = (df["subtype"] == "virus").astype(float)
        unknown_rows = df.index[unknown]
        skipped += [
            (df.at[i, "path"], "bad_label", "PNEUMONIA without a subtype in its file name")
            for i in unknown_rows
        ]
        df = df.drop(index=unknown_rows).drop(columns=["PNEUMONIA"])
    chosen = select_labels(labels, labels_of_task, f"Kermany (task {task})")
    df = df.drop(columns=["class", *(c for c in labels_of_task if c not in chosen)])
    if not official_val:
        notes.append("official val folder merged into train: val is carved by patient")
    df.attrs = {}
    return finish_manifest(df.reset_index(drop=True), labels=chosen, skipped=skipped, notes=notes)
