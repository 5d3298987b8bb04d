"""The bundled sample written in each public dataset's own layout, for smoke runs.

A recipe reads its dataset through that dataset's adapter (``data.source: rsna`` expects
``stage_2_train_labels.csv`` and DICOM files, ``chexpert`` a ``train.csv`` with -1 and
blank cells, ...). To run a recipe end to end without the dataset, ``--smoke`` writes the
bundled films in the layout the recipe expects and points the recipe at it, so the real
adapter, label policy and file decoding all run. The images are real; the layout is made:

- ``kermany``: the bundled Kermany films as ``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/``
  (a fifth of the patients in ``test``);
- ``nih``: the bundled NIH films as ``images/`` with ``Data_Entry_2017.csv`` and the
  official ``train_val_list.txt`` / ``test_list.txt`` (a fifth of the patients in test);
- ``chexpert``: the bundled NIH films as ``CheXpert-v1.0-small/{train,valid}/patientNNNNN/
  study1/view1_frontal.jpg`` under ``train.csv`` / ``valid.csv``; NIH findings become
  CheXpert observations (Effusion -> Pleural Effusion, Mass and Nodule -> Lung Lesion,
  Infiltration -> Lung Opacity), every third positive of ``train.csv`` is written
  uncertain (-1), findings not reported are left blank, and every tenth film is listed a
  second time as a lateral view (so the frontal-view filter has something to remove);
- ``rsna``: the bundled NIH films as MONOCHROME2 DICOM files
  ``stage_2_train_images/<patientId>.dcm`` (view, sex and age in the headers) with
  ``stage_2_train_labels.csv`` and ``stage_2_detailed_class_info.csv``: films with
  Pneumonia, Consolidation or Infiltration are ``Lung Opacity`` (RSNA annotated NIH films
  this way), ``No Finding`` films ``Normal``, the rest ``No Lung Opacity / Not Normal``;
  an opacity's box is its NIH box where there is one, else the central chest.

Example:
    >>> import tempfile
    >>> overrides = write_layout("nih", tempfile.mkdtemp())
    >>> sorted(overrides)
    ['data.root']
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.data.labels import CHEXPERT_LABELS
from cxr_keras.sample_data import sample_files, sample_path

__all__ = ["LAYOUTS", "write_layout"]

#: NIH finding -> CheXpert observation (findings CheXpert does not label stay unmentioned)
_NIH_TO_CHEXPERT = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
    "Infiltration": "Lung Opacity",
    "Mass": "Lung Lesion",
    "Nodule": "Lung Lesion",
    "Pleural_Thickening": "Pleural Other",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
}
#: CheXpert's own column names, in its order ("Pleural Effusion" is Effusion elsewhere)
_CHEXPERT_COLUMNS = [{"Effusion": "Pleural Effusion"}.get(n, n) for n in CHEXPERT_LABELS]
_OPACITY_FINDINGS = ("Pneumonia", "Consolidation", "Infiltration")


def _bucket(key: str) -> int:
    """A stable number 0-99 per key (patients land in the same split on every machine)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def _nih_table() -> pd.DataFrame:
    table = pd.read_csv(sample_path("nih") / "labels.csv", dtype={"patient_id": str})
    table["findings"] = table["finding_labels"].str.split("|")
    table["test"] = [_bucket(f"patient:{p}") < 20 for p in table["patient_id"]]
    return table


def _kermany(dest: Path) -> dict[str, str]:
    manifest = pd.read_csv(sample_path("kermany") / "manifest.csv", dtype=str)
    for file in sample_files("kermany"):
        row = manifest[manifest["path"].str.endswith(file.name)]
        patient = row["patient_id"].iloc[0] if len(row) else file.stem
        split = "test" if _bucket(f"patient:{patient}") < 20 else "train"
        target = dest / "chest_xray" / split / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    return {"data.root": str(dest / "chest_xray")}


def _nih(dest: Path) -> dict[str, str]:
    table = _nih_table()
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for path in table["path"]:
        shutil.copyfile(sample_path("nih") / path, dest / "images" / Path(path).name)
    entry = pd.DataFrame(
        {
            "Image Index": table["image_index"],
            "Finding Labels": table["finding_labels"],
            "Follow-up #": table["follow_up"],
            "Patient ID": table["patient_id"],
            "Patient Age": table["age"],
            "Patient Gender": table["sex"],
            "View Position": table["view"],
            "OriginalImage[Width": 512,
            "Height]": 512,
        }
    )
    entry.to_csv(dest / "Data_Entry_2017.csv", index=False)
    for name, chosen in (("test_list.txt", table["test"]), ("train_val_list.txt", ~table["test"])):
        (dest / name).write_text("\n".join(table["image_index"][chosen]) + "\n")
    return {"data.root": str(dest)}


def _chexpert_row(findings: list[str], uncertain_every: int, counter: list[int]) -> dict:
    """One CheXpert label row from NIH findings: 1.0 or (every ``uncertain_every``-th
    positive) -1.0 for a reported observation, blank for the rest."""
    if findings == ["No Finding"]:
        return {"No Finding": 1.0}
    row = {}
    for finding in findings:
        observation = _NIH_TO_CHEXPERT.get(finding)
        if observation is None or observation in row:
            continue
        counter[0] += 1
        row[observation] = -1.0 if uncertain_every and counter[0] % uncertain_every == 0 else 1.0
    return row


def _chexpert(dest: Path) -> dict[str, str]:
    base = dest / "CheXpert-v1.0-small"
    table = _nih_table()
    tables: dict[str, list[dict]] = {"train": [], "valid": []}
    counter = [0]
    for k, row in enumerate(table.itertuples()):
        part = "valid" if row.test else "train"
        study = base / part / f"patient{int(row.patient_id):05d}" / "study1"
        study.mkdir(parents=True, exist_ok=True)
        frontal = study / "view1_frontal.jpg"
        shutil.copyfile(sample_path("nih") / row.path, frontal)
        labels = _chexpert_row(row.findings, 0 if row.test else 3, counter)
        common = {"Sex": {"M": "Male", "F": "Female"}.get(row.sex, "Unknown"), "Age": row.age}
        views = [("view1_frontal.jpg", "Frontal", row.view)]
        if k % 10 == 0:
            shutil.copyfile(frontal, study / "view2_lateral.jpg")
            views.append(("view2_lateral.jpg", "Lateral", ""))
        for name, frontal_lateral, projection in views:
            tables[part].append(
                {
                    "Path": f"CheXpert-v1.0-small/{part}/{study.parent.name}/study1/{name}",
                    **common,
                    "Frontal/Lateral": frontal_lateral,
                    "AP/PA": projection,
                    **{
                        c: labels.get(c, 0.0 if part == "valid" else None)
                        for c in _CHEXPERT_COLUMNS
                    },
                }
            )
    for part, rows in tables.items():
        pd.DataFrame(rows).to_csv(base / f"{part}.csv", index=False)
    return {"data.root": str(base)}


def _rsna_id(image_index: str) -> str:
    """An RSNA-style pseudonymous patientId (a UUID) for a film."""
    digest = hashlib.sha256(f"rsna:{image_index}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _write_dicom(pixels: np.ndarray, path: Path, patient_id: str, view: str, sex: str, age) -> None:
    """An 8-bit MONOCHROME2 CR DICOM file, as the RSNA challenge ships its films."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.PatientID = patient_id
    ds.ViewPosition = view
    ds.PatientSex = sex
    ds.PatientAge = f"{int(age):03d}Y" if pd.notna(age) else ""
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _rsna(dest: Path) -> dict[str, str]:
    from PIL import Image

    table = _nih_table()
    boxes = pd.read_csv(sample_path("nih") / "bbox.csv")
    labels, classes = [], []
    for row in table.itertuples():
        patient = _rsna_id(row.image_index)
        with Image.open(sample_path("nih") / row.path) as image:
            pixels = np.asarray(image.convert("L"))
        _write_dicom(
            pixels,
            dest / "stage_2_train_images" / f"{patient}.dcm",
            patient,
            row.view,
            row.sex,
            row.age,
        )
        if any(f in _OPACITY_FINDINGS for f in row.findings):
            found = boxes[(boxes["path"] == row.path) & boxes["finding"].isin(_OPACITY_FINDINGS)]
            height, width = pixels.shape
            own = [tuple(b) for b in found[["x", "y", "w", "h"]].itertuples(index=False)]
            for x, y, w, h in own or [(width * 0.2, height * 0.25, width * 0.6, height * 0.5)]:
                labels.append([patient, round(x, 1), round(y, 1), round(w, 1), round(h, 1), 1])
            classes.append([patient, "Lung Opacity"])
        else:
            labels.append([patient, None, None, None, None, 0])
            normal = row.findings == ["No Finding"]
            classes.append([patient, "Normal" if normal else "No Lung Opacity / Not Normal"])
    pd.DataFrame(labels, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        dest / "stage_2_train_labels.csv", index=False
    )
    pd.DataFrame(classes, columns=["patientId", "class"]).to_csv(
        dest / "stage_2_detailed_class_info.csv", index=False
    )
    return {"data.root": str(dest)}


#: layout name -> what it writes (see the module docstring)
LAYOUTS = {"kermany": _kermany, "nih": _nih, "chexpert": _chexpert, "rsna": _rsna}


def write_layout(name: str, dest: str | os.PathLike) -> dict[str, str]:
    """Write the bundled sample in the layout of dataset ``name`` under ``dest`` (once:
    a finished copy is reused) and return the config overrides that read it."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; available: {', '.join(LAYOUTS)}")
    dest = Path(dest).resolve()
    done = dest / ".complete"
    if done.is_file():
        return dict(pd.read_json(done, typ="series"))
    if dest.exists():
        shutil.rmtree(dest)  # an unfinished copy: start afresh
    dest.mkdir(parents=True)
    overrides = LAYOUTS[name](dest)
    pd.Series(overrides).to_json(done)
    return overrides
