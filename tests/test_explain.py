"""Grad-CAM (flat and nested backbones), overlays at the original size, the trust checks,
MC dropout and referral, and python -m cxr_keras.explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from cxr_keras.artifact.referral import refer
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image, read_image
from cxr_keras.explanation.gradcam import GradCam, gradcam
from cxr_keras.explanation.overlays import to_original
from cxr_keras.explanation.saliency_checks import (
    box_iou,
    deletion_insertion,
    pointing_game,
    randomization_check,
)
from cxr_keras.explanation.uncertainty import mc_dropout, predictive_entropy
from cxr_keras.models.build import build_model
from cxr_keras.models.settings import ModelConfig
from cxr_keras.sample_data import sample_files
from tests.conftest import REPO


@pytest.fixture(scope="module")
def films():
    """Six real films at 64 px (the session model's input size)."""
    files = sample_files("kermany")
    chosen = [f for f in files if "NORMAL" in str(f)][:3] + [
        f for f in files if "PNEUMONIA" in str(f)
    ][:3]
    return chosen, np.stack([load_image(f, ImageSpec(size=64)) for f in chosen])


def _nested_copy(flat, feature_layer: str):
    """The same network with the backbone wrapped as ONE nested layer: a second build
    with its own layer objects, the flat model's weights copied in."""
    twin = keras.models.clone_model(flat)
    twin.set_weights(flat.get_weights())
    backbone = keras.Model(twin.input, twin.get_layer(feature_layer).output, name="backbone")
    inputs = keras.Input(flat.input.shape[1:])
    x = backbone(inputs)
    names = [layer.name for layer in twin.layers]
    for layer in twin.layers[names.index(feature_layer) + 1 :]:
        x = layer(x)
    return keras.Model(inputs, x)


def test_nested_backbone_gives_the_flat_models_heatmaps(trained_artifact, films):
    _, x = films
    flat = trained_artifact.model
    layer = trained_artifact.meta["model"]["feature_layer"]
    nested = _nested_copy(flat, layer)
    assert any(isinstance(item, keras.Model) for item in nested.layers)
    with pytest.raises(ValueError, match="not connected"):  # what breaks the Keras example
        keras.Model(nested.input, nested.get_layer("backbone").get_layer(layer).output)
    flat_logits, flat_maps = GradCam(flat, [layer])(x, [0])
    nested_logits, nested_maps = GradCam(nested, [layer])(x, [0])
    np.testing.assert_allclose(nested_logits, flat_logits, atol=1e-5)
    np.testing.assert_allclose(nested_maps[layer], flat_maps[layer], atol=1e-5)
    assert flat_maps[layer].max() == pytest.approx(1.0)


def test_nested_keras_application_backbone(films):
    """A user's model with MobileNetV3Small as one layer vs the flat build (STACK_FACTS 6)."""
    _, x = films
    gray = keras.Input((64, 64, 1))
    rgb = keras.layers.Concatenate()([gray, gray, gray])
    inner = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_shape=(64, 64, 3), include_preprocessing=True
    )
    nested_out = keras.layers.Dense(1, name="logits")(
        keras.layers.GlobalAveragePooling2D()(inner(rgb))
    )
    nested = keras.Model(gray, nested_out)
    gray2 = keras.Input((64, 64, 1))
    rgb2 = keras.layers.Concatenate()([gray2, gray2, gray2])
    flat_bb = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_tensor=rgb2, include_preprocessing=True
    )
    flat_out = keras.layers.Dense(1, name="logits")(
        keras.layers.GlobalAveragePooling2D()(flat_bb.output)
    )
    flat = keras.Model(gray2, flat_out)
    flat.set_weights(nested.get_weights())
    target = "expanded_conv_5_add"  # a stable block name (activations are auto-numbered)
    _, a = GradCam(nested, [target])(x, [0])
    _, b = GradCam(flat, [target])(x, [0])
    np.testing.assert_allclose(a[target], b[target], atol=1e-4)


def test_heatmaps_are_normalised_and_gradcam_plus_plus_differs(trained_artifact, films):
    _, x = films
    plain = gradcam(trained_artifact, x)
    plus = gradcam(trained_artifact, x, method="gradcam++")
    for result in (plain, plus):
        maps = next(iter(result.maps.values()))
        assert maps.shape == (6, 1, 64, 64)
        assert maps.min() >= 0.0
        peaks = maps.reshape(6, -1).max(axis=1)
        assert np.all((np.abs(peaks - 1.0) < 1e-5) | (peaks == 0.0))
    np.testing.assert_allclose(
        plain.logits, trained_artifact.model.predict(x, verbose=0), atol=1e-5
    )
    assert not np.allclose(next(iter(plain.maps.values())), next(iter(plus.maps.values())))
    with pytest.raises(ValueError, match="did you mean"):
        gradcam(trained_artifact, x, layers=["last_conv_rel"])


@pytest.mark.parametrize("mode", ["squash", "pad", "crop"])
def test_heatmap_back_on_the_original(mode):
    spec = ImageSpec(size=64, resize=mode)
    heat = np.zeros((64, 64), np.float32)
    heat[:, 32:] = 1.0  # the right half of the model input
    original = to_original(heat, spec, height=300, width=200)
    assert original.shape == (300, 200) and original.min() >= 0 and original.max() <= 1
    if mode == "crop":  # the model saw the central 200x200 square only
        assert original[:40].max() == 0 and original[-40:].max() == 0
    assert original[150, 190] > 0.9 and original[150, 10] < 0.1  # right stays right


def test_pointing_game_and_iou_on_hand_made_maps():
    heat = np.zeros((100, 100))
    heat[40:60, 20:40] = 0.8
    heat[50, 30] = 1.0
    assert pointing_game(heat, (20, 40, 20, 20))  # x, y, w, h around the peak
    assert not pointing_game(heat, (60, 40, 20, 20))
    assert pointing_game(heat, (32, 40, 20, 20), tolerance=3)  # 2 px away
    assert box_iou(heat, (20, 40, 20, 20)) == pytest.approx(1.0)
    assert box_iou(heat, (30, 40, 20, 20)) == pytest.approx(200 / 600)


def test_deletion_is_faster_with_a_faithful_map():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.2, size=(32, 32, 1)).astype(np.float32)
    image[8:16, 8:16] = 1.0  # the evidence

    def predict(images):  # "probability" = the evidence region's brightness
        return images[:, 8:16, 8:16, 0].mean(axis=(1, 2))[:, None]

    faithful = np.zeros((32, 32))
    faithful[8:16, 8:16] = 1.0
    wrong = np.zeros((32, 32))
    wrong[20:28, 20:28] = 1.0
    good = deletion_insertion(predict, image, faithful, label_index=0, steps=16)
    bad = deletion_insertion(predict, image, wrong, label_index=0, steps=16)
    assert good["deletion_auc"] < 0.1 < 0.3 < bad["deletion_auc"]
    assert good["insertion_auc"] > bad["insertion_auc"]
    assert good["deletion"][0] == pytest.approx(1.0) and len(good["deletion"]) == 17


def test_randomised_weights_change_the_heatmaps(trained_artifact, films):
    _, x = films
    layer = trained_artifact.meta["model"]["feature_layer"]
    before = trained_artifact.model.get_weights()
    results = randomization_check(trained_artifact.model, x, layer=layer, label_index=0, stages=3)
    assert [r["randomized_layers"] for r in results] == sorted(
        r["randomized_layers"] for r in results
    )
    assert results[0]["down_to"] == "logits"
    assert results[-1]["spearman"] < 0.5  # fully randomised: the maps no longer agree
    for a, b in zip(before, trained_artifact.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the checked model is untouched


def test_mc_dropout_variance_comes_from_dropout_only(films):
    _, x = films
    spec = ImageSpec(size=64)
    without = build_model(
        ModelConfig(filters=[4, 8], dropout=0.0), spec=spec, labels=["A", "B"]
    ).model
    stats = mc_dropout(without, x, temperatures=[1.0, 1.0], passes=5)
    np.testing.assert_allclose(stats.std, 0.0, atol=1e-12)  # every pass the same
    # augmentation and BatchNorm stay in inference mode: the mean is the plain prediction
    plain = 1 / (1 + np.exp(-without.predict(x, verbose=0)))
    np.testing.assert_allclose(stats.mean, plain, atol=1e-5)
    with_dropout = build_model(
        ModelConfig(filters=[4, 8], dropout=0.5), spec=spec, labels=["A", "B"]
    ).model
    assert mc_dropout(with_dropout, x, temperatures=[1.0, 1.0], passes=5).std.max() > 0
    assert predictive_entropy(np.array([0.5]))[0] == pytest.approx(np.log(2))


def test_mc_dropout_runs_only_the_head_per_pass_with_the_same_statistics(films):
    import keras

    from cxr_keras.explanation.graph import rebuild, split_before
    from cxr_keras.explanation.uncertainty import McDropoutSampler

    _, x = films
    spec = ImageSpec(size=64)
    model = build_model(
        ModelConfig(filters=[4, 8], dropout=0.5), spec=spec, labels=["A", "B"], seed=3
    ).model
    trunk, head = split_before(model, lambda layer: isinstance(layer, keras.layers.Dropout))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in trunk.layers)
    np.testing.assert_allclose(
        np.asarray(head(trunk(x))), np.asarray(model(x, training=False)), atol=1e-5
    )
    sampler = McDropoutSampler(model)
    assert sampler.split
    split = sampler(x, [1.0, 1.0], passes=300)
    dropout = rebuild(model, training_for=lambda layer: isinstance(layer, keras.layers.Dropout))
    whole = np.stack([1 / (1 + np.exp(-np.asarray(dropout(x)))) for _ in range(300)])
    # the same distribution: 300 passes estimate mean and std to within a few hundredths
    np.testing.assert_allclose(split.mean, whole.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(split.std, whole.std(axis=0), atol=0.03)
    assert split.std.min() > 0


def test_referral_rule():
    p = np.array([[0.45, 0.95], [0.8, 0.2]])
    flags = refer(
        p, [0.5, 0.5], std=np.array([[0.0, 0.3], [0.0, 0.0]]), rule={"band": 0.1, "max_std": 0.2}
    )
    assert flags.tolist() == [[True, True], [False, False]]


def test_explain_cli_writes_overlays_at_the_original_size(trained_artifact, tmp_path):
    from cxr_keras.explanation.explain import explain

    files = [str(f) for f in sample_files("kermany")[:2]] + [str(sample_files("dicom")[0])]
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    command = [
        sys.executable,
        "-m",
        "cxr_keras.explain",
        "--model",
        str(trained_artifact.path),
        *files,
        str(bad),
        "--out",
        str(tmp_path / "out"),
        "--mc-passes",
        "4",
        "--layers",
        "block2_conv2_relu,last_conv_relu",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["images"]) == 3 and summary["skipped"][0]["path"] == str(bad)
    assert "empty" in summary["skipped"][0]["reason"]
    for entry in summary["images"]:
        original = read_image(entry["path"], trained_artifact.image_spec)
        explained = entry["explained"][0]
        assert Path(explained["overlay"]).read_bytes()[:4] == b"\x89PNG"
        assert set(explained["heatmaps"]) == {"block2_conv2_relu", "last_conv_relu"}
        for path in explained["heatmaps"].values():
            heat = np.load(path)
            assert heat.shape == original.shape[:2]
            assert heat.min() >= 0 and heat.max() <= 1
        assert set(entry["mc_dropout"]["PNEUMONIA"]) == {"mean", "std", "entropy"}
        assert isinstance(entry["refer"], bool)
    assert "skipped" in result.stdout
    one = explain(
        trained_artifact, files[:1], labels="PNEUMONIA", out=tmp_path / "one", mc_passes=0
    )
    assert [x["label"] for x in one["images"][0]["explained"]] == ["PNEUMONIA"]


def test_boxes_are_scored_and_checks_reported(tmp_path):
    """A small NIH model, its boxed findings explained and scored against the boxes."""
    import pandas as pd

    from cxr_keras.core.paths import resolve_path
    from cxr_keras.explanation.explain import explain
    from cxr_keras.explanation.saliency_checks import box_iou as iou
    from tests.conftest import tiny_nih_model

    labels = ["Cardiomegaly", "Nodule", "Pneumonia"]
    artifact = tiny_nih_model(tmp_path / "nih", "nih_boxes", labels, test=0.0)
    boxes_csv = resolve_path("sample:nih/bbox.csv")
    boxes = pd.read_csv(boxes_csv)
    boxes = boxes[boxes["finding"].isin(labels)]
    images = [str(resolve_path("sample:nih") / p) for p in boxes["path"].unique()]
    summary = explain(
        artifact, images, out=tmp_path / "out", mc_passes=0, boxes=boxes_csv, checks=True
    )
    assert summary["localisation"]["boxes"] == len(boxes) == 9
    scored = []
    for entry in summary["images"]:
        row = boxes[boxes["path"].map(lambda p: Path(p).name) == Path(entry["path"]).name]
        explained = {x["label"]: x for x in entry["explained"]}
        for finding, x, y, w, h in row[["finding", "x", "y", "w", "h"]].itertuples(index=False):
            assert finding in explained  # a boxed finding is explained whatever its probability
            heat = np.load(next(iter(explained[finding]["heatmaps"].values())))
            (box,) = [b for b in explained[finding]["boxes"] if b["box"] == [x, y, w, h]]
            assert box["iou"] == pytest.approx(iou(heat.astype(np.float32), (x, y, w, h)), abs=0.02)
            scored.append(box["pointing_game"])
    assert summary["localisation"]["pointing_game_hit_rate"] == pytest.approx(np.mean(scored))
    faithfulness = summary["faithfulness"]
    assert faithfulness["maps"] >= len(images)
    assert 0 <= faithfulness["mean_deletion_auc"] <= 1
    stages = summary["randomization_check"]["stages"]
    assert stages[0]["down_to"] == "logits" and all(-1 <= s["spearman"] <= 1 for s in stages)


@pytest.mark.parametrize("backbone", ["resnet50", "inceptionv3", "mobilenetv3large", "densenet121"])
def test_gradcam_on_registry_backbones(backbone, films):
    """The default target of each registry backbone gives proper maps (custom_cnn,
    mobilenetv3small and efficientnetb0 run in the tests above and the benchmark)."""
    _, x = films
    spec = ImageSpec(size=80)
    x80 = np.stack([keras.ops.convert_to_numpy(keras.ops.image.resize(i, (80, 80))) for i in x])
    built = build_model(ModelConfig(backbone=backbone), spec=spec, labels=["A", "B"])
    logits, maps = GradCam(built.model, [built.feature_layer])(x80[:2], [0, 1])
    heat = maps[built.feature_layer]
    assert heat.shape == (2, 2, 80, 80) and np.isfinite(heat).all() and heat.min() >= 0
    np.testing.assert_allclose(logits, built.model.predict(x80[:2], verbose=0), atol=1e-4)


def test_randomisation_reaches_frozen_layers_and_empty_maps_point_nowhere(films):
    from cxr_keras.models.build import set_trainable

    _, x = films
    built = build_model(ModelConfig(filters=[4, 8]), spec=ImageSpec(size=64), labels=["A"])
    set_trainable(built, "backbone")  # only the head trains
    stages = randomization_check(
        built.model, x[:2], layer=built.feature_layer, label_index=0, stages=2
    )
    assert stages[-1]["down_to"] == "block1_conv1"  # the frozen backbone is randomised too
    assert not pointing_game(np.zeros((10, 10)), (0, 0, 3, 3))


def test_explain_flags_and_refers_an_image_unlike_the_training_films(trained_artifact, tmp_path):
    from PIL import Image

    from cxr_keras.explanation.explain import explain

    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((120, 150), np.uint8)).save(black)
    film = sample_files("kermany")[0]
    summary = explain(trained_artifact, [black, film], out=tmp_path / "out", mc_passes=0)
    by_name = {Path(e["path"]).name: e for e in summary["images"]}
    assert by_name["black.png"]["ood"] and by_name["black.png"]["refer"]
    assert "near-constant" in by_name["black.png"]["ood_reasons"][0]
    assert by_name["black.png"]["ood_score"] > 0
    assert isinstance(by_name[film.name]["ood"], bool)
