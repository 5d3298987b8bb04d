"""The bundled sample in each dataset's layout reads back through that dataset's adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data import load_image, load_manifest, verify_files
from cxr_keras.data.adapters import RSNA_NOT_NORMAL, open_dataset
from cxr_keras.data.sample_layouts import write_layout
from cxr_keras.data.settings import DataConfig
from cxr_keras.sample_data import sample_path

NIH_TABLE = pd.read_csv(sample_path("nih") / "labels.csv", dtype={"patient_id": str})


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {
        name: write_layout(name, base / name) for name in ("kermany", "nih", "chexpert", "rsna")
    }


def test_kermany_layout_keeps_every_film_and_splits_by_patient(layouts):
    df = open_dataset("kermany", layouts["kermany"]["data.root"])
    assert len(df) == 262 and int(df["PNEUMONIA"].sum()) == 132
    assert set(df["split"]) == {"train", "test"}
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    assert 0.1 < (df["split"] == "test").mean() < 0.3


def test_nih_layout_gives_the_official_labels_and_split(layouts):
    df = open_dataset("nih", layouts["nih"]["data.root"])
    assert len(df) == len(NIH_TABLE) == 108
    by_name = df.set_index(df["path"].map(lambda p: p.rsplit("/", 1)[-1].split(".")[0]))
    for row in NIH_TABLE.itertuples():
        got = by_name.loc[row.image_index.split(".")[0]]
        assert got["Cardiomegaly"] == row.Cardiomegaly and got["patient_id"] == row.patient_id
    assert set(df["split"]) == {"train", "test"}


def test_chexpert_layout_has_uncertain_blank_and_lateral_entries(layouts):
    root = layouts["chexpert"]["data.root"]
    raw = pd.read_csv(f"{root}/train.csv")
    assert (raw["Pleural Effusion"] == -1).any() and raw["Edema"].isna().any()
    assert (raw["Frontal/Lateral"] == "Lateral").sum() >= 5
    labels = ["Effusion", "Edema", "Cardiomegaly"]
    zeros = open_dataset("chexpert", root, labels=labels, uncertain="zeros")
    ignore = open_dataset("chexpert", root, labels=labels, uncertain="ignore", frontal_only=True)
    train = zeros[zeros["split"] == "train"]
    uncertain = raw["Pleural Effusion"] == -1
    assert int(train["Effusion"].isna().sum()) == 0  # -1 -> 0, blank -> 0
    assert int(ignore["Effusion"].isna().sum()) == int(
        uncertain[raw["Frontal/Lateral"] == "Frontal"].sum()
    )
    assert "LATERAL" in set(zeros["view"]) and "LATERAL" not in set(ignore["view"])
    held_out = open_dataset("chexpert", root, labels=labels, valid_split="test")
    assert set(held_out["split"]) == {"train", "test"}


def test_rsna_layout_is_dicom_with_headers_boxes_and_three_classes(layouts):
    root = layouts["rsna"]["data.root"]
    df = open_dataset("rsna", root)
    assert len(df) == 108 and df.attrs["labels"] == ["Lung Opacity", RSNA_NOT_NORMAL]
    opacity = NIH_TABLE[["Pneumonia", "Consolidation", "Infiltration"]].max(axis=1)
    assert int(df["Lung Opacity"].sum()) == int(opacity.sum())
    normal = (NIH_TABLE["finding_labels"] == "No Finding").sum()
    assert int(((df["Lung Opacity"] == 0) & (df[RSNA_NOT_NORMAL] == 0)).sum()) == normal
    positives = df[df["Lung Opacity"] == 1]
    assert all(json.loads(b) for b in positives["boxes"])
    ds = pydicom.dcmread(df["path"].iloc[0])
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.Rows == 512
    film = load_image(df["path"].iloc[0], ImageSpec(size=64))
    assert film.shape == (64, 64, 1) and 0.05 < float(film.mean()) < 0.95
    verified = verify_files(df, ImageSpec(size=64))
    assert set(verified["view"].dropna()) <= {"PA", "AP"} and verified["view"].notna().all()


def test_label_map_and_exclude_through_the_config_on_rsna(layouts):
    root = layouts["rsna"]["data.root"]
    base = {"source": "rsna", "root": root}
    default = load_manifest(DataConfig(**base, labels=["Lung Opacity"]))
    vs_normal = load_manifest(
        DataConfig(**base, labels=["Lung Opacity"], exclude=[RSNA_NOT_NORMAL])
    )
    abnormal = load_manifest(
        DataConfig(**base, label_map={"Abnormal": ["Lung Opacity", RSNA_NOT_NORMAL]})
    )
    normal = int((NIH_TABLE["finding_labels"] == "No Finding").sum())
    opacity = int(default["Lung Opacity"].sum())
    assert len(default) == 108
    assert len(vs_normal) == opacity + normal and vs_normal.attrs["labels"] == ["Lung Opacity"]
    assert any("left out as positive for" in n for n in vs_normal.attrs["notes"])
    assert abnormal.attrs["labels"] == ["Abnormal"] and RSNA_NOT_NORMAL not in abnormal
    assert int(abnormal["Abnormal"].sum()) == 108 - normal
    assert np.array_equal(abnormal["path"], default["path"])


def test_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'mimic'"):
        write_layout("mimic", tmp_path)


def test_an_rsna_box_that_is_not_a_box_is_skipped_and_the_label_kept(layouts, tmp_path):
    import shutil

    root = shutil.copytree(layouts["rsna"]["data.root"], tmp_path / "rsna")
    table = pd.read_csv(root / "stage_2_train_labels.csv")
    positive = table[table["Target"] == 1]["patientId"].iloc[0]
    blank = pd.DataFrame(
        [
            {
                "patientId": positive,
                "x": None,
                "y": None,
                "width": None,
                "height": None,
                "Target": 1,
            },
            {"patientId": positive, "x": 10, "y": 10, "width": 0, "height": 5, "Target": 1},
        ]
    )
    pd.concat([table, blank]).to_csv(root / "stage_2_train_labels.csv", index=False)
    df = open_dataset("rsna", root)
    row = df[df["patient_id"] == positive].iloc[0]
    assert row["Lung Opacity"] == 1.0
    kept = json.loads(row["boxes"])
    assert kept and all(b["w"] > 0 and b["h"] > 0 and np.isfinite(b["x"]) for b in kept)
    reasons = [s for s in df.attrs["skipped"] if s[1] == "bad_box"]
    assert len(reasons) == 2 and all(positive in s[0] for s in reasons)
