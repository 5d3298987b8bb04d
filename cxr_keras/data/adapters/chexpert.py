"""CheXpert: ``CheXpert-v1.0[-small]/{train,valid}.csv``, with the paper's uncertainty policy."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cxr_keras.data.adapters.common import (
    finish_manifest,
    select_labels,
    split_root,
)
from cxr_keras.data.labels import CHEXPERT_LABELS, same_label
from cxr_keras.data.sources import csv_source

__all__ = ["CHEXPERT_PAPER_UNCERTAIN", "chexpert_source"]

log = logging.getLogger(__name__)


#: The CheXpert paper's best uncertainty policy per competition label (Irvin et al. 2019,
#: table 3): U-Ones for Atelectasis and Edema; every other label defaults to U-Zeros.
CHEXPERT_PAPER_UNCERTAIN = {"Atelectasis": "ones", "Edema": "ones"}


_CHEXPERT_STUDY = re.compile(r"(patient\d+)[/\\](study\d+)[/\\]")


def _chexpert_views(frontal_lateral: pd.Series, ap_pa: pd.Series) -> list[str | None]:
    """PA / AP for frontal images (``FRONTAL`` when the projection is blank), else LATERAL."""
    views = []
    for fl, proj in zip(frontal_lateral, ap_pa, strict=True):
        fl, proj = str(fl).strip().lower(), str(proj).strip().upper()
        if fl == "lateral":
            views.append("LATERAL")
        elif fl == "frontal":
            views.append(proj if proj in ("AP", "PA") else "FRONTAL")
        else:
            views.append(None)
    return views


def chexpert_source(
    root: str | os.PathLike,
    *,
    labels: Iterable[str] | None = None,
    uncertain: str | Mapping[str, str] | None = None,
    blank: str = "zeros",
    csv: str | os.PathLike | None = None,
    frontal_only: bool = False,
    valid_split: str = "val",
) -> pd.DataFrame:
    """CheXpert v1.0 (full or ``-small``): ``train.csv`` (split train) and ``valid.csv``
    (split ``valid_split``, radiologist labels without uncertainty: ``val`` by default;
    ``test`` holds it out, as the paper did, and validation is then carved from the
    training patients).

    ``root``: the ``CheXpert-v1.0[-small]`` folder, a folder above it, or one label CSV.
    Labels: the 14 observations (``labels`` picks some, e.g. the five of the competition,
    :data:`~cxr_keras.data.labels.CHEXPERT_COMPETITION_LABELS`). ``uncertain`` (-1 cells):
    one policy or a mapping label -> policy (zeros / ones / ignore); by default the paper's
    (:data:`CHEXPERT_PAPER_UNCERTAIN`: U-Ones for Atelectasis and Edema, U-Zeros for the
    rest). ``blank`` (not mentioned in the report): zeros, as in the paper. Patient and
    study come from the path; ``view`` is PA / AP / LATERAL (``FRONTAL`` where the
    projection is blank). ``frontal_only`` leaves the lateral images out.

    Example:
        >>> policy = {"Atelectasis": "ones", "Edema": "ones"}
        >>> policy == CHEXPERT_PAPER_UNCERTAIN
        True
    """
    if valid_split not in ("val", "test"):
        raise ValueError(f"chexpert valid_split must be 'val' or 'test', got {valid_split!r}")
    folder, found = split_root(root, ["train.csv"], depth=1)  # CheXpert-v1.0*/train.csv
    csvs: list[tuple[str, Path]]
    if csv is not None:
        csvs = [("train", Path(csv))]
    elif Path(root).is_file():
        csvs = [(valid_split if "valid" in Path(root).name.lower() else "train", Path(root))]
    elif found is not None:
        csvs = [("train", found)]
        if (found.parent / "valid.csv").is_file():
            csvs.append((valid_split, found.parent / "valid.csv"))
    else:
        raise ValueError(f"{folder}: no CheXpert train.csv found; pass csv=")
    labels = select_labels(labels, CHEXPERT_LABELS, "CheXpert")
    if uncertain is None:
        uncertain = {k: v for k, v in CHEXPERT_PAPER_UNCERTAIN.items() if k in labels}
        uncertain = uncertain or "zeros"
    parts = []
    for split, path in csvs:
        # Official paths start with the dataset folder's name (CheXpert-v1.0-small/train/...):
        # that part is dropped, so they resolve inside the CSV's folder whatever its name.
        part = csv_source(
            path,
            root=path.parent,
            labels=labels,
            path_column="Path",
            uncertain=uncertain,
            blank=blank,
        )
        base = os.path.abspath(path.parent) + os.sep
        inside = part["path"].str.slice(len(base))
        inside = inside.str.replace(r"^chexpert[^/\\]*[/\\]", "", regex=True, case=False)
        part["path"] = base + inside
        part["split"] = split
        unlearned = [
            c
            for c in part.columns
            if c not in labels and any(same_label(c, o) for o in CHEXPERT_LABELS)
        ]
        part = part.drop(columns=unlearned)
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    skipped = [s for part in parts for s in part.attrs.get("skipped", [])]
    notes = [n for part in parts for n in part.attrs.get("notes", [])]
    df["view"] = _chexpert_views(df.pop("Frontal/Lateral"), df.pop("AP/PA"))
    study = df["path"].str.replace("\\", "/", regex=False).str.extract(_CHEXPERT_STUDY)
    df["study"] = study[0] + "/" + study[1]
    df = df.rename(columns={"Sex": "sex", "Age": "age"})
    df["age"] = pd.to_numeric(df["age"], errors="coerce").astype("Int64")
    if frontal_only:
        lateral = df["view"] == "LATERAL"
        notes.append(f"frontal_only: {int(lateral.sum())} lateral images left out")
        df = df[~lateral]
    if not any(Path(p).exists() for p in df["path"].head(20)):
        notes.append(
            "no CheXpert images found beside the labels: use the manifest for label statistics only"
        )
    policy = (
        uncertain
        if isinstance(uncertain, str)
        else json.dumps(dict(uncertain)) + ", other labels zeros"
    )
    notes.append(f"uncertain (-1) labels: {policy}; blank labels: {blank}")
    df.attrs = {}
    return finish_manifest(df.reset_index(drop=True), labels=labels, skipped=skipped, notes=notes)
