"""NIH ChestX-ray14: ``Data_Entry_2017*.csv`` + ``images*/`` folders, and its boxes."""

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
    read_list,
    select_labels,
    split_root,
)
from cxr_keras.data.files import read_csv
from cxr_keras.data.labels import NIH_LABELS, canonical_label
from cxr_keras.data.manifest import Skip
from cxr_keras.data.sources import csv_source

__all__ = ["nih_source", "read_nih_boxes"]

log = logging.getLogger(__name__)


_NIH_EXTRAS = {
    "Follow-up #": "follow_up",
    "Patient Age": "age",
    "Patient Gender": "sex",
    "OriginalImage[Width": "original_width",
    "Height]": "original_height",
    "OriginalImagePixelSpacing[x": "pixel_spacing_x",
    "y]": "pixel_spacing_y",
    # the Kaggle random sample's sample_labels.csv spells these differently
    "OriginalImageWidth": "original_width",
    "OriginalImageHeight": "original_height",
    "OriginalImagePixelSpacing_x": "pixel_spacing_x",
    "OriginalImagePixelSpacing_y": "pixel_spacing_y",
}


def read_nih_boxes(path: str | os.PathLike) -> dict[str, list[dict]]:
    """``BBox_List_2017.csv``: image name -> its boxes (finding, x, y, w, h in the original
    1024x1024 pixels). The header's ``Bbox [x,y,w,h]`` spans four columns; ``Infiltrate``
    is the canonical ``Infiltration``.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "BBox_List_2017.csv")
        >>> _ = open(f, "w").write("Image Index,Finding Label,Bbox [x,y,w,h],,,\\n"
        ...                        "00013118_008.png,Infiltrate,225.1,547.0,86.8,79.2\\n")
        >>> read_nih_boxes(f)["00013118_008.png"][0]["finding"]
        'Infiltration'
    """
    table = read_csv(Path(path))
    if table.shape[1] < 6:
        raise ValueError(f"{path}: expected Image Index, Finding Label and x, y, w, h columns")
    boxes: dict[str, list[dict]] = {}
    for row in table.itertuples(index=False):
        name, finding, *xywh = (str(v).strip() for v in row[:6])
        try:
            x, y, w, h = (float(v) for v in xywh)
        except ValueError:
            raise ValueError(f"{path}: box of {name} is not four numbers: {xywh}") from None
        box = {"finding": canonical_label(finding), "x": x, "y": y, "w": w, "h": h}
        boxes.setdefault(name, []).append(box)
    return boxes


def nih_source(
    root: str | os.PathLike,
    *,
    labels: Iterable[str] | None = None,
    csv: str | os.PathLike | None = None,
    bbox_csv: str | os.PathLike | None = None,
    official_split: bool = True,
) -> pd.DataFrame:
    """NIH ChestX-ray14: ``Data_Entry_2017*.csv`` and the ``images*/`` folders, any nesting
    (or the Kaggle random sample's ``sample_labels.csv``).

    Labels: the 14 findings (``labels`` picks some; ``No Finding`` rows are all negative).
    Patient ids are the NIH ``Patient ID``; ``view`` is PA/AP; extras ``follow_up``, ``age``,
    ``sex``, original size and pixel spacing. ``train_val_list.txt`` / ``test_list.txt``
    (when present and ``official_split``) give the official patient-wise split, ``val`` is
    then carved from the training patients. ``BBox_List_2017.csv`` (found or given) fills a
    ``boxes`` column (JSON: finding, x, y, w, h in the original 1024x1024 pixels). Images
    are matched by name without extension, so a PNG release and a JPEG copy both work.

    Example:
        >>> from cxr_keras.sample_data import sample_path
        >>> nih = sample_path("nih")  # the bundled copy has its own labels.csv layout
        >>> df = nih_source(nih, csv=nih / "labels.csv")  # doctest: +SKIP
    """
    folder, found = split_root(
        root, ["Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz", "sample_labels.csv"]
    )
    csv = Path(csv) if csv else found
    if csv is None:
        raise ValueError(f"{folder}: no Data_Entry_2017*.csv (NIH labels) found; pass csv=")
    labels = select_labels(labels, NIH_LABELS, "NIH ChestX-ray14")
    df = csv_source(
        csv,
        root=folder,
        labels=labels,
        path_column="Image Index",
        finding_column="Finding Labels",
        patient_column="Patient ID",
        view_column="View Position",
    )
    names = df["path"].map(lambda p: Path(p).name)
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])
    df = df.rename(columns=_NIH_EXTRAS)
    df.insert(len(labels) + 1, "image_index", names.to_numpy())
    for column in ("follow_up", "age", "original_width", "original_height"):
        if column in df.columns:  # the sample's ages read "060Y"
            digits = df[column].astype(str).str.extract(r"^\s*(\d+)", expand=False)
            df[column] = pd.to_numeric(digits, errors="coerce").astype("Int64")
    notes: list[str] = []
    skipped: list[Skip] = []
    if official_split:
        test = read_list(find_file(folder, ["test_list.txt"]))
        train = read_list(find_file(folder, ["train_val_list.txt"]))
        if test or train:
            df["split"] = np.where(names.isin(test), "test", "train")
            unlisted = ~names.isin(test | train)
            if unlisted.any():
                notes.append(
                    f"{int(unlisted.sum())} image(s) in neither official list: put in train"
                )
    bbox_path = Path(bbox_csv) if bbox_csv else find_file(folder, ["BBox_List_2017.csv*"])
    if bbox_path is not None:
        boxes = read_nih_boxes(bbox_path)
        df["boxes"] = [json.dumps(boxes[n]) if n in boxes else None for n in names]
        orphans = set(boxes) - set(names)
        notes.append(
            f"{sum(map(len, boxes.values()))} boxes on {len(boxes)} images from {bbox_path.name}"
            + (f" ({len(orphans)} images with boxes are not in the labels)" if orphans else "")
        )
    index, skipped_images = index_by_stem(folder) if Path(root).is_dir() else ({}, [])
    skipped += skipped_images
    df = attach_images(
        df, keys=names, index=index, nominal=folder / "images", dataset="NIH", skipped=skipped
    )
    return finish_manifest(df, labels=labels, skipped=skipped, notes=notes)
