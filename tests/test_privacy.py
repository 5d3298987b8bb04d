"""Identifying DICOM tags never reach manifests, outputs or logs; patient ids are keyed
hashes that cannot be reversed by trying likely ids without the key."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom

from cxr_keras.data.privacy import hash_patient_id, patient_id_key
from cxr_keras.data.sources import folder_source

REPO = Path(__file__).resolve().parents[1]
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "OtherPatientIDs")


def _identifying_values(paths) -> set[str]:
    values = set()
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for tag in IDENTIFYING:
            text = str(ds.get(tag, "") or "").strip()
            values.update(part for part in text.replace("^", " ").split() if len(part) >= 4)
    return values


def test_key_comes_from_config_then_environment_then_a_private_file(tmp_path, monkeypatch):
    assert patient_id_key("from-config") == b"from-config"
    monkeypatch.setenv("CXR_KERAS_PATIENT_KEY", "from-env")
    assert patient_id_key(None) == b"from-env"
    monkeypatch.delenv("CXR_KERAS_PATIENT_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key = patient_id_key(None)
    key_file = tmp_path / "cxr-keras" / "patient_id.key"
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(key) == 64 and patient_id_key(None) == key  # created once, then reused


def test_hashed_ids_need_the_key():
    plain = hashlib.sha256(b"cxr-keras\x009RG1").hexdigest()[:16]
    keyed = hash_patient_id("9RG1", b"secret")
    assert keyed != plain and keyed != hash_patient_id("9RG1", b"other secret")


def test_dataset_outputs_and_logs_carry_no_identifying_tag(shared_data, tmp_path):
    dicoms = sorted((shared_data / "dicom").glob("*.dcm"))
    secrets = _identifying_values(dicoms)
    assert {"9RG1", "CompressedSamples"} <= secrets  # the test can see what must not leak
    for i, path in enumerate(dicoms):
        (tmp_path / "data" / "NORMAL").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "data" / "NORMAL" / f"film{i}.dcm")
    shutil.copy(dicoms[0], tmp_path / "data" / "NORMAL" / "broken.dcm")
    (tmp_path / "data" / "NORMAL" / "broken.dcm").write_bytes(dicoms[0].read_bytes()[:4000])
    manifest = folder_source(tmp_path / "data", labels=[], negative_classes=["NORMAL"])
    assert manifest["patient_id"].nunique() == 2  # every RG1 copy shares one patient
    config = tmp_path / "dicom.yaml"
    config.write_text(
        "name: privacy\ndata:\n  source: folder\n  root: data\n  labels: [Effusion]\n"
        "  negative_classes: [NORMAL]\n  split: {method: patient, val: 0.34}\n"
        "image: {size: 64}\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxr_keras.datasets",
            "summary",
            "--config",
            str(config),
            "--verbose",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "broken.dcm" in result.stderr  # the bad file is named, by its file name
    written = "".join(
        p.read_text(errors="ignore")
        for p in (tmp_path / "runs").rglob("*")
        if p.is_file() and p.suffix in (".csv", ".json", ".txt")
    )
    for text in (written, result.stdout, result.stderr):
        leaked = [s for s in secrets if s in text]
        assert not leaked, leaked
