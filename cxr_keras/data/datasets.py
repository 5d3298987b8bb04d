"""Named public datasets, opened as their providers ship them (one call each).

Each function returns the same manifest as the generic sources (:mod:`.sources`): canonical
label names, patient ids, views, the official splits where the dataset has them, and the
dataset's own extras (age, sex, follow-up, study, subtype, boxes):

- :func:`kermany_source`: Kermany "Chest X-Ray Images (Pneumonia)",
  ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}``;
- :func:`nih_source`: NIH ChestX-ray14, ``Data_Entry_2017*.csv`` + ``images*/`` folders;
- :func:`chexpert_source`: CheXpert ``CheXpert-v1.0[-small]/{train,valid}.csv``;
- :func:`rsna_source`: the RSNA Pneumonia Detection Challenge (stage 2) DICOMs and labels.

``root`` is the folder as unpacked (or any folder above it), or the dataset's label file
alone: the manifest then describes the labels, with paths where the official layout puts
the images (a note says no images were found), e.g. to study label statistics before a
download. Files that cannot be used are recorded in ``attrs["skipped"]`` with a reason, as
in every source; missing images are found when the files are verified.

Example:
    >>> from cxr_keras.sample_data import sample_path
    >>> df = kermany_source(sample_path("kermany"))
    >>> df.attrs["labels"], sorted(df["subtype"].unique())
    (['PNEUMONIA'], ['bacteria', 'normal', 'virus'])
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.data.labels import (
    CHEXPERT_LABELS,
    NIH_LABELS,
    canonical_label,
    same_label,
)
from cxr_keras.data.manifest import Skip, new_manifest
from cxr_keras.data.sources import SPLIT_FOLDERS, _image_files, _read_csv, csv_source
from cxr_keras.data.sources import folder_source as _folder_source

__all__ = [
    "CHEXPERT_PAPER_UNCERTAIN",
    "DATASETS",
    "DATA_KEYS",
    "RSNA_NOT_NORMAL",
    "adapter_parameters",
    "chexpert_source",
    "kermany_source",
    "nih_source",
    "open_dataset",
    "rsna_source",
]

log = logging.getLogger(__name__)

#: The CheXpert paper's best uncertainty policy per competition label (Irvin et al. 2019,
#: table 3): U-Ones for Atelectasis and Edema; every other label defaults to U-Zeros.
CHEXPERT_PAPER_UNCERTAIN = {"Atelectasis": "ones", "Edema": "ones"}

#: The RSNA detailed class of images that are not normal but have no lung opacity.
RSNA_NOT_NORMAL = "No Lung Opacity / Not Normal"
_RSNA_OPACITY = "Lung Opacity"


# --------------------------------------------------------------------------- helpers


def _find_file(root: Path, patterns: Iterable[str], depth: int = 2) -> Path | None:
    """The first file matching one of ``patterns`` at most ``depth`` folders below
    ``root`` (shallowest first; of several at one depth, the last by name, i.e. the newest
    revision such as ``Data_Entry_2017_v2020.csv``)."""
    for level in range(depth + 1):
        prefix = "*/" * level
        for pattern in patterns:
            found = sorted(p for p in root.glob(prefix + pattern) if p.is_file())
            found = [
                p
                for p in found
                if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts[:-1])
            ]
            if found:
                return found[-1]
    return None


def _split_root(
    root: str | os.PathLike, label_patterns: Iterable[str], depth: int = 2
) -> tuple[Path, Path | None]:
    """(dataset folder, label file) for a root that is a folder (the label file searched
    at most ``depth`` folders down) or a label file (the folder is then the file's, and
    the adapters look for no images)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root.parent, root
    if not root.is_dir():
        raise ValueError(f"{root}: dataset folder or label file not found")
    return root, _find_file(root, label_patterns, depth)


def _index_by_stem(root: Path, under: Iterable[str] = ()) -> tuple[dict[str, Path], list[Skip]]:
    """Image files below ``root`` (or below its first existing ``under`` folder) by file
    name without extension, the official key of NIH and RSNA; names found twice are
    ambiguous and left out."""
    for name in under:
        if (root / name).is_dir():
            root = root / name
            break
    files, skipped = _image_files(root)
    stems = pd.Series([f.stem for f in files], dtype=object)
    repeated = set(stems[stems.duplicated()])
    skipped += [
        (str(f), "ambiguous", f"another image is also named {f.stem!r}")
        for f in files
        if f.stem in repeated
    ]
    return {f.stem: f for f in files if f.stem not in repeated}, skipped


def _attach_images(
    df: pd.DataFrame,
    keys: pd.Series,
    index: dict[str, Path],
    nominal: Path,
    dataset: str,
    skipped: list[Skip],
) -> pd.DataFrame:
    """Point each row at its image found by key; rows without one are skipped as missing.
    With no images at all (a label file studied alone) paths are the official ones."""
    if not index:
        df = df.copy()
        df["path"] = [os.path.join(os.path.abspath(nominal), k) for k in keys]
        df.attrs.setdefault("notes", []).append(
            f"no {dataset} images found: paths are where the official layout puts them "
            f"({nominal}); use the manifest for label statistics only"
        )
        return df
    found = keys.map(lambda k: index.get(Path(k).stem))
    skipped += [
        (str(nominal / k), "missing", f"no image file named {Path(k).stem}.* under the dataset")
        for k in keys[found.isna()]
    ]
    out = df[found.notna().to_numpy()].copy()
    out["path"] = [str(p.resolve()) for p in found[found.notna()]]
    listed = {Path(k).stem for k in keys}
    skipped += [
        (str(p), "unlabelled", f"not listed in the {dataset} labels")
        for stem, p in index.items()
        if stem not in listed
    ]
    return out


def _finish(df: pd.DataFrame, labels: list[str], skipped: list[Skip], notes: list[str]):
    """A manifest with the source's skips and notes carried over."""
    out = new_manifest(df, labels, [*df.attrs.get("skipped", []), *skipped])
    out.attrs["notes"] = [*df.attrs.get("notes", []), *notes]
    for note in notes:
        log.info(note)
    return out


def _select_labels(requested: Iterable[str] | None, available: Iterable[str], dataset: str):
    """Requested labels in canonical spelling, each checked against the dataset's."""
    available = list(available)
    if requested is None:
        return available
    chosen = [canonical_label(label) for label in requested]
    unknown = [c for c in chosen if not any(same_label(c, a) for a in available)]
    if unknown:
        raise ValueError(f"{dataset} has no label {unknown}; its labels: {available}")
    return [next(a for a in available if same_label(c, a)) for c in chosen]


# --------------------------------------------------------------------------- Kermany

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
    labels: Iterable[str] | None = None,
    task: str = "pneumonia",
    official_val: bool = True,
) -> pd.DataFrame:
    """Kermany et al. "Chest X-Ray Images (Pneumonia)" as Kaggle and Mendeley ship it.

    ``root``: the ``chest_xray`` folder or a folder above it (the Kaggle archive's nested
    ``chest_xray/chest_xray`` is found), or class folders alone. The official splits are
    kept; patient ids (``personN``, ``IM-NNNN``) are only unique within one official split,
    so they are prefixed with it. ``subtype`` (bacteria / virus / normal) comes from the
    file name. ``task``: ``pneumonia`` (one label ``PNEUMONIA``) or ``subtype`` (one-vs-rest
    ``Bacterial Pneumonia`` and ``Viral Pneumonia``). ``official_val=False`` moves the
    official val folder (16 images) into train, so a validation split is carved from the
    training patients instead (``data.split.val``). ``labels`` picks some of the task's.

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
        part = _folder_source(folder, labels=["PNEUMONIA"], negative_classes=["NORMAL"])
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
    chosen = _select_labels(labels, labels_of_task, f"Kermany (task {task})")
    df = df.drop(columns=["class", *(c for c in labels_of_task if c not in chosen)])
    if not official_val:
        notes.append("official val folder merged into train: val is carved by patient")
    df.attrs = {}
    return _finish(df.reset_index(drop=True), chosen, skipped, notes)


# --------------------------------------------------------------------------- NIH

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


def _read_list(path: Path | None) -> set[str]:
    """The file names of an official split list (one per line)."""
    if path is None:
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


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
    table = _read_csv(Path(path))
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
    folder, found = _split_root(
        root, ["Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz", "sample_labels.csv"]
    )
    csv = Path(csv) if csv else found
    if csv is None:
        raise ValueError(f"{folder}: no Data_Entry_2017*.csv (NIH labels) found; pass csv=")
    labels = _select_labels(labels, NIH_LABELS, "NIH ChestX-ray14")
    df = csv_source(
        csv,
        folder,
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
        test = _read_list(_find_file(folder, ["test_list.txt"]))
        train = _read_list(_find_file(folder, ["train_val_list.txt"]))
        if test or train:
            df["split"] = np.where(names.isin(test), "test", "train")
            unlisted = ~names.isin(test | train)
            if unlisted.any():
                notes.append(
                    f"{int(unlisted.sum())} image(s) in neither official list: put in train"
                )
    bbox_path = Path(bbox_csv) if bbox_csv else _find_file(folder, ["BBox_List_2017.csv*"])
    if bbox_path is not None:
        boxes = read_nih_boxes(bbox_path)
        df["boxes"] = [json.dumps(boxes[n]) if n in boxes else None for n in names]
        orphans = set(boxes) - set(names)
        notes.append(
            f"{sum(map(len, boxes.values()))} boxes on {len(boxes)} images from {bbox_path.name}"
            + (f" ({len(orphans)} images with boxes are not in the labels)" if orphans else "")
        )
    index, skipped_images = _index_by_stem(folder) if Path(root).is_dir() else ({}, [])
    skipped += skipped_images
    df = _attach_images(df, names, index, folder / "images", "NIH", skipped)
    return _finish(df, labels, skipped, notes)


# --------------------------------------------------------------------------- CheXpert

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
    folder, found = _split_root(root, ["train.csv"], depth=1)  # CheXpert-v1.0*/train.csv
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
    labels = _select_labels(labels, CHEXPERT_LABELS, "CheXpert")
    if uncertain is None:
        uncertain = {k: v for k, v in CHEXPERT_PAPER_UNCERTAIN.items() if k in labels}
        uncertain = uncertain or "zeros"
    parts = []
    for split, path in csvs:
        # Official paths start with the dataset folder's name (CheXpert-v1.0-small/train/...):
        # that part is dropped, so they resolve inside the CSV's folder whatever its name.
        part = csv_source(path, path.parent, labels, "Path", uncertain=uncertain, blank=blank)
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
    return _finish(df.reset_index(drop=True), labels, skipped, notes)


# --------------------------------------------------------------------------- RSNA


def rsna_source(
    root: str | os.PathLike,
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
    folder, found = _split_root(
        root, ["stage_2_train_labels.csv", "stage_2_train_labels.csv.zip", "*train_labels.csv*"]
    )
    csv = Path(csv) if csv else found
    if csv is None:
        raise ValueError(f"{folder}: no stage_2_train_labels.csv found; pass csv=")
    table = _read_csv(csv)
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
        else _find_file(folder, ["stage_2_detailed_class_info.csv*"])
    )
    if detailed is not None:
        classes = _read_csv(detailed)
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
    labels = _select_labels(requested, available, "RSNA")
    df["boxes"] = [json.dumps(boxes[p]) if p in boxes else None for p in df["patient_id"]]
    if headers_csv is not None:
        headers = _read_csv(Path(headers_csv))
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
        _index_by_stem(folder, under=["stage_2_train_images"]) if Path(root).is_dir() else ({}, [])
    )
    skipped += skipped_images
    keys = df["patient_id"] + ".dcm"
    df = _attach_images(df, keys, index, folder / "stage_2_train_images", "RSNA", skipped)
    notes.append(
        f"{sum(map(len, boxes.values()))} boxes on {len(boxes)} images collapsed to image labels"
    )
    return _finish(df, labels, skipped, notes)


# --------------------------------------------------------------------------- registry

#: dataset name -> adapter
DATASETS = {
    "kermany": kermany_source,
    "nih": nih_source,
    "chexpert": chexpert_source,
    "rsna": rsna_source,
}


#: Adapter arguments a recipe sets as ``data.*`` keys rather than under ``data.options``.
DATA_KEYS = ("labels", "csv", "uncertain", "blank")


def adapter_parameters(name: str) -> list[str]:
    """The keyword arguments of a named dataset's adapter (``root`` aside).

    Example:
        >>> adapter_parameters("kermany")
        ['labels', 'task', 'official_val']
    """
    import inspect

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return [p for p in inspect.signature(DATASETS[name]).parameters if p != "root"]


def open_dataset(name: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """The manifest of a named public dataset: ``open_dataset("nih", "~/data/NIH")``.

    ``options`` are the adapter's keyword arguments (see each ``*_source`` function);
    unknown ones are refused with the list of accepted ones.
    """
    accepted = adapter_parameters(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; accepted: {accepted}")
    return DATASETS[name](root, **options)
