"""python -m cxr_keras.monitor: a stream of held-out films like the validation films is
not flagged, a stream of adult NIH films is, and the report says so in every format."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cxr_keras.artifact.audit_log import AuditLog
from cxr_keras.artifact.predictor import Predictor, manifest_sizes
from cxr_keras.artifact.reference_profile import load_profile, profile_answers, save_profile
from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
from cxr_keras.evaluation.frames import artifact_manifest, select_split
from cxr_keras.sample_data import sample_files
from cxr_keras.serving.monitor import monitor
from tests.conftest import REPO, subprocess_env

START = datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def streams(trained_artifact, tmp_path_factory):
    """The session model with a reference profile of its validation split, and two logged
    streams over two days: its held-out test split, and the bundled NIH adult films."""
    folder = tmp_path_factory.mktemp("monitor")
    model = copy_artifact(trained_artifact.path, folder / "model")
    artifact = load_artifact(model)
    manifest = artifact_manifest(artifact)
    val = select_split(manifest, "val", "val")
    predictor = Predictor(artifact)
    answers, decoded = predictor.predict_manifest(val)
    profile = profile_answers(
        predictor, answers, sizes=manifest_sizes(val[decoded]), source="the val split"
    )
    artifact.meta["reference_profile"] = save_profile(profile, model)
    write_meta(artifact.meta, model)
    rng = np.random.default_rng(0)  # in no particular order, as films arrive
    held_out = list(rng.permutation(select_split(manifest, "test", "test")["path"].to_numpy()))
    logs = {}
    for name, films in (("held_out", held_out), ("nih", sample_files("nih"))):
        moment = {"at": START}
        log = AuditLog(folder / f"{name}.db", key=b"test key", clock=lambda m=moment: m["at"])
        logged = Predictor(artifact, audit_log=log)
        for day, part in enumerate(np.array_split(np.array(films, dtype=object), 2)):
            moment["at"] = START + timedelta(days=day)
            logged.predict_files(list(part))
        log.close()
        logs[name] = (folder / f"{name}.db", len(films))
    return model, logs, folder


def test_the_profile_travels_with_the_model(streams, tmp_path):
    model, _, _ = streams
    copy = copy_artifact(model, tmp_path / "copy")
    profile = load_profile(copy, load_artifact(copy).meta)
    assert profile["images"] > 30 and len(profile["labels"]["PNEUMONIA"]["probabilities"]) > 30


def test_held_out_films_are_not_flagged_and_nih_films_are(streams):
    model, logs, folder = streams
    held_out = monitor(model, log=logs["held_out"][0], out=folder / "held_out")
    nih = monitor(model, log=logs["nih"][0], out=folder / "nih")
    assert held_out["answers"] == logs["held_out"][1] and nih["answers"] == logs["nih"][1]
    assert held_out["verdict"] == "stable", json.dumps(held_out, indent=1)[:3000]
    assert nih["verdict"] == "drift"
    drifted = [
        name
        for name, entry in {**nih["labels"], **nih["rates"], **nih["image"]}.items()
        if entry["verdict"] == "drift"
    ]
    assert drifted, nih
    # the adult films' intensities are not the children's: each measure behind a verdict
    for name in drifted:
        entry = {**nih["labels"], **nih["rates"], **nih["image"]}[name]
        assert entry["p_value"] < 0.001
    assert [w["answers"] for w in nih["timeline"]] == [54, 54]
    assert [w["start"][:10] for w in nih["timeline"]] == ["2026-12-01", "2026-12-02"]


def run_monitor(model, log, out, *flags) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cxr_keras.monitor", "--model", str(model)]
    return subprocess.run(
        [*command, "--log", str(log), "--out", str(out), *flags],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_report_in_every_format_and_the_exit_code(streams):
    model, logs, folder = streams
    out = folder / "cli_nih"
    result = run_monitor(model, logs["nih"][0], out, "--fail-on", "drift", "--export-csv")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "DRIFT" in result.stdout
    page = (out / "drift_report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and 'src="figures' not in page
    markdown = (out / "drift_report.md").read_text()
    assert "population stability index" in markdown and "| PNEUMONIA | " in markdown
    document = json.loads((out / "drift.json").read_text())
    assert document["verdict"] == "drift" and document["answers"] == 108
    rows = pd.read_csv(out / "audit_log.csv")
    assert len(rows) == 108 and rows["image_hash"].str.fullmatch("[0-9a-f]{64}").all()
    assert rows["image_hash"].is_unique
    for film in sample_files("nih")[:5]:  # no file name in what is exported
        assert film.stem not in (out / "audit_log.csv").read_text()
    # the held-out stream passes even the stricter alarm
    quiet = run_monitor(model, logs["held_out"][0], folder / "cli_held", "--fail-on", "watch")
    assert quiet.returncode == 0 and "STABLE" in quiet.stdout, quiet.stderr[-2000:]
    # a period with no answers has no verdict, and raises no alarm
    later = ("--since", "2027-01-01", "--fail-on", "watch")
    empty = run_monitor(model, logs["held_out"][0], folder / "cli_none", *later)
    assert empty.returncode == 0 and "0 answers: TOO FEW ANSWERS" in empty.stdout


def test_bad_requests_name_the_problem(streams, trained_artifact, tmp_path):
    model, logs, _ = streams
    with pytest.raises(FileNotFoundError, match=r"missing\.db: no audit log"):
        monitor(model, log=tmp_path / "missing.db", out=tmp_path / "out")
    with pytest.raises(ValueError, match="no reference profile stored"):
        bare = copy_artifact(trained_artifact.path, tmp_path / "bare")
        meta = load_artifact(bare).meta
        meta.pop("reference_profile", None)
        write_meta(meta, bare)
        monitor(bare, log=logs["nih"][0], out=tmp_path / "out")
    with pytest.raises(ValueError, match="--window"):
        monitor(model, log=logs["nih"][0], out=tmp_path / "out", window="fortnightly")
