"""Each source on its real pack: counts, labels, patient ids and views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_keras.data.labels import NIH_LABELS
from cxr_keras.data.manifest import manifest_labels, skipped_files, skipped_summary
from cxr_keras.data.sources import csv_source, dicom_source, folder_source, parse_patient_id

NIH_COUNTS = {  # Wang et al. 2017, the published per-finding counts of 112,120 images
    "Atelectasis": 11559,
    "Cardiomegaly": 2776,
    "Effusion": 13317,
    "Infiltration": 19894,
    "Mass": 5782,
    "Nodule": 6331,
    "Pneumonia": 1431,
    "Pneumothorax": 5302,
    "Consolidation": 4667,
    "Edema": 2303,
    "Emphysema": 2516,
    "Fibrosis": 1686,
    "Pleural_Thickening": 3385,
    "Hernia": 227,
}


def test_folder_source_on_kermany_pack(shared_data):
    pack = shared_data / "kermany_pneumonia"
    df = folder_source(pack)
    assert manifest_labels(df) == ["PNEUMONIA"]
    assert len(df) == 1566 and skipped_files(df).empty
    counts = df.groupby(["split", "class"]).size().to_dict()
    assert counts == {
        ("train", "NORMAL"): 335,
        ("train", "PNEUMONIA"): 986,
        ("val", "NORMAL"): 68,
        ("val", "PNEUMONIA"): 177,
    }
    assert set(df.loc[df["class"] == "NORMAL", "PNEUMONIA"]) == {0.0}
    assert set(df.loc[df["class"] == "PNEUMONIA", "PNEUMONIA"]) == {1.0}
    # patient ids parsed from the file names agree with the pack's own manifest
    official = pd.read_csv(pack / "manifest.csv")
    official["path"] = [str((pack / p).resolve()) for p in official["path"]]
    merged = df.merge(official[["path", "patient_id"]], on="path", suffixes=("", "_pack"))
    assert len(merged) == 1566
    assert (merged["patient_id"] == merged["patient_id_pack"]).all()
    assert df["patient_id"].nunique() == 1202
    assert not df.attrs.get("notes")


def test_folder_source_on_224_pack_and_label_choice(shared_data):
    df = folder_source(shared_data / "kermany_pneumonia_224", labels=["PNEUMONIA"])
    assert len(df) == 3650
    assert df.groupby("split")["PNEUMONIA"].sum().to_dict() == {"train": 2308, "val": 404}
    # NORMAL listed neither as a label nor as negative: its images are skipped, counted
    no_negative = folder_source(
        shared_data / "kermany_pneumonia_224", labels=["PNEUMONIA"], negative_classes=[]
    )
    assert len(no_negative) == 2712
    assert skipped_summary(no_negative) == {"unknown_label": 938}


def test_csv_source_nih_sample_known_rows(shared_data):
    pack = shared_data / "nih_cxr14_sample"
    df = csv_source(
        pack / "labels.csv",
        finding_column="finding_labels",
        patient_column="patient_id",
        view_column="view",
        labels=list(NIH_LABELS),
    )
    assert len(df) == 621 and skipped_files(df).empty
    row = df[df["image_index"] == "00000100_000.png"].iloc[0]
    positives = {label for label in NIH_LABELS if row[label] == 1.0}
    assert positives == {"Atelectasis", "Effusion", "Infiltration"}
    nothing = df[df["image_index"] == "00000129_000.png"].iloc[0]
    assert nothing[list(NIH_LABELS)].sum() == 0  # "No Finding": every label negative
    assert row["view"] == "PA" and row["patient_id"] == "100"
    # the one-hot columns of the same CSV give the same multi-hot vectors
    onehot = csv_source(pack / "labels.csv", patient_column="patient_id", labels=list(NIH_LABELS))
    np.testing.assert_array_equal(
        df[list(NIH_LABELS)].to_numpy(), onehot[list(NIH_LABELS)].to_numpy()
    )
    # patient ids parsed from NIH file names equal the CSV's Patient ID
    parsed = [parse_patient_id(index) for index in df["image_index"]]
    assert parsed == df["patient_id"].tolist()
    assert df["age"].iloc[0] and df["sex"].isin(["M", "F"]).all()


def test_csv_source_official_nih_label_file(shared_data):
    df = csv_source(
        shared_data / "label_files" / "Data_Entry_2017_v2020.csv.gz",
        root="images",
        path_column="Image Index",
        finding_column="Finding Labels",
        patient_column="Patient ID",
        view_column="View Position",
    )
    assert len(df) == 112_120 and df["patient_id"].nunique() == 30_805
    assert {k: int(v) for k, v in df[list(NIH_LABELS)].sum().items()} == NIH_COUNTS
    assert df["view"].value_counts().to_dict() == {"PA": 67310, "AP": 44810}


def test_csv_source_chexpert_uncertain_policies(shared_data):
    csv = shared_data / "label_files" / "chexpert_train.csv.gz"
    raw = pd.read_csv(csv)
    labels = ["Atelectasis", "Edema", "Effusion"]  # "Pleural Effusion" in the CSV
    ones = csv_source(
        csv,
        root="x",
        path_column="Path",
        labels=labels,
        uncertain={"Atelectasis": "ones", "Edema": "ones"},
        blank="zeros",
    )
    ignore = csv_source(
        csv, root="x", path_column="Path", labels=labels, uncertain="ignore", blank="ignore"
    )
    assert len(ones) == len(ignore) == len(raw) == 223_414
    assert ones["patient_id"].nunique() == 64_540  # patientNNNNN from the path
    for label, column in zip(labels, ["Atelectasis", "Edema", "Pleural Effusion"], strict=True):
        assert int(ignore[label].isna().sum()) == int(
            (raw[column] == -1).sum() + raw[column].isna().sum()
        )
        assert int((ignore[label] == 1).sum()) == int((raw[column] == 1).sum())
    # U-ones for Atelectasis/Edema, U-zeros for Effusion (the per-label policy)
    assert int(ones["Atelectasis"].sum()) == int(raw["Atelectasis"].isin([1, -1]).sum())
    assert int(ones["Effusion"].sum()) == int((raw["Pleural Effusion"] == 1).sum())
    assert not ones[labels].isna().any().any()


def test_csv_source_bad_rows_are_skipped_with_reasons(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "path,Finding Labels,pid\n"
        "a.png,Effusion|Mass,1\n"
        "b.png,Banana,2\n"  # unknown label name
        "c.png,,3\n"  # missing label value
        "a.png,Mass,1\n"  # duplicate path
        ",Mass,4\n"  # missing path
        "d.png,No Finding,5\n"
        "e.png,No Finding|Mass,6\n"  # contradiction
    )
    df = csv_source(
        tmp_path / "labels.csv",
        finding_column="Finding Labels",
        patient_column="pid",
        labels=["Effusion", "Mass"],
    )
    assert [p.rsplit("/", 1)[-1] for p in df["path"]] == ["a.png", "d.png"]
    assert df[["Effusion", "Mass"]].to_numpy().tolist() == [[1.0, 1.0], [0.0, 0.0]]
    reasons = skipped_files(df).set_index("code")["reason"].to_dict()
    assert skipped_summary(df) == {"bad_label": 3, "duplicate": 1, "missing_path": 1}
    assert "unknown label name 'Banana'" in skipped_files(df)["reason"].tolist()
    assert reasons["missing_path"] == "empty 'path' cell"
    with pytest.raises(ValueError, match="no column 'Path'"):
        csv_source(tmp_path / "labels.csv", path_column="Path")


def test_dicom_source_with_labels_csv_hashes_patient_ids(shared_data, tmp_path):
    folder = shared_data / "dicom"
    stems = sorted(p.stem for p in folder.glob("*.dcm"))
    rows = [f"{stem},{int(i == 0)}" for i, stem in enumerate(stems)]
    rows.append(f"{stems[0]},1")  # several rows (boxes) of one image collapse to one
    rows.append("not_on_disk,1")
    (tmp_path / "labels.csv").write_text("patientId,Lung Opacity\n" + "\n".join(rows) + "\n")
    df = dicom_source(
        folder, tmp_path / "labels.csv", id_column="patientId", labels=["Lung Opacity"]
    )
    assert len(df) == 3 and manifest_labels(df) == ["Lung Opacity"]
    assert skipped_summary(df) == {"missing": 1}
    assert df["view"].tolist() == ["PA", "PA", "PA"]
    # never the raw PatientID (9RG1 and the SIIM uuid) anywhere in the manifest
    text = df.astype(str).to_csv()
    assert "9RG1" not in text and "16d7f894" not in text
    # the two RG1 files share one PatientID, hence one (hashed) patient
    assert df["patient_id"].nunique() == 2


def _kermany_like(root, layout: dict[str, list[str]]):
    """Copy bundled Kermany images into ``root/<folder>/<file name>`` as laid out."""
    import shutil

    from cxr_keras.sample_data import sample_files

    by_name = {f.name: f for f in sample_files("kermany")}
    for folder, names in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(by_name[name], root / folder / name)


def test_archive_debris_is_ignored_and_mixed_layouts_are_refused(tmp_path):
    normal, pneumonia = "IM-0152-0001.jpeg", "person101_virus_187.jpeg"
    _kermany_like(
        tmp_path / "a",
        {
            "train/NORMAL": [normal],
            "train/PNEUMONIA": [pneumonia],
            "test/NORMAL": ["IM-0191-0001.jpeg"],
            "__MACOSX/train": [normal],
        },
    )
    df = folder_source(tmp_path / "a")
    assert manifest_labels(df) == ["PNEUMONIA"] and sorted(df["split"].unique()) == [
        "test",
        "train",
    ]
    _kermany_like(tmp_path / "b", {"train/NORMAL": [normal], "chest_xray/train/NORMAL": [normal]})
    with pytest.raises(
        ValueError, match=r"split folders \(train\) beside other folders \(chest_xray\)"
    ):
        folder_source(tmp_path / "b")
    _kermany_like(tmp_path / "c", {"NORMAL": [normal], "test": [pneumonia]})
    with pytest.raises(ValueError, match="beside other folders"):
        folder_source(tmp_path / "c")


def test_official_kermany_ids_are_unique_only_within_a_split(tmp_path):
    from cxr_keras.data.settings import SplitConfig
    from cxr_keras.data.splits import PatientLeakageError, assign_splits

    # TRAIN person101 and TEST person101 are different children in the official release
    _kermany_like(
        tmp_path,
        {
            "train/PNEUMONIA": ["person101_virus_187.jpeg"],
            "train/NORMAL": ["IM-0152-0001.jpeg"],
            "test/PNEUMONIA": ["person101_virus_188.jpeg"],
        },
    )
    with pytest.raises(PatientLeakageError, match="patient_ids_per_split"):
        assign_splits(folder_source(tmp_path), SplitConfig(val=0.0))
    scoped = folder_source(tmp_path, patient_ids_per_split=True)
    assert set(scoped["patient_id"]) == {"train/person101", "train/IM-0152", "test/person101"}
    assert assign_splits(scoped, SplitConfig(val=0.0))["split"].tolist() == [
        "test",
        "train",
        "train",
    ]


def test_dicom_source_errors_and_ambiguous_names(shared_data, tmp_path):
    import shutil

    folder = tmp_path / "dcm"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    src = next((shared_data / "dicom").glob("siim*.dcm"))
    shutil.copy(src, folder / "a" / "x.dcm")
    shutil.copy(src, folder / "b" / "x.dcm")  # two files named x: which one is row x?
    shutil.copy(src, folder / "b" / "y.dcm")
    (tmp_path / "labels.csv").write_text("pid,Target\nx,1\ny,0\n")
    with pytest.raises(ValueError, match="labels CSV not found"):
        dicom_source(folder, tmp_path / "nope.csv", id_column="pid", labels=["Target"])
    df = dicom_source(folder, tmp_path / "labels.csv", id_column="pid", labels=["Target"])
    assert [p.rsplit("/", 1)[-1] for p in df["path"]] == ["y.dcm"]
    assert skipped_summary(df) == {"ambiguous": 2}


def test_uncertain_policy_naming_an_unknown_label_is_refused(shared_data):
    with pytest.raises(ValueError, match=r"not learned: \['Atelectsis'\]"):
        csv_source(
            shared_data / "label_files" / "chexpert_train.csv.gz",
            root="x",
            path_column="Path",
            labels=["Atelectasis"],
            uncertain={"Atelectsis": "ones"},
        )


def test_several_roots_read_as_one_dataset(shared_data):
    from cxr_keras.core.errors import ConfigError
    from cxr_keras.data.load import load_manifest
    from cxr_keras.data.settings import DataConfig

    packs = [str(shared_data / "kermany_pneumonia"), str(shared_data / "kermany_pneumonia_224")]
    df = load_manifest(DataConfig(source="folder", root=packs, labels=["PNEUMONIA"]))
    # the two packs are the whole official TRAIN folder: 1341 NORMAL, 3875 PNEUMONIA
    assert len(df) == 5216 and int(df["PNEUMONIA"].sum()) == 3875
    assert df["split"].value_counts().to_dict() == {"train": 1321 + 3110, "val": 245 + 540}
    # one patient's images from both packs share its id and its split folder
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    twice = load_manifest(DataConfig(source="folder", root=[packs[0], packs[0]]))
    assert len(twice) == 1566 and "kept once" in twice.attrs["notes"][-1]
    with pytest.raises(ValueError, match="different labels"):
        load_manifest(DataConfig(source="folder", root=[packs[0], "sample:nih"]))
    with pytest.raises(ConfigError, match="empty list"):
        DataConfig(source="folder", root=[])
    with pytest.raises(ConfigError, match="one folder for the csv source"):
        DataConfig(source="csv", root=packs, csv="labels.csv")
