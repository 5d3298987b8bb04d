"""Patient-level splits: disjoint, reproducible, stratified; leaks are refused."""

from __future__ import annotations

import pandas as pd
import pytest

from cxr_keras.data.manifest import new_manifest
from cxr_keras.data.settings import SplitConfig
from cxr_keras.data.sources import csv_source, folder_source
from cxr_keras.data.splits import (
    PatientLeakageError,
    assign_splits,
    check_patient_disjoint,
    split_by_patient,
)


@pytest.fixture(scope="module")
def kermany(shared_data):
    return folder_source(shared_data / "kermany_pneumonia").drop(columns="split")


def _patients(df, name):
    return set(df.loc[df["split"] == name, "patient_id"])


def test_split_is_disjoint_by_patient_and_sized(kermany):
    df = split_by_patient(kermany, val=0.15, test=0.15, seed=3)
    train, val, test = (_patients(df, n) for n in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    n = kermany["patient_id"].nunique()
    assert abs(len(val) - 0.15 * n) <= 1 and abs(len(test) - 0.15 * n) <= 1
    # several images of one patient (person23 has 12 here) always land together
    assert df.loc[df["patient_id"] == "person23", "split"].nunique() == 1


def test_split_is_reproducible_whatever_the_row_order(kermany):
    a = split_by_patient(kermany, val=0.2, seed=11)
    shuffled = kermany.sample(frac=1.0, random_state=0)
    shuffled.attrs = dict(kermany.attrs)
    b = split_by_patient(shuffled, val=0.2, seed=11)
    assert a.set_index("path")["split"].equals(b.set_index("path")["split"].loc[a["path"]])
    c = split_by_patient(kermany, val=0.2, seed=12)
    assert _patients(a, "val") != _patients(c, "val")


def test_split_is_stratified(kermany):
    df = split_by_patient(kermany, val=0.2, test=0.2, seed=5)
    prevalence = df.groupby("split")["PNEUMONIA"].mean()
    assert prevalence.max() - prevalence.min() < 0.05


def test_multilabel_split_keeps_rare_labels_in_every_split(shared_data):
    nih = csv_source(
        shared_data / "nih_cxr14_sample" / "labels.csv",
        patient_column="patient_id",
        labels=["Hernia", "Edema", "Effusion"],
    )
    df = split_by_patient(nih, val=0.2, test=0.2, seed=0)
    per_split = df.groupby("split")[["Hernia", "Edema"]].sum()
    assert (per_split > 0).all().all(), per_split


def test_leak_is_detected():
    df = new_manifest(
        [
            {"path": f"/{i}.png", "A": 0.0, "patient_id": p, "split": s}
            for i, (p, s) in enumerate([("p1", "train"), ("p1", "val"), ("p2", "train")])
        ],
        labels=["A"],
    )
    with pytest.raises(PatientLeakageError, match=r"1 patient\(s\).*p1: \['train', 'val'\]"):
        check_patient_disjoint(df)


def test_source_split_kept_and_missing_test_carved_from_train(shared_data):
    df = folder_source(shared_data / "kermany_pneumonia")
    kept = assign_splits(df, SplitConfig(method="auto", test=0.0))
    assert kept["split"].value_counts().to_dict() == {"train": 1321, "val": 245}
    carved = assign_splits(df, SplitConfig(method="auto", test=0.1), seed=0)
    counts = carved["split"].value_counts()
    assert counts["val"] == 245 and counts["test"] > 100
    assert set(carved.loc[carved["split"] == "test", "path"]) <= set(
        df.loc[df["split"] == "train", "path"]
    )
    check_patient_disjoint(carved)
    with pytest.raises(ValueError, match="gives no split"):
        assign_splits(df.drop(columns="split"), SplitConfig(method="column"))


def test_leaky_source_split_is_refused():
    rows = pd.DataFrame(
        {
            "path": ["/a", "/b"],
            "A": [1.0, 0.0],
            "patient_id": ["x", "x"],
            "split": ["train", "test"],
        }
    )
    with pytest.raises(PatientLeakageError):
        assign_splits(new_manifest(rows, ["A"]), SplitConfig(method="auto"))


def test_patient_ids_are_text_and_never_missing():
    rows = [
        {"path": "/a", "A": 0.0, "patient_id": 75, "split": "train"},
        {"path": "/b", "A": 0.0, "patient_id": "75", "split": "val"},
        {"path": "/c", "A": 1.0, "patient_id": None, "split": "val"},
        {"path": "/d", "A": 1.0, "patient_id": " ", "split": "train"},
    ]
    df = new_manifest(rows, ["A"])
    assert df["patient_id"].tolist() == ["75", "75", "image:/c", "image:/d"]
    with pytest.raises(PatientLeakageError, match="75"):  # NIH 75 and "75" are one patient
        check_patient_disjoint(df)
    split = split_by_patient(df.iloc[2:].assign(split=None), val=0.5, seed=0, labels=["A"])
    assert split["split"].notna().all()


def test_train_fraction_thins_training_patients_only(shared_data):
    from cxr_keras.core.errors import ConfigError
    from cxr_keras.data.splits import assign_splits

    manifest = folder_source(shared_data / "kermany_pneumonia_224")
    full = assign_splits(manifest, SplitConfig())
    quarter = assign_splits(manifest, SplitConfig(train_fraction=0.25))
    for split in ("val", "test"):
        assert set(quarter.loc[quarter["split"] == split, "path"]) == set(
            full.loc[full["split"] == split, "path"]
        )
    train, kept = full[full["split"] == "train"], quarter[quarter["split"] == "train"]
    assert set(kept["path"]) < set(train["path"])
    assert 0.2 < kept["patient_id"].nunique() / train["patient_id"].nunique() < 0.3
    # whole patients, and the class balance of the training split is kept (stratified)
    assert set(train[train["patient_id"].isin(kept["patient_id"])]["path"]) == set(kept["path"])
    assert abs(kept["PNEUMONIA"].mean() - train["PNEUMONIA"].mean()) < 0.03
    assert "train_fraction 0.25" in quarter.attrs["notes"][-1]
    with pytest.raises(ConfigError, match="train_fraction"):
        SplitConfig(train_fraction=0)
