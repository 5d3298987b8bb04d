"""The RSNA Pneumonia Detection Challenge (stage 2): DICOMs, labels and detailed classes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.data.adapters.common import (
    attach_images,
    find_file,
    finish_manifest,
    index_by_stem,
    select_labels,
    split_root,
)
from cxr_keras.data.files import read_csv
from cxr_keras.data.labels import same_label
from cxr_keras.data.manifest import Skip

__all__ = ["RSNA_NOT_NORMAL", "rsna_source"]

log = logging.getLogger(__name__)


#: The RSNA detailed class of images that are not normal but have no lung opacity.
RSNA_NOT_NORMAL = "No Lung Opacity / Not Normal"


_RSNA_OPACITY = "Lung Opacity"


def rsna_source(
    root: str | os.PathLike,
    *,
    labels: Iterable[str] | None = None,
    csv: str | os.PathLike | None = None,
    detailed_csv: str | os.PathLike | None = None,
    headers_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The RSNA Pneumonia Detection Challenge (stage 2) as Kaggle ships it.

    ``stage_2_train_labels.csv`` has one row per box (``Target`` 1) or one row without a
    box (``Target`` 0) per image: they collapse to one image with the label
    ``Lung Opacity`` (``Pneumonia`` is accepted as its other name, as TorchXRayVision uses)
    and a ``boxes`` column (JSON: x, y, w, h in the DICOM's pixels). With
    ``stage_2_detailed_class_info.csv`` (found or given), the 3-class variant is two
    one-vs-rest labels, ``Lung Opacity`` and ``No Lung Opacity / Not Normal`` (Normal:
    both 0). Images are ``stage_2_train_images/<patientId>.dcm``; the patientId (the
    challenge's pseudonymous id, one image each) is the patient id. Views, age and sex
    come from the DICOM headers when the files are verified, or from a headers CSV with
    ``Filename``/``ViewPosition``/``PatientAge``/``PatientSex`` columns.

    Example:
        >>> RSNA_NOT_NORMAL
        'No Lung Opacity / Not Normal'
    """
    folder, found = split_root(
        root, ["stage_2_train_labels.csv", "stage_2_train_labels.csv.zip", "*train_labels.csv*"]
    )
    csv = Path(csv) if csv else found
    if csv is None:
        raise ValueError(f"{folder}: no stage_2_train_labels.csv found; pass csv=")
    table = read_csv(csv)
    missing = {"patientId", "Target"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: not the RSNA labels: no column(s) {sorted(missing)}")
    skipped: list[Skip] = []
    notes: list[str] = []
    ids = table["patientId"].str.strip()
    target = pd.to_numeric(table["Target"], errors="coerce")
    bad = ~target.isin([0, 1]) | (ids == "")
    skipped += [
        (f"{csv.name} row {i + 2}", "bad_label", f"Target {table['Target'].iloc[i]!r} is not 0/1")
        for i in np.flatnonzero(bad)
    ]
    table, ids, target = table[~bad], ids[~bad], target[~bad]
    image_target = target.groupby(ids, sort=True).max()
    boxes: dict[str, list[dict]] = {}
    box_rows = table[target == 1]
    for pid, x, y, w, h in zip(
        ids[target == 1],
        box_rows["x"],
        box_rows["y"],
        box_rows["width"],
        box_rows["height"],
        strict=True,
    ):
        try:
            box = {
                "finding": _RSNA_OPACITY,
                **{k: float(v) for k, v in zip("xywh", (x, y, w, h), strict=True)},
            }
        except ValueError:
            box = {}
        if not box or not all(np.isfinite(box[k]) for k in "xywh") or min(box["w"], box["h"]) <= 0:
            # the image keeps its label; only the box is unusable
            skipped.append((f"patientId={pid}", "bad_box", f"box {x},{y},{w},{h} is not a box"))
            continue
        boxes.setdefault(pid, []).append(box)
    df = pd.DataFrame({"patient_id": image_target.index, _RSNA_OPACITY: image_target.to_numpy()})
    available = [_RSNA_OPACITY]
    detailed = (
        Path(detailed_csv)
        if detailed_csv
        else find_file(folder, ["stage_2_detailed_class_info.csv*"])
    )
    if detailed is not None:
        classes = read_csv(detailed)
        if not {"patientId", "class"} <= set(classes.columns):
            raise ValueError(f"{detailed}: expected columns patientId and class")
        per_image = classes.groupby(classes["patientId"].str.strip())["class"].agg(
            lambda s: "|".join(sorted(set(s.str.strip())))
        )
        df["rsna_class"] = df["patient_id"].map(per_image)
        df[RSNA_NOT_NORMAL] = (df["rsna_class"] == RSNA_NOT_NORMAL).astype(float)
        known = {_RSNA_OPACITY, RSNA_NOT_NORMAL, "Normal"}
        conflict = (
            df["rsna_class"].isna()
            | ~df["rsna_class"].isin(known)
            | ((df["rsna_class"] == _RSNA_OPACITY) != (df[_RSNA_OPACITY] == 1.0))
        )
        skipped += [
            (f"patientId={pid}", "bad_label", f"detailed class {cls!r} disagrees with Target")
            for pid, cls in zip(df["patient_id"][conflict], df["rsna_class"][conflict], strict=True)
        ]
        df = df[~conflict]
        available.append(RSNA_NOT_NORMAL)
    requested = [
        _RSNA_OPACITY if same_label(label, "Pneumonia") else label
        for label in (labels or available)
    ]
    labels = select_labels(requested, available, "RSNA")
    df["boxes"] = [json.dumps(boxes[p]) if p in boxes else None for p in df["patient_id"]]
    if headers_csv is not None:
        headers = read_csv(Path(headers_csv))
        if not {"Filename", "ViewPosition"} <= set(headers.columns):
            raise ValueError(f"{headers_csv}: expected Filename and ViewPosition columns")
        headers.index = headers["Filename"].str.strip().map(lambda f: Path(f).stem)
        df["view"] = df["patient_id"].map(headers["ViewPosition"].str.strip().str.upper())
        for column, name in (("PatientAge", "age"), ("PatientSex", "sex")):
            if column in headers.columns:
                df[name] = df["patient_id"].map(headers[column].str.strip())
        if "age" in df.columns:
            df["age"] = pd.to_numeric(df["age"], errors="coerce").astype("Int64")
    index, skipped_images = (
        index_by_stem(folder, under=["stage_2_train_images"]) if Path(root).is_dir() else ({}, [])
    )
    skipped += skipped_images
    keys = df["patient_id"] + ".dcm"
    df = attach_images(
        df,
        keys=keys,
        index=index,
        nominal=folder / "stage_2_train_images",
        dataset="RSNA",
        skipped=skipped,
    )
    notes.append(
        f"{sum(map(len, boxes.values()))} boxes on {len(boxes)} images collapsed to image labels"
    )
    return finish_manifest(df, labels=labels, skipped=skipped, notes=notes)
