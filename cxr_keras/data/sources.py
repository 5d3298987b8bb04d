"""Sources: turn a dataset on disk into one manifest DataFrame (see :mod:`.manifest`).

- :func:`folder_source`: one folder per class (``NORMAL/``, ``PNEUMONIA/``), optionally
  under split folders (``train/``, ``val/``, ``test/``), as the Kermany dataset ships;
- :func:`csv_source`: a labels CSV with image paths, findings either as one
  separator-joined column (NIH ``Finding Labels``) or one column per label (CheXpert,
  with -1 = uncertain and blanks handled by a policy);
- :func:`dicom_source`: a folder of DICOM files with a labels CSV keyed by file name
  (RSNA style); patient ids are keyed hashes of the DICOM PatientID.

Rows that cannot be used (unknown label names, bad label values, duplicate or missing
paths, unlabelled files) are left out and recorded with their reason in the manifest's
``attrs["skipped"]``; mistakes in the call itself (a missing column) raise ``ValueError``.

Example:
    >>> from cxr_keras.sample_data import sample_path
    >>> df = folder_source(sample_path("kermany"))
    >>> manifest_labels(df), int(df["PNEUMONIA"].sum())
    (['PNEUMONIA'], 132)
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.data.files import SPLIT_FOLDERS, image_files, read_csv
from cxr_keras.data.io import is_dicom_path
from cxr_keras.data.labels import (
    NO_FINDING,
    apply_label_policy,
    canonical_label,
    invalid_label_cells,
    is_known_label,
    same_label,
)
from cxr_keras.data.manifest import Skip, manifest_labels, new_manifest
from cxr_keras.data.privacy import hash_patient_id
from cxr_keras.data.privacy import patient_id_key as resolve_patient_key

__all__ = [
    "csv_source",
    "dicom_source",
    "folder_source",
    "manifest_labels",
    "parse_patient_id",
]

log = logging.getLogger(__name__)


# Patient ids in public datasets' file names, most specific first. The first group is the id.
_PATIENT_PATTERNS = (
    re.compile(r"(?:^|[/\\])(person\d+)_"),  # Kermany PNEUMONIA
    re.compile(r"(?:^|[/\\])((?:NORMAL2-)?IM-\d+)-\d+"),  # Kermany NORMAL
    re.compile(r"(?:^|[/\\])(\d{8})_\d{3}\.\w+$"),  # NIH 00000075_000.png
    re.compile(r"(?:^|[/\\])(patient\d+)[/\\]study\d+[/\\]"),  # CheXpert
)


def parse_patient_id(relative_path: str, pattern: str | None = None) -> str | None:
    """The patient id in a file path, or None when no known pattern matches.

    Example:
        >>> parse_patient_id("PNEUMONIA/person23_bacteria_1.jpeg")
        'person23'
        >>> parse_patient_id("NORMAL/NORMAL2-IM-0012-0001.jpeg")
        'NORMAL2-IM-0012'
        >>> parse_patient_id("images/00000075_000.png")  # NIH: the Patient ID number
        '75'
        >>> parse_patient_id("scan.png", pattern=r"^(\\w+)\\.png") is None
        False
    """
    patterns = (re.compile(pattern),) if pattern else _PATIENT_PATTERNS
    text = str(relative_path).replace("\\", "/")
    for regex in patterns:
        match = regex.search(text)
        if match:
            found = match.group(1) if regex.groups else match.group(0)
            return str(int(found)) if found.isdigit() else found
    return None


def _patient_and_view(
    path: Path, relative: str, pattern: str | None, key: bytes | None
) -> tuple[str, str | None, bool]:
    """(patient id, view, parsed) for one file; DICOMs use the hashed header PatientID."""
    if key is not None and is_dicom_path(path):
        pid, view = _dicom_identity(path, key)
        if pid:
            return pid, view, True
    pid = parse_patient_id(relative, pattern)
    if pid is None:
        return f"image:{relative}", None, False
    return pid, None, True


def _dicom_identity(path: Path, key: bytes) -> tuple[str | None, str | None]:
    """(hashed PatientID, view) of a DICOM; the raw id never leaves this function."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, force=True, specific_tags=["PatientID", "ViewPosition"]
        )
    except Exception:  # unreadable files are reported when their header is verified
        return None, None
    raw_id = str(ds.get("PatientID", "") or "").strip()
    view = str(ds.get("ViewPosition", "") or "").strip().upper() or None
    return (hash_patient_id(raw_id, key) if raw_id else None), view


def _split_groups(root: Path) -> list[tuple[str | None, Path]]:
    """(split, folder) pairs: the split folders of ``root`` if it has them, else root."""
    entries = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )  # hidden folders and archive debris such as __MACOSX
    splits = [p for p in entries if p.name.lower() in SPLIT_FOLDERS]
    if not splits:
        return [(None, root)]
    others = [p.name for p in entries if p.name.lower() not in SPLIT_FOLDERS]
    if others:
        raise ValueError(
            f"{root}: holds split folders ({', '.join(p.name for p in splits)}) beside other "
            f"folders ({', '.join(others)}); point data.root at the folder that holds only "
            "the splits, or only the class folders"
        )
    return [(SPLIT_FOLDERS[d.name.lower()], d) for d in splits]


def folder_source(
    root: str | os.PathLike,
    *,
    labels: list[str] | None = None,
    negative_classes: Iterable[str] = ("NORMAL", NO_FINDING),
    patient_id_pattern: str | None = None,
    patient_id_key: str | None = None,
    patient_ids_per_split: bool = False,
) -> pd.DataFrame:
    """A manifest of a class-per-folder dataset: ``root/[split/]CLASS/**/image``.

    Each class folder is a label (one-vs-rest), except ``negative_classes`` whose images
    have every label 0. Split folders (train/val/test and their common spellings) fill a
    ``split`` column. Patient ids are parsed from file names (Kermany ``personN``,
    ``IM-NNNN``; NIH numbers), or are keyed hashes of the PatientID for DICOMs (see
    :mod:`cxr_keras.data.privacy`); an image whose id cannot be found is its own patient
    (noted in ``attrs["notes"]``). ``patient_ids_per_split``: ids are only unique within
    one split folder (the official Kermany release: TEST ``person1`` is not TRAIN
    ``person1``), so they are prefixed with the split.

    Example:
        >>> from cxr_keras.sample_data import sample_path
        >>> df = folder_source(sample_path("kermany"), labels=["PNEUMONIA"])
        >>> df["patient_id"].nunique() < len(df)  # several images per patient
        True
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: dataset folder not found")
    negatives = {canonical_label(n).casefold() for n in negative_classes}
    class_dirs = [
        (split, c)
        for split, base in _split_groups(root)
        for c in sorted(base.iterdir())
        if c.is_dir() and not c.name.startswith((".", "_"))
    ]
    if not class_dirs:
        raise ValueError(f"{root}: no class folders found (expected e.g. NORMAL/ and PNEUMONIA/)")
    split_named = sorted({c.name for _, c in class_dirs if c.name.lower() in SPLIT_FOLDERS})
    if split_named:
        raise ValueError(
            f"{root}: class folders named like splits ({', '.join(split_named)}); "
            "split folders must hold the class folders, not sit beside them"
        )
    classes = sorted({canonical_label(c.name) for _, c in class_dirs})
    if labels is None:
        labels = [c for c in classes if c.casefold() not in negatives]
    labels = [canonical_label(label) for label in labels]
    folded = {label.casefold(): label for label in labels}
    key = None
    rows, skipped, unparsed = [], [], 0
    for split, class_dir in class_dirs:
        name = canonical_label(class_dir.name)
        files, bad = image_files(class_dir)
        skipped.extend(bad)
        if name.casefold() not in folded and name.casefold() not in negatives:
            skipped.extend(
                (
                    str(f),
                    "unknown_label",
                    f"class folder {class_dir.name!r} is neither "
                    "in data.labels nor in data.negative_classes",
                )
                for f in files
            )
            continue
        for f in files:
            if key is None and is_dicom_path(f):
                key = resolve_patient_key(patient_id_key)
            relative = f.relative_to(root).as_posix()
            pid, view, parsed = _patient_and_view(f, relative, patient_id_pattern, key)
            unparsed += not parsed
            if split is not None and patient_ids_per_split:
                pid = f"{split}/{pid}"
            row = {"path": str(f.resolve()), "patient_id": pid, "view": view, "class": name}
            row.update({label: float(same_label(label, name)) for label in labels})
            if split is not None:
                row["split"] = split
            rows.append(row)
    df = new_manifest(rows, labels, skipped)
    _note_unparsed(df, unparsed)
    return df


def csv_source(
    csv: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    labels: list[str] | None = None,
    path_column: str = "path",
    finding_column: str | None = None,
    finding_separator: str = "|",
    patient_column: str | None = None,
    view_column: str | None = None,
    uncertain: str | Mapping[str, str] = "zeros",
    blank: str = "zeros",
    patient_id_pattern: str | None = None,
) -> pd.DataFrame:
    """A manifest from a labels CSV; image paths are relative to ``root`` (default: the
    CSV's folder). Other columns (age, sex, ...) are kept as extras.

    Two label layouts: ``finding_column`` names a column of ``finding_separator``-joined
    findings (NIH ``Finding Labels``; ``No Finding`` means all negative), otherwise each
    label is its own column of 1 / 0 / -1 (uncertain) / blank, mapped by the ``uncertain``
    policy (one for all, or per label; unlisted labels get ``zeros``) and ``blank`` policy.
    Label names are matched through :func:`canonical_label`, so ``Pleural Effusion`` and
    ``Effusion`` are the same label.

    Example:
        >>> from cxr_keras.sample_data import sample_path
        >>> nih = sample_path("nih")
        >>> df = csv_source(nih / "labels.csv", finding_column="finding_labels",
        ...                 patient_column="patient_id", view_column="view",
        ...                 labels=["Effusion", "Cardiomegaly"])
        >>> manifest_labels(df)
        ['Effusion', 'Cardiomegaly']
    """
    csv = Path(csv)
    root = Path(root) if root is not None else csv.parent
    table = read_csv(csv)
    for column in (path_column, finding_column, patient_column, view_column):
        if column is not None and column not in table.columns:
            raise ValueError(f"{csv}: no column {column!r}; columns: {list(table.columns)}")
    skipped: list[Skip] = []
    paths = table[path_column].str.strip()
    keep = paths != ""
    skipped += [
        (f"{csv.name} row {i + 2}", "missing_path", f"empty {path_column!r} cell")
        for i in np.flatnonzero(~keep)
    ]
    if finding_column is not None:
        values, labels, bad = _labels_from_findings(
            table[finding_column], labels, finding_separator
        )
    else:
        values, labels, bad = _labels_from_columns(table, csv, labels, uncertain, blank)
    for i in np.flatnonzero(keep & bad.notna()):
        skipped.append((str(root / paths.iloc[i]), "bad_label", bad.iloc[i]))
    keep &= bad.isna()
    dup = keep & paths.duplicated(keep="first")
    skipped += [
        (str(root / paths.iloc[i]), "duplicate", f"listed more than once in {csv.name}")
        for i in np.flatnonzero(dup)
    ]
    keep &= ~dup
    rows = table[keep].copy()
    base = os.path.abspath(root)
    out = pd.DataFrame({"path": [os.path.join(base, p) for p in paths[keep]]})
    for label in labels:
        out[label] = values[label][keep].to_numpy()
    if patient_column is not None:
        out["patient_id"] = [_id(v) for v in rows[patient_column]]
    else:
        out["patient_id"] = [parse_patient_id(p, patient_id_pattern) for p in paths[keep]]
    unparsed = int(out["patient_id"].isna().sum())
    out.loc[out["patient_id"].isna(), "patient_id"] = [
        f"image:{p}" for p in paths[keep][out["patient_id"].isna().to_numpy()]
    ]
    if view_column is not None:
        views = rows[view_column].str.strip().str.upper()
        out["view"] = [v or None for v in views]
    else:
        out["view"] = None
    folded = {label.casefold() for label in labels}
    used = {
        path_column,
        finding_column,
        patient_column,
        view_column,
        *(c for c in table.columns if canonical_label(c).casefold() in folded),
    }
    for column in table.columns:
        if column not in used and column not in out.columns:
            out[column] = rows[column].to_numpy()
    df = new_manifest(out, labels, skipped)
    _note_unparsed(df, unparsed)
    return df


def _id(value) -> str | None:
    """A patient id cell as text (NIH's zero-padded numbers as plain numbers), or None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    return str(int(text)) if text.isdigit() else text


def _labels_from_findings(
    findings: pd.Series, labels: list[str] | None, sep: str
) -> tuple[pd.DataFrame, list[str], pd.Series]:
    spelled = findings.map(lambda s: [canonical_label(x) for x in str(s).split(sep) if x.strip()])
    parsed = spelled.map(lambda names: [n.casefold() for n in names])
    no_finding = NO_FINDING.casefold()
    if labels is None:
        labels = sorted({n for names in spelled for n in names if n.casefold() != no_finding})
    labels = [canonical_label(label) for label in labels]
    requested = {label.casefold() for label in labels}
    bad = pd.Series([None] * len(findings), dtype=object, index=findings.index)
    for i, names in parsed.items():
        unknown = [
            spelled[i][k]
            for k, n in enumerate(names)
            if n not in requested and not is_known_label(n)
        ]
        if not names:
            bad[i] = "empty findings cell"
        elif unknown:
            bad[i] = f"unknown label name {unknown[0]!r}"
        elif no_finding in names and len(names) > 1:
            bad[i] = f"'No Finding' together with other findings: {findings[i]!r}"
    folded = [label.casefold() for label in labels]
    values = pd.DataFrame(
        {
            label: [float(f in names) for names in parsed]
            for label, f in zip(labels, folded, strict=True)
        },
        index=findings.index,
    )
    return values, labels, bad


def _labels_from_columns(
    table: pd.DataFrame,
    csv: Path,
    labels: list[str] | None,
    uncertain: str | Mapping[str, str],
    blank: str,
) -> tuple[pd.DataFrame, list[str], pd.Series]:
    by_name = {canonical_label(c).casefold(): c for c in table.columns}
    if labels is None:
        labels = [canonical_label(c) for c in table.columns if is_known_label(c)]
        if not labels:
            raise ValueError(f"{csv}: no known label columns; name them with data.labels")
    labels = [canonical_label(label) for label in labels]
    missing = [label for label in labels if label.casefold() not in by_name]
    if missing:
        raise ValueError(f"{csv}: no column for labels {missing}; columns: {list(table.columns)}")
    policies = {}
    if isinstance(uncertain, Mapping):
        policies = {canonical_label(k).casefold(): v for k, v in uncertain.items()}
        unknown = sorted(
            k
            for k in uncertain
            if canonical_label(k).casefold() not in {label.casefold() for label in labels}
        )
        if unknown:
            raise ValueError(
                f"data.uncertain names labels that are not learned: {unknown}; labels: {labels}"
            )
    bad = pd.Series([None] * len(table), dtype=object, index=table.index)
    values = pd.DataFrame(index=table.index)
    for label in labels:
        column = table[by_name[label.casefold()]]
        invalid = invalid_label_cells(column)
        for i in np.flatnonzero(invalid & bad.isna().to_numpy()):
            bad.iloc[i] = f"label {label!r} has value {column.iloc[i]!r}, not 1, 0, -1 or blank"
        clean = column.where(~invalid, "")
        policy = (
            policies.get(label.casefold(), "zeros") if isinstance(uncertain, Mapping) else uncertain
        )
        values[label] = apply_label_policy(clean, uncertain=policy, blank=blank)
    return values, labels, bad


def dicom_source(
    root: str | os.PathLike,
    csv: str | os.PathLike | None = None,
    *,
    id_column: str | None = None,
    labels: list[str] | None = None,
    patient_column: str | None = None,
    patient_id_key: str | None = None,
    negative_classes: Iterable[str] = ("NORMAL", NO_FINDING),
    uncertain: str | Mapping[str, str] = "zeros",
    blank: str = "zeros",
) -> pd.DataFrame:
    """A manifest of a folder of DICOM files, labelled by a CSV or by class folders.

    With ``csv``, its ``id_column`` is matched to each file's name without extension
    (RSNA ``patientId``); several rows for one file (one per box) collapse to one image,
    positive when any row is. Files without a row are left out as ``unlabelled``, rows
    without a file as ``missing``, and files whose name is not unique as ``ambiguous``.
    Without ``csv``, class folders label the files as in :func:`folder_source`. Patient ids
    are keyed hashes of the DICOM PatientID (never the raw id; see
    :mod:`cxr_keras.data.privacy`) unless ``patient_column`` gives them; the view comes
    from ViewPosition.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: DICOM folder not found")
    if csv is None:
        return folder_source(
            root,
            labels=labels,
            negative_classes=negative_classes,
            patient_id_pattern=None,
            patient_id_key=patient_id_key,
        )
    table = read_csv(Path(csv))
    if id_column is None or id_column not in table.columns:
        raise ValueError(
            f"{csv}: id_column {id_column!r} must name a column matched to the "
            f"DICOM file names; columns: {list(table.columns)}"
        )
    files, skipped = image_files(root)
    stems = pd.Series([f.stem for f in files])
    repeated = set(stems[stems.duplicated()])
    skipped += [
        (
            str(f),
            "ambiguous",
            f"another file is also named {f.stem!r}: which one the CSV row means is unknown",
        )
        for f in files
        if f.stem in repeated
    ]
    by_stem = {f.stem: f for f in files if f.stem not in repeated}
    values, labels, bad = _labels_from_columns(
        table.drop(columns=[id_column]), Path(csv), labels, uncertain, blank
    )
    values[id_column] = table[id_column].str.strip()
    for i in np.flatnonzero(bad.notna()):
        skipped.append((f"{id_column}={values[id_column].iloc[i]}", "bad_label", bad.iloc[i]))
    values = values[bad.isna().to_numpy()]
    agg = values.groupby(id_column, sort=True)[labels].max()  # any positive row -> positive
    extras = {}
    if patient_column is not None:
        extras = table.groupby(table[id_column].str.strip())[patient_column].first()
    key = resolve_patient_key(patient_id_key) if patient_column is None else None
    rows, seen = [], set()
    for ident, label_row in agg.iterrows():
        path = by_stem.get(ident)
        if path is None:
            if ident not in repeated:
                skipped.append(
                    (
                        str(root / f"{ident}.dcm"),
                        "missing",
                        f"labels CSV row {id_column}={ident} has no DICOM file",
                    )
                )
            continue
        seen.add(ident)
        if patient_column is not None:
            pid, view = _id(extras.get(ident)), None
        else:
            pid, view = _dicom_identity(path, key)
        rows.append(
            {
                "path": str(path.resolve()),
                "patient_id": pid or f"image:{ident}",
                "view": view,
                **label_row.to_dict(),
            }
        )
    skipped += [
        (str(f), "unlabelled", f"no row in {Path(csv).name}")
        for stem, f in by_stem.items()
        if stem not in seen
    ]
    return new_manifest(rows, labels, skipped)


def _note_unparsed(df: pd.DataFrame, unparsed: int) -> None:
    if unparsed:
        note = (
            f"{unparsed} image(s) have no patient id in their file name: each is treated "
            "as its own patient (set data.patient_id_pattern or data.patient_column)"
        )
        df.attrs.setdefault("notes", []).append(note)
        log.warning(note)
