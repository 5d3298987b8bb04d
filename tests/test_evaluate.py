"""python -m cxr_keras.evaluate on real trained models: the report, the stored operating
points and calibration, shipped-model protection, bad files, multi-label."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxr_keras.artifact.calibration import sigmoid
from cxr_keras.artifact.predictor import Predictor
from cxr_keras.artifact.store import copy_artifact, load_artifact
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.batching import label_arrays
from cxr_keras.evaluation.evaluate import evaluate
from cxr_keras.evaluation.frames import artifact_manifest, select_split
from cxr_keras.evaluation.operating_points import youden_threshold
from cxr_keras.sample_data import sample_files
from tests.conftest import REPO, tiny_nih_model


@pytest.fixture(scope="module")
def evaluated(trained_artifact, tmp_path_factory):
    """A copy of the session's model (so its thresholds stay 0.5 for the other tests),
    evaluated once with calibration."""
    model = copy_artifact(trained_artifact.path, tmp_path_factory.mktemp("eval") / "model")
    out = model.parent / "report"
    result = evaluate(
        model, split="test", out=out, calibrate=True, bootstrap=200, referral={"band": 0.05}
    )
    return model, out, result


def artifact_threshold(model) -> float:
    return load_artifact(model).thresholds()[0]


def test_report_files_and_numbers(evaluated):
    model, out, result = evaluated
    for name in ("report.md", "report.html", "metrics.json", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    for name in ("roc_pr", "confusion", "reliability", "errors", "samples", "training"):
        assert (out / result["figures"][name]).read_bytes()[:4] == b"\x89PNG"
    predictions = pd.read_csv(out / "predictions.csv")
    test = select_split(artifact_manifest(load_artifact(model)), "test", "test")
    assert sorted(predictions["path"]) == sorted(test["path"])
    expected = roc_auc_score(predictions["PNEUMONIA"], predictions["probability_PNEUMONIA"])
    metrics = json.loads((out / "metrics.json").read_text())
    auc = metrics["discrimination"]["labels"]["PNEUMONIA"]["roc_auc"]
    assert auc == pytest.approx(expected, abs=1e-5)
    low, high = metrics["discrimination"]["labels"]["PNEUMONIA"]["roc_auc_ci"]
    assert low <= auc <= high
    assert metrics["discrimination"]["bootstrap"]["resamples"] == 200
    assert metrics["discrimination"]["bootstrap"]["unit"] == "patient"
    at = metrics["at_thresholds"]
    assert set(at) == {"default", "youden", "f1_max", "sensitivity_0.95"}
    decision = at["youden"]["PNEUMONIA"]
    assert decision["tp"] + decision["fn"] == int(predictions["PNEUMONIA"].sum())
    assert decision["tp"] + decision["fp"] == int(predictions["decision_PNEUMONIA"].sum())
    near = (predictions["probability_PNEUMONIA"] - artifact_threshold(model)).abs() < 0.05
    assert metrics["referral"]["near_threshold_images"] == int(near.sum())
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    markdown = (out / "report.md").read_text()
    assert "temperature-scaled" in markdown and "95% CI" in markdown and "(decision)" in markdown
    # the figure captions name the decision rule, not the referral rule stored beside it
    assert "Confusion matrices at the youden thresholds" in markdown
    assert "at the {" not in markdown


def test_predictions_csv_keeps_full_precision(evaluated):
    """Rounded probabilities tie images the model ranks apart, and move AUCs."""
    _, out, _ = evaluated
    p = pd.read_csv(out / "predictions.csv")["probability_PNEUMONIA"].to_numpy()
    assert (np.round(p, 6) != p).mean() > 0.5


def test_thresholds_come_from_validation_and_are_stored(evaluated):
    model, _, result = evaluated
    artifact = load_artifact(model)
    assert artifact.decision_rule == "youden"
    assert artifact.meta["thresholds"]["default"] == {"PNEUMONIA": 0.5}
    assert artifact.meta["operating_points"]["chosen_on"] == "val"
    temperature = artifact.temperatures[0]
    assert temperature == pytest.approx(result["temperatures"]["PNEUMONIA"]) and temperature != 1
    # recompute Youden on the validation split by hand: it must be the stored threshold
    val = select_split(artifact_manifest(artifact), "val", "val")
    predictor = Predictor(artifact)
    logits = predictor.manifest_logits(val)
    y, _ = label_arrays(val, artifact.labels)
    expected = youden_threshold(y[:, 0], sigmoid(logits[:, 0] / temperature))
    assert artifact.thresholds()[0] == pytest.approx(expected)
    # predict uses the stored temperature and the decision threshold
    one = predictor.predict_files([val["path"][0]])
    assert one.probabilities[0, 0] == pytest.approx(sigmoid(logits[0, 0] / temperature), abs=1e-5)
    assert one.decisions[0, 0] == (one.probabilities[0, 0] >= artifact.thresholds()[0])
    assert artifact.meta["referral"] == {"band": 0.05, "max_std": 0.15, "passes": 20}
    nll = result["calibration"]["validation_nll"]
    assert nll["after"] <= nll["before"]


def test_the_reference_profile_is_the_validation_answers_at_the_stored_rule(evaluated):
    from cxr_keras.artifact.reference_profile import load_profile

    model, _, result = evaluated
    artifact = load_artifact(model)
    profile = load_profile(model, artifact.meta)
    val = select_split(artifact_manifest(artifact), "val", "val")
    answers, _ = Predictor(artifact).predict_manifest(val)
    assert artifact.meta["reference_profile"]["images"] == profile["images"] == len(val)
    assert profile["thresholds"] == {"PNEUMONIA": artifact.thresholds()[0]}
    np.testing.assert_allclose(
        profile["labels"]["PNEUMONIA"]["probabilities"],
        np.sort(answers.probabilities[:, 0]),
        atol=1e-6,
    )
    positive = answers.decisions[:, 0].mean()
    assert profile["labels"]["PNEUMONIA"]["positive_share"] == pytest.approx(positive)
    assert profile["ood_share"] == pytest.approx(answers.ood.mean())
    np.testing.assert_allclose(
        profile["image"]["mean_intensity"], np.sort(answers.statistics[:, 2]), atol=1e-6
    )
    assert profile["decision_rule"] == result["decision_rule"]


def test_bootstrap_thresholds_come_from_the_reported_spread(evaluated, tmp_path):
    model, _, point = evaluated
    spread = point["threshold_stability"]["youden"]["PNEUMONIA"]
    assert spread["low"] <= point["thresholds"]["youden"]["PNEUMONIA"] <= spread["high"]
    assert spread["resamples"] == 200 and spread["width"] == spread["high"] - spread["low"]
    copy = copy_artifact(model, tmp_path / "steady")
    steady = evaluate(copy, out=tmp_path / "report", bootstrap=200, threshold_estimate="bootstrap")
    for rule, per_label in steady["threshold_stability"].items():
        # medians; the screening rule's floor holds in 97.5 % of resamples: the low end
        end = "low" if rule.startswith("sensitivity_") else "median"
        assert steady["thresholds"][rule]["PNEUMONIA"] == per_label["PNEUMONIA"][end], rule
    assert load_artifact(copy).thresholds("youden")[0] == spread["median"]
    assert "screening at the 2.5th percentile" in steady["threshold_source"]
    with pytest.raises(ValueError, match="threshold-estimate"):
        evaluate(copy, threshold_estimate="mean")


def test_a_shipped_model_changes_only_with_the_flag(trained_artifact, tmp_path):
    shipped = copy_artifact(trained_artifact.path, tmp_path / "models" / "pneumonia")
    before = (shipped / "cxr_model.json").read_text()
    result = evaluate(shipped, split="val", out=tmp_path / "out", bootstrap=100)
    assert (shipped / "cxr_model.json").read_text() == before
    assert any("optimistic" in note for note in result["notes"])  # val chose the thresholds
    with pytest.raises(ValueError, match="--update-model to fit its out-of-distribution"):
        evaluate(shipped, split="val", out=tmp_path / "out", refit_ood=True)
    assert (shipped / "cxr_model.json").read_text() == before
    evaluate(shipped, split="val", out=tmp_path / "out", bootstrap=100, update_model=True)
    assert load_artifact(shipped).decision_rule == "youden"


def test_a_manifest_with_a_broken_file_is_evaluated_without_it(trained_artifact, tmp_path):
    files = sample_files("kermany")
    chosen = [f for f in files if "NORMAL" in str(f)][:6] + [
        f for f in files if "PNEUMONIA" in str(f)
    ][:6]
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(chosen[0].read_bytes()[:1500])  # a valid header, truncated data
    rows = [{"path": str(f), "PNEUMONIA": float("PNEUMONIA" in str(f))} for f in chosen]
    rows.append({"path": str(broken), "PNEUMONIA": 0.0})
    rows.append({"path": str(tmp_path / "missing.png"), "PNEUMONIA": 1.0})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    model = copy_artifact(trained_artifact.path, tmp_path / "model")
    command = [
        sys.executable, "-m", "cxr_keras.evaluate", "--model", str(model), "--data",
        str(tmp_path / "manifest.csv"), "--split", "all", "--out", str(tmp_path / "out"),
        "--bootstrap", "100",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    evaluated = metrics["evaluated"]
    assert evaluated["images"] == 12
    assert evaluated["undecodable"] == 0 and evaluated["skipped_files"] == 2
    reasons = dict(evaluated["skipped"])
    assert (
        "truncated" in reasons[str(broken)]
        and "not found" in reasons[str(tmp_path / "missing.png")]
    )
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 12


def test_a_file_broken_after_verification_is_left_out_not_fatal(trained_artifact, tmp_path):
    from cxr_keras.data import prepare_data
    from cxr_keras.data.settings import DataConfig

    manifest = prepare_data(
        DataConfig(source="folder", root="sample:kermany"), trained_artifact.image_spec
    ).head(5)
    target = tmp_path / "changed.jpeg"
    shutil.copy(manifest["path"][2], target)
    manifest.loc[2, "path"] = str(target)
    target.write_bytes(b"\xff\xd8 not a jpeg any more")  # changed after it was verified
    logits = Predictor(trained_artifact).manifest_logits(manifest)
    assert np.isnan(logits[2]).all() and np.isfinite(np.delete(logits, 2, axis=0)).all()


def test_errors_name_the_problem(trained_artifact, tmp_path):
    model = copy_artifact(trained_artifact.path, tmp_path / "model")
    for argv, message in (
        (["--split", "holdout"], "split 'holdout' has no images"),
        (["--data", str(tmp_path / "nope.csv")], "no such file"),
        (["--min-sensitivity", "1.5"], "min-sensitivity"),
        (["--referral-band", "0.7"], "referral band"),
        (["--decision-rule", "0.5"], "--decision-rule: decision rule '0.5': one of"),
    ):
        command = [sys.executable, "-m", "cxr_keras.evaluate", "--model", str(model), *argv]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-1500:]


def test_multilabel_with_masked_labels_and_subgroups(tmp_path):
    labels = ["Effusion", "Infiltration", "Atelectasis", "Hernia"]
    artifact = tiny_nih_model(tmp_path / "nih", "nih_eval", labels)
    # mark some labels unknown in the evaluated manifest, as CheXpert's uncertain ones are
    manifest = select_split(artifact_manifest(artifact), "test", "test")
    manifest.loc[manifest.index[:5], "Effusion"] = np.nan
    manifest["Hernia"] = 0.0  # a finding absent from the split: its AUC is undefined
    result = evaluate(artifact, data=manifest, split="all", out=tmp_path / "out", bootstrap=100)
    block = result["discrimination"]["labels"]
    assert block["Effusion"]["n"] == len(manifest) - 5
    assert block["Infiltration"]["n"] == len(manifest)
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert predictions["Effusion"].isna().sum() == 5
    known = predictions["Effusion"].notna()
    assert block["Effusion"]["roc_auc"] == pytest.approx(
        roc_auc_score(
            predictions.loc[known, "Effusion"], predictions.loc[known, "probability_Effusion"]
        ),
        abs=1e-5,
    )
    assert block["Hernia"]["roc_auc"] is None and block["Hernia"]["roc_auc_ci"] == [None, None]
    macro = result["discrimination"]["macro"]
    assert macro["over_labels"] == ["Effusion", "Infiltration", "Atelectasis"]
    assert macro["roc_auc"] == pytest.approx(
        np.mean([block[k]["roc_auc"] for k in macro["over_labels"]])
    )
    assert "undefined" in (tmp_path / "out" / "report.md").read_text()
    assert set(result["subgroups"]) == {"sex", "age band", "view"}
    assert sum(g["images"] for g in result["subgroups"]["sex"].values()) == len(manifest)
    assert set(result["subgroups"]["view"]) <= {"PA", "AP"}
    # multi-label models get an out-of-distribution detector too (classes: any finding)
    assert artifact.meta["ood"]["fitted_on"]["images"] > 0
    assert result["out_of_distribution"]["detector"] is True
    assert 0 <= result["out_of_distribution"]["flagged_share"] <= 1
    shutil.rmtree(tmp_path / "nih" / "train", ignore_errors=True)


def test_without_its_training_data_the_stored_rule_is_used(trained_artifact, tmp_path):
    model = copy_artifact(trained_artifact.path, tmp_path / "model")
    meta = json.loads((model / "cxr_model.json").read_text())
    meta["data"]["config"]["root"] = str(tmp_path / "moved_away")
    (model / "cxr_model.json").write_text(json.dumps(meta))
    data = select_split(artifact_manifest(trained_artifact), "test", "test")
    result = evaluate(model, data=data, split="all", out=tmp_path / "out", bootstrap=100)
    assert result["decision_rule"] == "default"  # what the artifact names, not "youden"
    assert "stored in the artifact" in result["threshold_source"]
    assert result["at_thresholds"]["default"]["PNEUMONIA"]["threshold"] == 0.5
    assert "manifest_all" in load_artifact(model).meta["metrics"]["evaluation"]
    csv = tmp_path / "test.csv"
    data.to_csv(csv, index=False)
    command = [
        sys.executable,
        "-m",
        "cxr_keras.evaluate",
        "--model",
        str(model),
        "--data",
        str(csv),
        "--split",
        "all",
        "--out",
        str(tmp_path / "cli"),
        "--bootstrap",
        "100",
    ]
    cli = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]  # the command line defaults the same way
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["decision_rule"] == "default"


def test_sample_prediction_grid_draws_positives_and_colours_each_decision(monkeypatch, tmp_path):
    import cxr_keras.evaluation.plots
    from cxr_keras.evaluation.evaluate import SAMPLE_GRID, sample_prediction_grid

    drawn = {}

    def capture(images, captions, path, colors=None, **_):
        drawn.update(images=images, captions=captions, colors=colors)
        return str(path)

    monkeypatch.setattr(cxr_keras.evaluation.plots, "captioned_grid", capture)
    files = sample_files("kermany")[:20]
    df = pd.DataFrame({"path": [str(f) for f in files]})
    y = np.array([[1.0, 0.0]] * 4 + [[0.0, 0.0]] * 16)
    p = np.array([[0.9, 0.1]] * 2 + [[0.2, 0.1]] * 2 + [[0.1, 0.8]] * 3 + [[0.1, 0.1]] * 13)
    mask = np.ones_like(y)
    mask[5:, 1] = 0  # unknown: a decision on it is neither right nor wrong
    spec = ImageSpec(size=32)
    sample_prediction_grid(
        df,
        y=y,
        p=p,
        mask=mask,
        labels=["A", "B"],
        thresholds=[0.5, 0.5],
        spec=spec,
        path=tmp_path / "s.png",
    )
    captions, colors = drawn["captions"], drawn["colors"]
    assert len(captions) == SAMPLE_GRID and drawn["images"][0].shape == (32, 32, 1)
    assert sum("truth: A" in c for c in captions) == 4  # every positive image, as < half
    index = {f.name[:22]: k for k, f in enumerate(files)}
    assert len(index) == len(files)
    for caption, color in zip(captions, colors, strict=True):
        i = index[caption.splitlines()[-1]]
        # 2, 3: a missed A; 4: B said where B is known negative; 5, 6: B said, unknown
        assert color == ("tab:red" if i in (2, 3, 4) else "tab:green"), (i, caption)


def test_other_data_holding_the_models_own_films_is_called_optimistic(trained_artifact, tmp_path):
    from cxr_keras.serving.app import model_card_markdown

    model = copy_artifact(trained_artifact.path, tmp_path / "model")
    own_val = select_split(artifact_manifest(trained_artifact), "val", "val")
    result = evaluate(model, data=own_val, split="all", out=tmp_path / "out", bootstrap=100)
    assert result["evaluated"]["overlap_with_own_splits"] == {"val": len(own_val)}
    assert any("which chose the thresholds" in n and "optimistic" in n for n in result["notes"])
    # the card and the app: no external evaluation, and they say so plainly
    card = (model / "MODEL_CARD.md").read_text()
    assert "Measured only on splits of its own training data" in card
    assert "External evaluation" not in card and "Evaluation on its own data: manifest_all" in card
    page = model_card_markdown(load_artifact(model))
    assert "Measured only on splits of its own training data" in page
    # data sharing no film with its splits is external: it leads the card and the page
    meta = load_artifact(model).meta
    meta["metrics"]["evaluation"]["site_b_all"] = {
        **meta["metrics"]["evaluation"]["manifest_all"],
        "overlap_with_own_splits": {},
    }
    from cxr_keras.artifact.model_card import model_card
    from cxr_keras.artifact.store import Artifact

    text = model_card(Artifact(None, meta, model))
    assert "Measured only on splits" not in text
    assert text.index("External evaluation: site_b_all") < text.index("Evaluation on its own")
