"""python -m cxr_keras.predict: files, folders and DICOMs in; CSV and JSON out; bad files
reported by name; no identifying DICOM tag in any output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxr_keras.artifact.audit_log import AuditLog
from cxr_keras.artifact.predictor import Predictor
from cxr_keras.sample_data import sample_files
from cxr_keras.serving.predict import collect_files, predict
from tests.conftest import REPO


@pytest.fixture()
def inputs(tmp_path):
    """A folder of two real films, a DICOM with identifying tags, a corrupt file and a
    non-image file; plus a loose film and a missing path."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    films = sample_files("kermany")
    for film in films[:2]:
        shutil.copy(film, folder / film.name)
    dicom = pydicom.dcmread(sample_files("dicom")[0])
    dicom.PatientName = "Doe^Jane"
    dicom.PatientID = "SECRET-4711"
    dicom.PatientBirthDate = "19700101"
    dicom.InstitutionName = "St Elsewhere Hospital"
    dicom.AccessionNumber = "ACC-0815"
    dicom.save_as(folder / "study.dcm")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "report.doc").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    return [str(folder), str(films[5]), str(tmp_path / "missing.jpeg")], films


def test_collect_files_reports_what_it_cannot_use(inputs):
    paths, films = inputs
    files, problems = collect_files(paths)
    assert {f.name for f in files} == {
        films[0].name,
        films[1].name,
        "study.dcm",
        "broken.png",
        films[5].name,
    }
    assert {p["file"] for p in problems} == {"report.doc", "missing.jpeg"}


def test_predict_cli(trained_artifact, inputs, tmp_path):
    paths, _ = inputs
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "cxr_keras.predict",
        "--model",
        str(trained_artifact.path),
        "--out",
        str(out),
        *paths,
        "--mc-passes",
        "3",
        "--gradcam",
        "--log",
        str(tmp_path / "audit" / "log.db"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    flagged = f"4 predicted ({int(pd.read_csv(out / 'predictions.csv')['ood'].sum())} out of"
    assert flagged in result.stdout, result.stdout
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["path", "PNEUMONIA", "decision", "refer", "ood", "ood_score"]
    assert len(table) == 4  # two films, the DICOM, the loose film
    document = json.loads((out / "predictions.json").read_text())
    problems = {p["file"]: p["reason"] for p in document["problems"]}
    assert set(problems) == {"report.doc", "missing.jpeg", "broken.png"}
    assert "broken.png" in result.stderr and "missing.jpeg" in result.stderr
    # the numbers are the Predictor's: temperature and the stored threshold
    expected = Predictor(trained_artifact).predict_files(list(table["path"]))
    np.testing.assert_allclose(table["PNEUMONIA"], expected.probabilities[:, 0], atol=1e-5)
    # written whole: rounding ties images the model ranks apart
    assert (np.round(table["PNEUMONIA"], 6) != table["PNEUMONIA"]).any()
    decisions = np.where(expected.decisions[:, 0], "PNEUMONIA", "negative")
    assert list(table["decision"]) == list(decisions)
    np.testing.assert_allclose(table["ood_score"], expected.ood_scores, rtol=1e-4)
    assert list(table["ood"]) == list(expected.ood)
    for entry in document["files"]:
        assert set(entry["mc_dropout_std"]) == {"PNEUMONIA"}
        assert entry["refer"] == bool(entry["referral_reasons"])
        assert entry["ood"] == bool(entry["ood_reasons"])
        overlay = entry["heatmaps"]["PNEUMONIA"]
        assert (out / "gradcam").as_posix() in overlay
    # nothing identifying from the DICOM header reaches an output or the log
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*.json"))
    written += (out / "predictions.csv").read_text() + result.stdout + result.stderr
    for secret in ("Doe", "Jane", "SECRET-4711", "19700101"):
        assert secret not in written
    # the audit log: one row per answer, as answered, and nothing that names a person or file
    with AuditLog(tmp_path / "audit" / "log.db") as log:
        rows = log.read()
    assert len(rows) == 4 and set(rows["channel"]) == {"predict"}
    assert sorted(rows["source"]) == ["dicom", "jpeg", "jpeg", "jpeg"]
    logged = rows["probabilities"].map(lambda p: p["PNEUMONIA"]).to_numpy()
    np.testing.assert_allclose(np.sort(logged), np.sort(table["PNEUMONIA"]), rtol=1e-12)
    assert list(rows["refer"].astype(bool)) == [e["refer"] for e in document["files"]]
    assert rows["image_hash"].str.fullmatch("[0-9a-f]{64}").all()
    assert rows["weights_sha256"].nunique() == 1 and (rows["latency_ms"] > 0).all()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "audit").iterdir())
    names = ["inbox", "study", "broken", *(Path(p).stem for p in table["path"])]
    for secret in ("Doe", "Jane", "SECRET-4711", "19700101", "Elsewhere", "ACC-0815", *names):
        assert secret.encode() not in stored, secret


def test_nothing_usable_exits_with_a_message(trained_artifact, tmp_path):
    (tmp_path / "empty.jpeg").write_bytes(b"")
    document = predict(
        trained_artifact, [tmp_path / "empty.jpeg"], out=tmp_path / "out", mc_passes=0
    )
    assert document["files"] == [] and document["problems"][0]["file"] == "empty.jpeg"
    assert pd.read_csv(tmp_path / "out" / "predictions.csv").empty
