"""Stress evaluation: the evaluated films re-scored under acquisition shifts."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image
from cxr_keras.evaluation.stress import SHIFTS, apply_shift
from cxr_keras.sample_data import sample_files


def _validation_films(folder):
    """The stored artifact in ``folder``, its own validation manifest and label arrays,
    rebuilt independently of evaluate."""
    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.evaluation.frames import artifact_manifest, select_split

    stored = load_artifact(folder)
    val = select_split(artifact_manifest(stored), "val", "val")
    y, mask = label_arrays(val, stored.labels)
    return stored, val, y, mask


def test_every_shift_changes_a_real_film_and_keeps_its_shape_and_range():
    film = load_image(sample_files("kermany")[0], ImageSpec(size=64))[None]
    for shift, severities in SHIFTS.items():
        previous = None
        for severity in range(len(severities)):
            shifted = apply_shift(film, shift=shift, severity=severity)
            assert shifted.shape == film.shape and shifted.dtype == np.float32
            assert shifted.min() >= 0 and shifted.max() <= 1
            change = float(np.abs(shifted - film).mean())
            assert change > 1e-3, (shift, severity)
            if previous is not None:  # the second severity is the stronger one
                assert change > previous, (shift, severity)
            previous = change
    twelve_bit = apply_shift(film, shift="12-bit range", severity=0)
    assert twelve_bit.max() <= 4095 / 65535 + 1e-6
    with pytest.raises(ValueError, match="no shift"):
        apply_shift(film, shift="fog", severity=0)


def test_evaluate_stress_reports_every_shift_and_the_worst_case(trained_artifact, tmp_path):
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.evaluation.evaluate import evaluate

    folder = copy_artifact(trained_artifact.path, tmp_path / "model")
    meta = load_artifact(folder).meta  # stale stored thresholds, which evaluate replaces
    meta["thresholds"]["youden"] = {label: 0.999 for label in meta["labels"]}
    write_meta(meta, folder)
    result = evaluate(
        folder, split="test", out=tmp_path / "report", bootstrap=100, stress=True, stress_images=30
    )
    stress = result["stress"]
    assert abs(stress["images"] - min(30, stress["drawn_from"])) <= 2  # drawn per class
    assert len(stress["shifts"]) == sum(len(s) for s in SHIFTS.values())
    by_name = {(r["shift"], r["severity"]): r for r in stress["shifts"]}
    # a 12-bit film read without rescaling is almost black: every one is flagged
    assert by_name[("12-bit range", "read as 16-bit")]["ood_share"] == 1.0
    assert stress["worst"]["ood_share"]["value"] == 1.0
    assert stress["worst"]["roc_auc"]["value"] <= stress["none"]["roc_auc"]
    # every rule's rates, at the thresholds evaluate has just chosen (not the stale ones)
    assert stress["decision_rule"] == result["decision_rule"] == "youden"
    assert set(stress["rules"]) == set(result["thresholds"])
    for rule, moves in stress["rules"].items():
        assert moves["thresholds"] == pytest.approx(result["thresholds"][rule])
        for key in ("sensitivity", "specificity"):
            assert moves[f"worst_{key}"]["value"] <= moves["none"][key]
            assert all(
                r["rules"][rule][key] >= moves[f"worst_{key}"]["value"] for r in stress["shifts"]
            )
    youden = stress["rules"]["youden"]
    assert youden["thresholds"]["PNEUMONIA"] < 0.999
    assert stress["none"]["sensitivity"] == youden["none"]["sensitivity"]
    assert stress["none"]["specificity"] == youden["none"]["specificity"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Stress: acquisition shifts" in report and "worst specificity" in report
    card = (folder / "MODEL_CARD.md").read_text()
    assert "## Robustness: acquisition shifts" in card and "| JPEG re-compression |" in card
    assert "How each rule's sensitivity and specificity move" in card and "| youden |" in card
    assert "stress" in load_artifact(folder).meta["metrics"]["evaluation"]["test"]
    # the app's model panel says the same: how the thresholds were chosen, how they hold up
    from cxr_keras.serving.app import model_card_markdown

    page = model_card_markdown(load_artifact(folder))
    worst = stress["worst"]["specificity"]
    assert "each placed midway between the deciding validation score" in page
    assert "each placed midway between the deciding validation score" in card
    row = next(
        r
        for r in stress["shifts"]
        if (r["shift"], r["severity"]) == (worst["shift"], worst["severity"])
    )
    assert (
        f"worst {100 * worst['value']:.1f}% ({worst['shift']}, {worst['severity']}; "
        f"{100 * row['ood_share']:.1f}% of those films flagged)"
    ) in page
    assert "**Robustness**: Under acquisition shifts (`test`" in page


def test_stressed_rules_and_temperatures_hold_on_the_pooled_shifted_validation_films(
    trained_artifact, tmp_path
):
    """One evaluate fits both on the same pool: the temperatures on its logits, then the
    stressed rules on its probabilities at those temperatures."""
    from cxr_keras.artifact.calibration import fit_temperature, negative_log_likelihood
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.artifact.store import copy_artifact
    from cxr_keras.evaluation.evaluate import evaluate
    from cxr_keras.evaluation.metrics import threshold_metrics
    from cxr_keras.evaluation.stress import stressed_scores

    folder = copy_artifact(trained_artifact.path, tmp_path / "model")
    with pytest.raises(ValueError, match="needs --stressed-thresholds"):
        evaluate(folder, split="test", decision_rule="youden_stressed")
    with pytest.raises(ValueError, match="needs --calibrate"):
        evaluate(folder, split="test", calibrate_on="stressed")
    with pytest.raises(ValueError, match="val or stressed"):
        evaluate(folder, split="test", calibrate=True, calibrate_on="shifted")
    result = evaluate(
        folder,
        split="test",
        out=tmp_path / "report",
        bootstrap=100,
        calibrate=True,
        calibrate_on="stressed",
        stressed_thresholds=True,
        stress_images=30,
        decision_rule="youden_stressed",
    )
    stored, val, y, mask = _validation_films(folder)
    # the temperatures: fitted on the pooled logits, rebuilt independently
    pool = stressed_scores(Predictor(stored), val, y=y, mask=mask, temperatures=[1.0], limit=30)
    expected = fit_temperature(pool["logits"], pool["y"], mask=pool["mask"])
    assert stored.temperatures == pytest.approx(expected)
    assert stored.meta["calibrated_on"] == result["calibrated_on"]
    assert f"under {pool['versions'] - 1} acquisition shifts" in result["calibrated_on"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"fitted on {result['calibrated_on']}" in card
    # the fit minimises the pooled log loss: below the temperature of the clean films
    clean = Predictor(stored).predict_files(list(val["path"]))
    on_clean = fit_temperature(clean.logits, y, mask=mask)

    def pooled_nll(temperatures):
        known = pool["mask"] > 0
        return negative_log_likelihood(
            (pool["logits"] / np.asarray(temperatures))[known], pool["y"][known]
        )

    assert pooled_nll(stored.temperatures) <= pooled_nll(on_clean) + 1e-9

    # the rules: chosen on the same pool at those temperatures
    assert stored.decision_rule == "youden_stressed"
    assert set(stored.meta["thresholds"]) >= {"youden_stressed", "sensitivity_0.95_stressed"}
    assert "acquisition shifts, pooled" in result["threshold_source"]
    pool = stressed_scores(
        Predictor(stored), val, y=y, mask=mask, temperatures=stored.temperatures, limit=30
    )
    assert pool["versions"] == 1 + sum(len(s) for s in SHIFTS.values())
    assert len(pool["p"]) == pool["films"] * pool["versions"] - pool["left_out"]
    yp, pp = pool["y"][:, 0], pool["p"][:, 0]
    screening = stored.thresholds("sensitivity_0.95_stressed")[0]
    for version in np.unique(pool["version"]):  # the floor holds on every version
        rows = pool["version"] == version
        if yp[rows].max() == 1:
            assert threshold_metrics(yp[rows], pp[rows], screening)["sensitivity"] >= 0.95

    def j(threshold):
        at = threshold_metrics(yp, pp, threshold)
        return at["sensitivity"] + at["specificity"] - 1

    robust, clean = stored.thresholds("youden_stressed")[0], stored.thresholds("youden")[0]
    assert j(robust) >= j(clean) - 1e-12
    assert np.abs(pp - robust).min() > 0  # placed off every pooled score


def test_stressed_thresholds_without_the_validation_split_are_refused(trained_artifact, tmp_path):
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.evaluation.evaluate import evaluate

    folder = copy_artifact(trained_artifact.path, tmp_path / "model")
    meta = load_artifact(folder).meta
    meta["data"]["config"]["root"] = str(tmp_path / "gone")  # its training data is elsewhere
    write_meta(meta, folder)
    films = sample_files("kermany")[:6]
    rows = [{"path": str(f), "PNEUMONIA": float("PNEUMONIA" in str(f))} for f in films]
    manifest = new_manifest(rows, labels=["PNEUMONIA"])
    for flag in ("stressed_thresholds", "calibrate"):
        with pytest.raises(ValueError, match=f"--{flag.replace('_', '-')} needs the artifact's"):
            evaluate(folder, data=manifest, split="all", out=tmp_path / flag, **{flag: True})


def test_validation_films_stressed_for_thresholds_and_for_the_report_are_scored_once(
    trained_artifact, tmp_path, monkeypatch
):
    import cxr_keras.evaluation.stress as stress_module
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.artifact.store import copy_artifact
    from cxr_keras.evaluation.evaluate import evaluate

    scored = []
    score_versions = stress_module._score_versions

    def counting(predictor, images):
        scored.append(len(images))
        return score_versions(predictor, images)

    monkeypatch.setattr(stress_module, "_score_versions", counting)
    folder = copy_artifact(trained_artifact.path, tmp_path / "model")
    result = evaluate(
        folder,
        split="val",
        out=tmp_path / "report",
        bootstrap=100,
        stress=True,
        stressed_thresholds=True,
        stress_images=30,
    )
    assert scored == [result["stress"]["images"]]  # one pass over the shifted films, shared
    # the shared figures are those of a stress run of their own at the same operating point
    stored, val, y, mask = _validation_films(folder)
    alone = stress_module.stress_manifest(
        Predictor(stored),
        val,
        y=y,
        mask=mask,
        limit=30,
        thresholds={rule: stored.thresholds(rule) for rule in result["thresholds"]},
        temperatures=stored.temperatures,
        decision_rule=result["decision_rule"],
    )
    assert len(scored) == 2
    shared = result["stress"]
    for key in ("none", "shifts", "worst", "rules"):  # the same films, predicted alike
        assert alone[key] == shared[key], key
