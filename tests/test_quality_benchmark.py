"""benchmarks/quality.py: an artifact's figures on a labelled folder, at its stored
thresholds, recomputed here from the Predictor's own answers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.sample_data import sample_files, sample_path
from tests.conftest import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))
from quality import quality


def test_quality_uses_the_stored_thresholds_and_temperature(trained_artifact):
    result = quality(trained_artifact.path, sample_path("kermany"), bootstrap=200)
    films = sample_files("kermany")
    assert result["images"] == len(films) and result["undecodable"] == 0
    answers = Predictor(trained_artifact).predict_files(films)
    truth = np.array([f.parent.name == "PNEUMONIA" for f in films], dtype=int)
    figures = result["labels"]["PNEUMONIA"]
    assert figures["positives"] == truth.sum() and figures["negatives"] == (1 - truth).sum()
    stored = trained_artifact.meta["thresholds"]
    assert set(figures["at_thresholds"]) == set(stored)
    for rule, values in stored.items():
        decided = answers.probabilities[:, 0] >= values["PNEUMONIA"]
        m = figures["at_thresholds"][rule]
        assert m["threshold"] == values["PNEUMONIA"]
        assert m["accuracy"] == pytest.approx((decided == truth).mean())
        assert m["sensitivity"] == pytest.approx(decided[truth == 1].mean())
    low, high = figures["roc_auc_ci"]
    assert low <= figures["roc_auc"] <= high
    assert 0 <= figures["ece"] <= 1


def test_quality_command_prints_one_line_per_figure(trained_artifact):
    command = [sys.executable, "benchmarks/quality.py", "--model", str(trained_artifact.path)]
    command += ["--data", str(sample_path("kermany")), "--bootstrap", "200"]
    done = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("PNEUMONIA roc_auc: 0.") and "95% CI" in line for line in lines)
    assert any("(decision rule)" in line and "specificity" in line for line in lines)
    assert any(line.startswith("PNEUMONIA ece: ") for line in lines)
