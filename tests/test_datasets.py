"""Named public datasets (cxr_keras.data.adapters) against the real official label files
at full size, and against the real image packs where the file names match."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from cxr_keras.core.errors import ConfigError
from cxr_keras.data import assign_splits, check_patient_disjoint, load_manifest, verify_files
from cxr_keras.data.adapters import (
    CHEXPERT_PAPER_UNCERTAIN,
    RSNA_NOT_NORMAL,
    chexpert_source,
    kermany_source,
    nih_source,
    open_dataset,
    rsna_source,
)
from cxr_keras.data.labels import CHEXPERT_COMPETITION_LABELS, CHEXPERT_LABELS, NIH_LABELS
from cxr_keras.data.manifest import manifest_labels, skipped_summary
from cxr_keras.data.settings import DataConfig, SplitConfig
from tests.conftest import REPO, subprocess_env
from tests.test_sources import NIH_COUNTS


@pytest.fixture(scope="module")
def label_files(shared_data):
    return shared_data / "label_files"


@pytest.fixture(scope="module")
def nih(label_files):
    return nih_source(label_files / "Data_Entry_2017_v2020.csv.gz")


@pytest.fixture(scope="module")
def chexpert(label_files):
    return chexpert_source(label_files / "chexpert_train.csv.gz")


@pytest.fixture(scope="module")
def rsna(label_files):
    return rsna_source(
        label_files / "kaggle_stage_2_train_labels.csv.zip",
        headers_csv=label_files / "kaggle_stage_2_train_images_dicom_headers.csv.gz",
    )


# --------------------------------------------------------------------------- NIH


def test_nih_full_label_file_matches_the_published_counts(nih):
    assert manifest_labels(nih) == list(NIH_LABELS)
    assert len(nih) == 112_120
    assert nih["patient_id"].nunique() == 30_805
    assert {k: int(nih[k].sum()) for k in NIH_LABELS} == NIH_COUNTS
    no_finding = (nih[list(NIH_LABELS)] == 0).all(axis=1)
    assert int(no_finding.sum()) == 60_361  # "No Finding" rows: every finding negative
    assert nih["view"].value_counts().to_dict() == {"PA": 67_310, "AP": 44_810}
    row = nih.set_index("image_index").loc["00000001_001.png"]
    assert (row["Cardiomegaly"], row["Emphysema"], row["Effusion"]) == (1.0, 1.0, 0.0)
    assert (row["patient_id"], row["follow_up"], row["age"], row["sex"]) == ("1", 1, 58, "M")
    assert nih.attrs["skipped"] == []


def test_nih_boxes_are_attached_per_image(nih):
    boxed = nih["boxes"].dropna().map(json.loads)
    assert len(boxed) == 880 and sum(map(len, boxed)) == 984
    finding_names = {box["finding"] for boxes in boxed for box in boxes}
    assert "Infiltration" in finding_names and "Infiltrate" not in finding_names
    first = json.loads(nih.set_index("image_index").loc["00013118_008.png", "boxes"])
    assert first[0]["finding"] == "Atelectasis" and first[0]["x"] == pytest.approx(225.08, abs=0.01)


def test_nih_adapter_on_the_real_image_pack(shared_data, label_files):
    """The sample pack's JPEG copies are matched to the official PNG names."""
    pack = shared_data / "nih_cxr14_sample"
    df = nih_source(pack, csv=label_files / "Data_Entry_2017_v2020.csv.gz")
    own = pd.read_csv(pack / "labels.csv").set_index("image_index")
    assert len(df) == len(own) == 621
    assert df["path"].map(lambda p: (pack / "images").as_posix() in p).all()
    mine = df.set_index("image_index")
    for label in NIH_LABELS:
        assert (mine[label] == own.loc[mine.index, label]).all(), label
    assert (mine["patient_id"] == own.loc[mine.index, "patient_id"].astype(str)).all()
    assert skipped_summary(df) == {"missing": 112_120 - 621}
    verified = verify_files(df.head(5))
    assert len(verified) == 5 and set(verified["format"]) == {"jpeg"}


def test_nih_official_split_lists_are_kept(tmp_path, label_files, nih):
    patients = sorted(nih["patient_id"].unique(), key=int)
    test_patients = set(patients[:300])
    in_test = nih["patient_id"].isin(test_patients)
    (tmp_path / "test_list.txt").write_text("\n".join(nih["image_index"][in_test]) + "\n")
    (tmp_path / "train_val_list.txt").write_text("\n".join(nih["image_index"][~in_test]) + "\n")
    df = nih_source(tmp_path, csv=label_files / "Data_Entry_2017_v2020.csv.gz")
    assert (df["split"] == "test").sum() == in_test.sum()
    split = assign_splits(df, SplitConfig(val=0.1), seed=3)
    check_patient_disjoint(split)
    assert set(split["split"]) == {"train", "val", "test"}
    assert (split.loc[split["split"] == "test", "patient_id"].isin(test_patients)).all()


# --------------------------------------------------------------------------- CheXpert


def test_chexpert_full_label_file(chexpert, label_files):
    assert manifest_labels(chexpert) == list(CHEXPERT_LABELS)
    assert len(chexpert) == 223_414
    assert chexpert["patient_id"].nunique() == 64_540
    assert chexpert["study"].nunique() == 187_641
    assert chexpert["view"].value_counts().to_dict() == {
        "AP": 161_590,
        "LATERAL": 32_387,
        "PA": 29_420,
        "FRONTAL": 17,
    }
    # The paper's policy: U-Ones for Atelectasis and Edema, U-Zeros elsewhere; blanks 0.
    assert CHEXPERT_PAPER_UNCERTAIN == {"Atelectasis": "ones", "Edema": "ones"}
    assert int(chexpert["Atelectasis"].sum()) == 33_376 + 33_739
    assert int(chexpert["Edema"].sum()) == 52_246 + 12_984
    assert int(chexpert["Cardiomegaly"].sum()) == 27_000  # its 8,087 uncertain are 0
    assert int(chexpert["No Finding"].sum()) == 22_381
    assert not chexpert[list(CHEXPERT_LABELS)].isna().any().any()
    assert chexpert["path"].iloc[0].endswith("train/patient00001/study1/view1_frontal.jpg")


def test_chexpert_policies_preset_and_frontal_only(label_files):
    df = chexpert_source(
        label_files / "chexpert_train.csv.gz",
        labels=CHEXPERT_COMPETITION_LABELS,
        uncertain="ignore",
        frontal_only=True,
    )
    assert manifest_labels(df) == list(CHEXPERT_COMPETITION_LABELS)
    assert len(df) == 223_414 - 32_387 and not (df["view"] == "LATERAL").any()
    assert df["Atelectasis"].isna().sum() > 25_000  # uncertain cells are masked, not 0
    # Observations not learned are not carried as raw extra columns.
    assert "Lung Opacity" not in df.columns and "Pleural Effusion" not in df.columns


def test_chexpert_in_its_official_layout(tmp_path, label_files, shared_data):
    rows = pd.read_csv(label_files / "chexpert_train.csv.gz", nrows=3, dtype=str)
    dataset = tmp_path / "CheXpert-v1.0-small"
    image = next((shared_data / "kermany_pneumonia" / "train" / "NORMAL").iterdir())
    for relative in rows["Path"]:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
    rows.to_csv(dataset / "train.csv", index=False)
    valid = rows.head(1).copy()
    valid["Path"] = valid["Path"].str.replace("/train/", "/valid/")
    (tmp_path / valid["Path"].iloc[0]).parent.mkdir(parents=True)
    shutil.copy(image, tmp_path / valid["Path"].iloc[0])
    valid.to_csv(dataset / "valid.csv", index=False)
    for root in (tmp_path, dataset):  # the folder above or the dataset folder itself
        df = chexpert_source(root)
        assert df["split"].tolist() == ["train", "train", "train", "val"]
        assert all(p.startswith(str(dataset.resolve())) for p in df["path"])
        assert len(verify_files(df)) == 4


# --------------------------------------------------------------------------- RSNA


def test_rsna_full_label_file_collapses_boxes(rsna):
    assert manifest_labels(rsna) == ["Lung Opacity"]
    assert len(rsna) == rsna["patient_id"].nunique() == 26_684
    positive = rsna["Lung Opacity"] == 1.0
    assert int(positive.sum()) == 6_012
    assert rsna.loc[positive, "boxes"].notna().all() and rsna.loc[~positive, "boxes"].isna().all()
    assert sum(len(json.loads(b)) for b in rsna["boxes"].dropna()) == 9_555
    assert rsna["view"].value_counts().to_dict() == {"PA": 14_511, "AP": 12_173}
    assert rsna["age"].notna().all() and set(rsna["sex"]) == {"M", "F"}


def test_rsna_three_class_variant_and_pneumonia_alias(tmp_path, label_files, rsna):
    ids = {
        "Lung Opacity": rsna.loc[rsna["Lung Opacity"] == 1, "patient_id"].iloc[0],
        RSNA_NOT_NORMAL: rsna.loc[rsna["Lung Opacity"] == 0, "patient_id"].iloc[0],
        "Normal": rsna.loc[rsna["Lung Opacity"] == 0, "patient_id"].iloc[1],
        "conflict": rsna.loc[rsna["Lung Opacity"] == 1, "patient_id"].iloc[1],
    }
    labels = pd.read_csv(label_files / "kaggle_stage_2_train_labels.csv.zip")
    labels[labels["patientId"].isin(ids.values())].to_csv(
        tmp_path / "stage_2_train_labels.csv", index=False
    )
    classes = [(ids[c], c) for c in ("Lung Opacity", RSNA_NOT_NORMAL, "Normal")]
    classes.append((ids["conflict"], "Normal"))  # Target 1 but class Normal: refused
    pd.DataFrame(classes, columns=["patientId", "class"]).to_csv(
        tmp_path / "stage_2_detailed_class_info.csv", index=False
    )
    df = rsna_source(tmp_path).set_index("patient_id")
    assert manifest_labels(df) == ["Lung Opacity", RSNA_NOT_NORMAL]
    assert df.loc[ids["Lung Opacity"], ["Lung Opacity", RSNA_NOT_NORMAL]].tolist() == [1.0, 0.0]
    assert df.loc[ids[RSNA_NOT_NORMAL], ["Lung Opacity", RSNA_NOT_NORMAL]].tolist() == [0.0, 1.0]
    assert df.loc[ids["Normal"], ["Lung Opacity", RSNA_NOT_NORMAL]].tolist() == [0.0, 0.0]
    assert ids["conflict"] not in df.index
    assert skipped_summary(df) == {"bad_label": 1}
    assert manifest_labels(rsna_source(tmp_path, labels=["Pneumonia"])) == ["Lung Opacity"]


def test_rsna_matches_dicom_files_by_patient_id(tmp_path, label_files, shared_data, rsna):
    chosen = rsna["patient_id"].iloc[:2].tolist()
    images = tmp_path / "stage_2_train_images"
    images.mkdir()
    dicom = shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm"
    for pid in chosen:
        shutil.copy(dicom, images / f"{pid}.dcm")
    shutil.copy(label_files / "kaggle_stage_2_train_labels.csv.zip", tmp_path)
    df = rsna_source(tmp_path)
    assert sorted(df["patient_id"]) == sorted(chosen)
    assert skipped_summary(df) == {"missing": 26_684 - 2}
    verified = verify_files(df)
    assert len(verified) == 2 and set(verified["format"]) == {"dicom"}


# --------------------------------------------------------------------------- Kermany


def test_kermany_adapter_on_the_real_pack(shared_data):
    df = kermany_source(shared_data / "kermany_pneumonia", official_val=True)
    assert len(df) == 1566
    assert df["split"].value_counts().to_dict() == {"train": 1321, "val": 245}
    # by default the val folder joins train, and validation is carved by patient later
    assert set(kermany_source(shared_data / "kermany_pneumonia")["split"]) == {"train"}
    assert df.loc[df["PNEUMONIA"] == 1, "subtype"].value_counts().to_dict() == {
        "bacteria": 769,
        "virus": 394,
    }
    assert df["patient_id"].str.split("/").str[1].nunique() == 1202
    check_patient_disjoint(df)
    subtype = kermany_source(shared_data / "kermany_pneumonia", task="subtype")
    assert manifest_labels(subtype) == ["Bacterial Pneumonia", "Viral Pneumonia"]
    assert int(subtype["Viral Pneumonia"].sum()) == 394


def test_kermany_kaggle_archive_layout(tmp_path, shared_data):
    """Kaggle nests chest_xray/chest_xray and adds __MACOSX; ids repeat across splits."""
    source = shared_data / "kermany_pneumonia" / "train"
    files = {
        "NORMAL": sorted((source / "NORMAL").iterdir())[:2],
        "PNEUMONIA": sorted((source / "PNEUMONIA").iterdir())[:2],
    }
    inner = tmp_path / "chest_xray" / "chest_xray"
    for split in ("train", "val", "test"):
        for cls, paths in files.items():
            (inner / split / cls).mkdir(parents=True)
            for path in paths:
                shutil.copy(path, inner / split / cls / path.name)
    (tmp_path / "chest_xray" / "__MACOSX" / "chest_xray").mkdir(parents=True)
    df = kermany_source(tmp_path, official_val=True)
    assert df["split"].value_counts().to_dict() == {"train": 4, "val": 4, "test": 4}
    check_patient_disjoint(df)  # the same file name in two splits is two patients
    # by default the official val folder (16 films in the release) joins train
    merged = kermany_source(tmp_path)
    assert merged["split"].value_counts().to_dict() == {"train": 8, "test": 4}
    assert any("carved by patient" in note for note in merged.attrs["notes"])


# --------------------------------------------------------------------------- config, CLI


def test_named_dataset_through_the_config(label_files, shared_data):
    data = DataConfig(
        source="nih", root=str(label_files / "Data_Entry_2017_v2020.csv.gz"), labels="nih14"
    )
    assert data.labels == list(NIH_LABELS)
    df = load_manifest(DataConfig(source="kermany", root=str(shared_data / "kermany_pneumonia")))
    assert len(df) == 1566
    with pytest.raises(ConfigError, match=r"accepted: .*frontal_only"):
        DataConfig(source="chexpert", root="x", options={"frontal": True})
    with pytest.raises(ConfigError, match="only for the named datasets"):
        DataConfig(source="folder", root="x", options={"task": "subtype"})
    with pytest.raises(ConfigError, match="preset"):
        DataConfig(source="nih", root="x", labels="nih15")
    with pytest.raises(ValueError, match=r"data\.uncertain: the nih dataset does not take it"):
        load_manifest(DataConfig(source="nih", root=data.root, uncertain="ones"))
    with pytest.raises(ValueError, match="has no label"):
        open_dataset("nih", data.root, labels=["Lung Opacity"])


def test_summary_cli_on_a_label_file(tmp_path, label_files):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxr_keras.datasets",
            "summary",
            "rsna",
            str(label_files / "kaggle_stage_2_train_labels.csv.zip"),
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "26684 images, 26684 patients, 1 label(s)" in result.stdout
    assert "6012+ / 20672-" in result.stdout
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["splits"]["all"]["labels"]["Lung Opacity"]["positive"] == 6012
    bad = subprocess.run(
        [sys.executable, "-m", "cxr_keras.datasets", "summary", "nih"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "give the dataset's folder or label file" in bad.stderr


def test_nih_kaggle_sample_labels(tmp_path, label_files):
    """The Kaggle random sample ships sample_labels.csv: other column names, ages as 060Y."""
    rows = pd.read_csv(label_files / "Data_Entry_2017_v2020.csv.gz", nrows=4, dtype=str)
    rows = rows.iloc[:, :7].assign(
        **{
            "Patient Age": [f"{int(a):03d}Y" for a in rows["Patient Age"]],
            "OriginalImageWidth": "2500",
            "OriginalImageHeight": "2048",
        }
    )
    rows.to_csv(tmp_path / "sample_labels.csv", index=False)
    df = nih_source(tmp_path)
    assert len(df) == 4 and df["age"].tolist() == [57, 58, 58, 80]
    assert df["original_width"].tolist() == [2500] * 4
