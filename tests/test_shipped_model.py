"""The shipped model, kermany_pneumonia (cxr_keras/pretrained/): small, documented by its
own validation figures, and served by every stage (predict, explain, the app's case
analysis)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.artifact.store import load_artifact
from cxr_keras.pretrained import PRETRAINED_FOLDER
from cxr_keras.sample_data import sample_files, sample_path

MODEL = PRETRAINED_FOLDER / "kermany_pneumonia"
# the command as it was run and recorded (before configs/ and cxr_keras/pretrained/)
COMMAND = (
    "python -m cxr_keras.train --config tuner_configs/kermany_robust.yaml "
    "--export models/kermany_pneumonia"
)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|work|tmp|Users|root|mnt|opt)/")


@pytest.fixture(scope="module")
def shipped():
    return load_artifact(MODEL)


@pytest.fixture(scope="module")
def validation(shipped):
    """The figures the evaluation of the validation split stored in the artifact."""
    evaluations = shipped.meta["metrics"]["evaluation"]
    assert "val" in evaluations, f"no validation evaluation stored: {sorted(evaluations)}"
    return evaluations["val"]


def test_shipped_model_is_small_and_self_describing(shipped, validation):
    megabytes = sum(f.stat().st_size for f in MODEL.iterdir()) / 2**20
    assert megabytes < 8, f"{megabytes:.1f} MB"
    assert shipped.labels == ["PNEUMONIA"]
    assert shipped.image_spec.size == (224, 224) and shipped.image_spec.resize == "squash"
    assert shipped.meta["training"]["command"] == COMMAND
    assert shipped.meta["model"]["weights"] == "none"  # from scratch: no ImageNet weights
    assert shipped.meta["preprocess"]["contrast"] == "equalize"  # chosen on stress figures
    for rule in ("youden", "sensitivity_0.95"):
        assert 0 < shipped.meta["thresholds"][rule]["PNEUMONIA"] < 1, rule
    assert validation["images"] >= 700  # the whole patient-wise validation split
    assert validation["roc_auc_ci"][0] < validation["roc_auc"] < validation["roc_auc_ci"][1]
    for text in (
        (MODEL / "cxr_model.json").read_text(),
        (MODEL / "MODEL_CARD.md").read_text(),
    ):
        assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text).group(0)


def test_the_shipped_reference_profile_is_of_its_weights_and_its_stored_rule(shipped):
    from cxr_keras.artifact.audit_log import weights_digest
    from cxr_keras.artifact.reference_profile import load_profile

    profile = load_profile(MODEL, shipped.meta)
    assert profile is not None, "evaluate --update-model stores the monitor's reference"
    assert profile["images"] == shipped.meta["operating_points"]["images"]
    assert profile["weights_sha256"] == weights_digest(shipped.model)
    assert profile["decision_rule"] == shipped.decision_rule
    assert profile["thresholds"] == {"PNEUMONIA": shipped.thresholds()[0]}
    assert profile["temperatures"] == pytest.approx(shipped.temperatures)


def test_card_states_the_validation_figures_and_the_command(shipped, validation):
    card = (MODEL / "MODEL_CARD.md").read_text()
    assert COMMAND in card
    assert f"{validation['roc_auc']:.3f}" in card
    low, high = validation["roc_auc_ci"]
    assert f"{low:.3f}" in card and f"{high:.3f}" in card
    rule = shipped.decision_rule  # its row: threshold, accuracy, sensitivity, specificity
    at = validation["at_thresholds"][rule]["PNEUMONIA"]
    row = f"| {rule} | PNEUMONIA | {shipped.thresholds(rule)[0]:.3f} | " + " | ".join(
        f"{100 * at[key]:.1f}%" for key in ("accuracy", "sensitivity", "specificity")
    )
    assert row in card, row
    for words in ("CC BY 4.0", "Pediatric", "not a medical device", "learning curve"):
        assert words.lower() in card.lower(), words
    # why this model: the comparisons on validation and stress that chose it
    for words in ("benchmarks/robust_selection.py", "worst", "Robustness: acquisition shifts"):
        assert words in card, words


def test_shipped_model_separates_the_bundled_films(shipped):
    """The bundled films come from the official TRAIN folder (partly seen in training):
    a sanity check of the whole chain, not an estimate of performance."""
    films = sample_files("kermany")[::4]
    truth = np.array(["PNEUMONIA" in str(f) for f in films], dtype=float)
    probabilities = Predictor(shipped).predict_files(films).probabilities[:, 0]
    assert roc_auc_score(truth, probabilities) > 0.95


def test_the_shipped_model_answers_the_same_when_called_the_plain_way():
    """``model(x)`` without ``training=False``: no augmentation, BatchNorm statistics kept
    (the model was re-saved with the training-only augmentation block, same weights)."""
    import keras

    from cxr_keras.data.io import load_image

    model = keras.models.load_model(MODEL / "model.keras", safe_mode=True)
    spec = load_artifact(MODEL).image_spec
    images = np.stack([load_image(f, spec) for f in sample_files("kermany")[:8]])
    before = model.predict(images, verbose=0)
    np.testing.assert_allclose(np.asarray(model(images)), before, atol=1e-5)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)


def test_predict_and_explain_with_the_shipped_model(tmp_path):
    from cxr_keras.explanation.explain import explain
    from cxr_keras.serving.predict import predict

    films = [
        sample_path("kermany") / "PNEUMONIA" / "person1258_bacteria_3216.jpeg",
        sample_path("kermany") / "NORMAL" / "IM-0191-0001.jpeg",
    ]
    document = predict(MODEL, films, out=tmp_path / "predict", gradcam=True, mc_passes=0)
    assert [e["decision"] for e in document["files"]] == ["PNEUMONIA", "negative"]
    summary = explain(MODEL, films[:1], out=tmp_path / "explain", mc_passes=0)
    explained = summary["images"][0]["explained"][0]
    heatmap = np.load(next(iter(explained["heatmaps"].values())))
    assert heatmap.shape[0] > 100 and np.isfinite(heatmap).all()
    assert json.loads((tmp_path / "explain" / "summary.json").read_text())["images"]


def test_app_case_analysis_with_the_shipped_model(shipped):
    from cxr_keras.serving.case_analysis import CaseAnalyzer

    analyzer = CaseAnalyzer(shipped, mc_passes=4)
    result = analyzer.analyze(sample_path("dicom") / "pydicom_data_RG1_J2KI.dcm")
    assert result.findings[0].label == "PNEUMONIA"
    assert 0.0 <= result.findings[0].probability <= 1.0
    assert result.overlays and result.overlays[0][0].ndim == 3


def test_the_shipped_detector_flags_pictures_that_are_not_chest_films(shipped, tmp_path):
    """Grayscale photographs (no colour to give them away), a blank and a noise image are
    flagged by the detector itself; the bundled chest films are not flagged."""
    from pathlib import Path

    import matplotlib
    import sklearn.datasets
    from PIL import Image

    detector = shipped.ood_detector
    assert detector is not None and detector.quantile == shipped.meta["ood"]["quantile"]
    assert shipped.meta["ood"]["threshold_from"] == {"split": "val", "images": 785}
    photos = [
        Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
        Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg",
        Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
    ]
    odd = []
    for photo in photos:
        odd.append(tmp_path / f"{photo.stem}_gray.png")
        Image.open(photo).convert("L").save(odd[-1])
    rng = np.random.default_rng(0)
    odd.append(tmp_path / "noise.png")
    Image.fromarray(rng.uniform(0, 255, (300, 300)).astype(np.uint8)).save(odd[-1])
    answers = Predictor(shipped).predict_files(odd)
    assert (answers.ood_scores > detector.threshold).all(), answers.ood_scores
    assert answers.ood.all()
    films = Predictor(shipped).predict_files(sample_files("kermany"))
    assert not films.ood.any(), [r for r in films.ood_reasons if r]
