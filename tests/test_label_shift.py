"""Label shift: the prevalence where a model is used, re-estimated from its unlabelled
answers (EM on bias-corrected temperature scaling), and the answers corrected to it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cxr_keras.artifact.label_shift import (
    adapt_probabilities,
    bcts_probabilities,
    em_prevalence,
    estimate_prevalence,
    fit_bcts,
)
from cxr_keras.sample_data import sample_files
from tests.conftest import REPO

TRAINED_AT = 0.74  # the Kermany training split's share of pneumonia


def _logits(rng, y):
    """Logits of a model whose classes overlap like a real one's (class-conditional normals)."""
    return np.where(y, rng.normal(1.5, 1.2, len(y)), rng.normal(-1.5, 1.2, len(y)))


def test_em_recovers_the_prevalence_and_correction_does_not_cost_accuracy():
    rng = np.random.default_rng(0)
    # calibration on a validation split at the training prevalence
    y_val = rng.random(3000) < TRAINED_AT
    calibration = fit_bcts(_logits(rng, y_val), y_val)
    for prevalence in (0.2, 0.5, 0.625, 0.9):
        y = rng.random(20000) < prevalence  # the same kind of films, resampled
        z = _logits(rng, y)
        p = bcts_probabilities(z, calibration)
        estimate, (low, high) = estimate_prevalence(p, prior=TRAINED_AT, n_resamples=50)
        assert abs(estimate - prevalence) < 0.03, (prevalence, estimate)
        assert low <= estimate <= high and high - low < 0.1
        corrected = adapt_probabilities(p, prior_from=TRAINED_AT, prior_to=estimate)
        before, after = np.mean((p >= 0.5) == y), np.mean((corrected >= 0.5) == y)
        assert after >= before - 1e-9, (prevalence, before, after)
    # no shift: the estimate stays where it was calibrated
    y = rng.random(3000) < TRAINED_AT
    p = bcts_probabilities(_logits(rng, y), calibration)
    assert em_prevalence(p, prior=TRAINED_AT) == pytest.approx(TRAINED_AT, abs=0.03)


@pytest.fixture(scope="module")
def evaluated(trained_artifact, tmp_path_factory):
    """A copy of the shared model, evaluated: its label-shift calibration is stored."""
    from cxr_keras.artifact.store import copy_artifact, load_artifact
    from cxr_keras.evaluation.evaluate import evaluate

    folder = copy_artifact(trained_artifact.path, tmp_path_factory.mktemp("ls") / "model")
    evaluate(folder, split="test", out=folder.parent / "report", bootstrap=100)
    return load_artifact(folder)


def test_evaluate_stores_the_calibration_predict_adapts_with(evaluated):
    entry = evaluated.meta["label_shift"]
    assert set(entry["calibration"]["PNEUMONIA"]) == {"temperature", "bias"}
    assert 0 < entry["prevalence"]["PNEUMONIA"] < 1
    assert entry["fitted_on"]["split"] == "val"


def test_predict_adapt_prior_writes_prevalence_json(evaluated, tmp_path):
    films = sample_files("kermany")
    normal = [f for f in films if "NORMAL" in str(f)]
    pneumonia = [f for f in films if "PNEUMONIA" in str(f)]
    chosen = normal[:60] + pneumonia[:20]  # 25 % pneumonia; trained at about 74 %
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "cxr_keras.predict", "--model", str(evaluated.path),
        "--out", str(out), "--mc-passes", "0", "--adapt-prior", *map(str, chosen),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    prevalence = json.loads((out / "prevalence.json").read_text())
    block = prevalence["PNEUMONIA"]
    assert set(block) == {"estimated", "ci95", "training"}
    assert block["training"] == evaluated.meta["label_shift"]["prevalence"]["PNEUMONIA"]
    low, high = block["ci95"]
    assert low <= block["estimated"] <= high
    assert block["estimated"] < block["training"]  # fewer positives than at training
    table = pd.read_csv(out / "predictions.csv")
    in_scope = ~table["ood"]
    # EM's fixed point: the corrected probabilities average to the estimated prevalence
    assert table.loc[in_scope, "PNEUMONIA"].mean() == pytest.approx(block["estimated"], abs=2e-3)
    # a monotone correction: the films keep their order
    ranks = table[["PNEUMONIA", "PNEUMONIA_before_adaptation"]].rank()
    assert (ranks["PNEUMONIA"] == ranks["PNEUMONIA_before_adaptation"]).all()
    # the Youden rule's threshold is a cut on the score: its decisions do not move
    threshold = evaluated.thresholds()[0]
    decided = table["PNEUMONIA_before_adaptation"] >= threshold
    assert evaluated.decision_rule == "youden"
    assert list(table["decision"] == "PNEUMONIA") == list(decided)
    document = json.loads((out / "predictions.json").read_text())
    assert document["prior_adaptation"]["images"] == int(in_scope.sum())
    assert "Decisions are unchanged" in document["prior_adaptation"]["note"]


def test_declared_prevalence_and_too_few_images(evaluated, tmp_path):
    from cxr_keras.serving.predict import predict

    films = sample_files("kermany")[:10]
    with pytest.raises(ValueError, match="at least 50 in-distribution images"):
        predict(evaluated, films, out=tmp_path / "a", mc_passes=0, adapt_prior=True)
    document = predict(evaluated, films, out=tmp_path / "b", mc_passes=0, prevalence=0.3)
    block = json.loads((tmp_path / "b" / "prevalence.json").read_text())["PNEUMONIA"]
    assert block["estimated"] == 0.3 and block["ci95"] is None
    assert document["prior_adaptation"]["method"] == "declared"
    # the same correction for every film: the odds change by one factor
    calibration = evaluated.meta["label_shift"]["calibration"]["PNEUMONIA"]
    logits = (
        np.log(
            [
                (lambda p: p / (1 - p))(e["probabilities_before_adaptation"]["PNEUMONIA"])
                for e in document["files"]
            ]
        )
        * evaluated.temperatures[0]
    )
    expected = adapt_probabilities(
        bcts_probabilities(logits, calibration), prior_from=block["training"], prior_to=0.3
    )
    got = [e["probabilities"]["PNEUMONIA"] for e in document["files"]]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown labels"):
        predict(evaluated, films, out=tmp_path / "c", prevalence={"EFFUSION": 0.2})


def test_the_default_rule_decides_the_most_probable_class_at_the_new_prevalence(
    evaluated, tmp_path
):
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.serving.predict import predict

    folder = copy_artifact(evaluated.path, tmp_path / "default_rule")
    meta = dict(evaluated.meta, decision_rule="default")
    write_meta(meta, folder)
    films = sample_files("kermany")[:12]
    document = predict(load_artifact(folder), films, out=tmp_path / "o", prevalence=0.02)
    for entry in document["files"]:
        corrected = entry["probabilities"]["PNEUMONIA"]
        assert entry["decisions"]["PNEUMONIA"] == (corrected >= 0.5)
    assert "most probable class" in document["prior_adaptation"]["note"]


@pytest.mark.parametrize(
    ("values", "message"),
    [(["1.5"], "a share in \\(0, 1\\)"), (["PNEUMONIA=x"], "a share"), (["0.2", "0.3"], "LABEL=P")],
)
def test_a_bad_declared_prevalence_is_refused_before_any_model_loads(values, message):
    from cxr_keras.predict import main

    with pytest.raises(ValueError, match=message):
        main(["--model", "no_such_model", "--out", "o", "film.png", "--prevalence", *values])


def test_evaluate_adapt_prior_measures_what_predict_would_answer(evaluated, tmp_path):
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.evaluation.evaluate import evaluate
    from cxr_keras.serving.predict import predict

    films = sample_files("kermany")
    normal = [f for f in films if "NORMAL" in str(f)][:60]
    pneumonia = [f for f in films if "PNEUMONIA" in str(f)][:20]
    rows = [{"path": str(f), "PNEUMONIA": 0.0} for f in normal]
    rows += [{"path": str(f), "PNEUMONIA": 1.0} for f in pneumonia]
    manifest = new_manifest(rows, labels=["PNEUMONIA"])
    result = evaluate(
        evaluated, data=manifest, split="all", out=tmp_path / "e", bootstrap=100, adapt_prior=True
    )
    block = result["prior_adaptation"]["labels"]["PNEUMONIA"]
    prevalence = block["prevalence"]
    assert prevalence["observed"] == pytest.approx(0.25)
    assert prevalence["error"] == pytest.approx(prevalence["estimated"] - 0.25)
    low, high = prevalence["ci95"]
    assert low <= prevalence["estimated"] <= high
    # the same estimate predict --adapt-prior makes on the same films
    predict(evaluated, normal + pneumonia, out=tmp_path / "p", mc_passes=0, adapt_prior=True)
    answered = json.loads((tmp_path / "p" / "prevalence.json").read_text())["PNEUMONIA"]
    assert prevalence["estimated"] == pytest.approx(answered["estimated"], abs=1e-6)
    assert prevalence["training"] == answered["training"]
    # before: the decisions at 0.5 of the evaluated, temperature-scaled probabilities
    table = pd.read_csv(tmp_path / "e" / "predictions.csv")
    said = table["probability_PNEUMONIA"] >= 0.5
    accuracy = float((said == (table["PNEUMONIA"] == 1)).mean())
    assert block["at_0.5"]["before"]["accuracy"] == pytest.approx(accuracy)
    assert 0 <= block["at_0.5"]["after"]["accuracy"] <= 1
    assert result["discrimination"]["labels"]["PNEUMONIA"]["n"] == 80
    assert "After a label-shift correction" in (tmp_path / "e" / "report.md").read_text()

    # a declared prevalence: no interval, the error against the labels
    declared = evaluate(
        evaluated, data=manifest, split="all", out=tmp_path / "d", bootstrap=100, prevalence=0.25
    )["prior_adaptation"]
    assert declared["method"] == "declared"
    assert declared["labels"]["PNEUMONIA"]["prevalence"]["error"] == pytest.approx(0)
    assert declared["labels"]["PNEUMONIA"]["prevalence"]["ci95"] is None
    with pytest.raises(ValueError, match="--prevalence declares it"):
        evaluate(evaluated, data=manifest, split="all", adapt_prior=True, prevalence=0.3)


def test_evaluate_refuses_a_bad_declared_prevalence_before_any_model_loads():
    from cxr_keras.evaluate import main

    with pytest.raises(ValueError, match="a share in"):
        main(["--model", "no_such_model", "--prevalence", "0"])
