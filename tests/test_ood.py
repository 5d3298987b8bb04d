"""The out-of-distribution detector and the input checks: fitted on in-distribution data
only, stored in the artifact, carried by every answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxr_keras.artifact.ood import (
    OOD_FILE,
    detector_layers,
    fit_detector,
    load_detector,
    save_detector,
)
from cxr_keras.data.input_checks import InputChecks, colour_content, image_statistics
from cxr_keras.sample_data import sample_files


def _gaussian_features(rng, n, dims=(6, 10), shift=0.0):
    return [rng.normal(shift, 1.0, size=(n, d)) for d in dims]


def test_detector_flags_far_inputs_at_the_validation_quantile():
    rng = np.random.default_rng(0)
    train = _gaussian_features(rng, 800)
    groups = rng.integers(0, 2, 800)
    val = _gaussian_features(rng, 400)
    detector = fit_detector(
        train, groups=groups, val_features=val, layers=["a", "b"], quantile=0.99
    )
    val_scores = detector.score(val)
    assert np.mean(val_scores > detector.threshold) == pytest.approx(0.01, abs=0.0026)
    assert not np.isclose(val_scores, detector.threshold, rtol=0, atol=1e-12).any()
    far = detector.score(_gaussian_features(rng, 50, shift=4.0))
    assert (far > detector.threshold).all()
    assert detector.summary["threshold_from"] == {"split": "val", "images": 400}
    # one layer that finds an input strange is enough
    one_layer_off = [val[0][:5], val[1][:5] + 6.0]
    assert (detector.score(one_layer_off) > detector.threshold).all()


def test_detector_round_trips_through_its_file(tmp_path):
    rng = np.random.default_rng(1)
    wide = [rng.normal(size=(700, 600))]  # wider than MAX_DIMENSIONS: projected by PCA
    detector = fit_detector(
        wide, groups=np.zeros(700, int), val_features=[rng.normal(size=(100, 600))], layers=["w"]
    )
    assert detector.projections[0].shape == (600, 512)
    entry = save_detector(detector, tmp_path)
    json.dumps(entry)  # the meta entry is plain JSON
    loaded = load_detector(tmp_path, entry)
    probe = [rng.normal(size=(20, 600))]
    np.testing.assert_allclose(loaded.score(probe), detector.score(probe), rtol=1e-10)
    assert loaded.threshold == detector.threshold
    (tmp_path / OOD_FILE).write_bytes((tmp_path / OOD_FILE).read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(ValueError, match="sha256"):
        load_detector(tmp_path, entry)


def test_detector_reads_the_last_half_of_the_activations():
    from cxr_keras.config import ImageSpec, ModelConfig
    from cxr_keras.models.build import build_model

    built = build_model(
        ModelConfig(filters=[8, 16, 32, 64]), spec=ImageSpec(size=32), labels=["PNEUMONIA"]
    )
    layers = detector_layers(built.model)
    relus = [layer.name for layer in built.model.layers if layer.name.endswith("_relu")]
    assert layers[-1] == built.feature_layer == relus[-1]
    assert 1 <= len(layers) <= 4 and set(layers) <= set(relus[len(relus) // 2 :])


def test_input_checks_name_each_kind_of_unusable_input(tmp_path):
    checks = InputChecks()
    film = np.asarray(Image.open(sample_files("kermany")[0]).convert("L"), np.float32) / 255
    std, spread = image_statistics(film)
    assert checks.reasons(std=std, spread=spread, colour=0.0, aspect=1.3) == []
    black = image_statistics(np.zeros((64, 64)))
    assert "near-constant" in checks.reasons(std=black[0], spread=black[1], colour=0, aspect=1)[0]
    dim = image_statistics(film * 0.06)  # a 12-bit film read as 16-bit: almost black
    assert any("tiny part of the range" in r for r in checks.reasons(
        std=dim[0], spread=dim[1], colour=0.0, aspect=1.0))  # fmt: skip
    assert checks.reasons(std=std, spread=spread, colour=0, aspect=5.0) == [
        "aspect ratio out of range (5.00, not 0.5-3.5)"
    ]
    # colour: a photograph has it, a film saved as RGB has none
    photo = tmp_path / "photo.png"
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 40
    Image.fromarray(rgb).save(photo)
    rgb_film = tmp_path / "film_rgb.jpg"
    Image.open(sample_files("kermany")[0]).convert("RGB").save(rgb_film, quality=90)
    assert colour_content(photo) > 0.5
    assert colour_content(rgb_film) < 0.01
    assert (
        "a colour image"
        in checks.reasons(std=std, spread=spread, colour=colour_content(photo), aspect=1.0)[0]
    )


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory):
    """Inputs that are not chest films, as files: black, noise, a colour photograph."""
    import sklearn.datasets

    folder = tmp_path_factory.mktemp("odd")
    Image.fromarray(np.zeros((200, 240), np.uint8)).save(folder / "black.png")
    noise = np.random.default_rng(0).uniform(0, 255, (200, 200)).astype(np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    china = Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"
    shutil.copy(china, folder / "photo.jpg")
    return folder


def test_trained_artifact_has_a_detector_and_predict_reports_it(
    trained_artifact, odd_inputs, tmp_path
):
    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.serving.predict import predict

    entry = trained_artifact.meta["ood"]
    assert (trained_artifact.path / OOD_FILE).is_file()
    assert entry["threshold_from"]["split"] == "val" and entry["fitted_on"]["images"] > 10
    films = sample_files("kermany")[:3]
    document = predict(
        load_artifact(trained_artifact.path), [*films, odd_inputs], out=tmp_path, mc_passes=0
    )
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert {"ood", "ood_score"} <= set(table.columns)
    assert table["ood_score"].notna().all() and table["ood"].dtype == bool
    by_name = {Path(f["path"]).name: f for f in document["files"]}
    assert by_name["black.png"]["ood"] and by_name["photo.jpg"]["ood"]
    assert any("near-constant" in r for r in by_name["black.png"]["ood_reasons"])
    assert any("colour" in r for r in by_name["photo.jpg"]["ood_reasons"])
    for name in ("black.png", "photo.jpg"):  # flagged answers are referred, saying why
        assert by_name[name]["refer"]
        assert by_name[name]["referral_reasons"][0].startswith("out of distribution: ")
    assert document["ood_detector"]["fitted"] is True


def test_the_answer_model_gives_the_artifacts_logits(trained_artifact):
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.data.io import load_image

    predictor = Predictor(trained_artifact)
    images = np.stack([load_image(p, trained_artifact.image_spec) for p in sample_files("kermany")])
    outputs = predictor.outputs(images)
    plain = np.asarray(trained_artifact.model.predict_on_batch(images), np.float64)
    np.testing.assert_allclose(outputs.logits, plain, rtol=1e-5, atol=1e-5)
    assert [f.shape[0] for f in outputs.features] == [len(images)] * len(predictor.detector.layers)


def test_older_artifact_without_detector_answers_and_evaluate_fits_one(
    trained_artifact, odd_inputs, tmp_path
):
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.evaluation.evaluate import evaluate
    from cxr_keras.serving.predict import predict

    old = copy_artifact(trained_artifact.path, tmp_path / "old")
    assert (old / OOD_FILE).is_file()  # the detector travels with a copy
    meta = json.loads((old / "cxr_model.json").read_text())
    meta.pop("ood")
    write_meta(meta, old)
    (old / OOD_FILE).unlink()
    document = predict(load_artifact(old), [odd_inputs / "black.png"], out=tmp_path / "p")
    answer = document["files"][0]
    assert answer["ood"] and answer["ood_score"] is None  # the input checks still run
    assert document["ood_detector"]["fitted"] is False

    # the artifact's data config is relative to the repository root
    result = evaluate(old, split="test", out=tmp_path / "report", bootstrap=100)
    fitted = json.loads((old / "cxr_model.json").read_text())["ood"]
    assert fitted["threshold"] > 0 and (old / OOD_FILE).is_file()
    assert result["out_of_distribution"]["detector"] is True
    assert "Out of distribution" in (tmp_path / "report" / "report.md").read_text()


def test_unusable_scores_and_files_never_pass_silently(trained_artifact, tmp_path):
    from cxr_keras.artifact.predictor import ModelOutputs, Predictor

    # a missing source file (a shard's, say) has no colour to measure: no crash
    assert colour_content(tmp_path / "not_here.png") == 0.0
    # a non-finite validation score cannot move the threshold; none at all is an error
    rng = np.random.default_rng(2)
    train = [rng.normal(size=(300, 4))]
    val = [np.vstack([rng.normal(size=(99, 4)), np.full((1, 4), np.nan)])]
    detector = fit_detector(train, groups=np.zeros(300, int), val_features=val, layers=["x"])
    assert np.isfinite(detector.threshold)
    with pytest.raises(ValueError, match="no finite"):
        fit_detector(train, groups=np.zeros(300, int), val_features=[val[0][-1:]], layers=["x"])
    # a non-finite score or image is flagged, never answered as in distribution
    predictor = Predictor(trained_artifact)
    widths = [f.shape[1] for f in predictor.outputs(np.zeros((1, 64, 64, 1))).features]
    features = [np.full((1, w), np.nan) for w in widths]
    outputs = ModelOutputs(np.zeros((1, 1)), features, np.array([[np.nan, np.nan]]))
    reasons = predictor.answer(outputs).ood_reasons[0]
    assert "non-finite values in the image" in reasons
    assert "the out-of-distribution score is not finite" in reasons
    # no images: an empty answer, not a crash
    empty = predictor.predict(np.zeros((0, 64, 64, 1), np.float32))
    assert empty.probabilities.shape == (0, 1) and empty.ood_reasons == []


def test_evaluate_refits_the_detector_at_a_chosen_quantile(trained_artifact, tmp_path):
    from cxr_keras.artifact.store import copy_artifact, load_artifact
    from cxr_keras.evaluation.evaluate import evaluate

    folder = copy_artifact(trained_artifact.path, tmp_path / "model")
    before = load_artifact(folder).meta["ood"]
    evaluate(folder, split="test", out=tmp_path / "r", bootstrap=100, ood_quantile=0.9)
    after = load_artifact(folder).meta["ood"]
    assert before["quantile"] == 0.995 and after["quantile"] == 0.9
    assert after["threshold"] < before["threshold"]  # a lower quantile flags more
    with pytest.raises(ValueError, match="ood-quantile"):
        evaluate(folder, split="test", out=tmp_path / "r", ood_quantile=1.5)
