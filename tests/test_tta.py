"""Test-time augmentation: fixed views of the image, the exported model averaging its
logit over them, and every consumer (predict, explain, the app, export) agreeing."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image
from cxr_keras.models.layers import TestTimeView
from cxr_keras.models.tta import VIEWS, base_of
from cxr_keras.sample_data import sample_files
from cxr_keras.training.train import train
from tests.conftest import tiny_config


def test_views_hand_checked():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) / 16
    shifted = np.asarray(TestTimeView("shift", 0.25)(x))[0, :, :, 0]
    np.testing.assert_allclose(shifted[:, 0], 0.0)  # the gap on the left is black
    np.testing.assert_allclose(shifted[:, 1:], x[0, :, :3, 0])
    left = np.asarray(TestTimeView("shift", -0.25)(x))[0, :, :, 0]
    np.testing.assert_allclose(left[:, :3], x[0, :, 1:, 0])
    np.testing.assert_allclose(np.asarray(TestTimeView("gamma", 2.0)(x)), x**2, rtol=1e-6)
    zoomed = np.asarray(TestTimeView("zoom", 2.0)(np.ones((1, 8, 8, 1), "float32")))
    assert zoomed.shape == (1, 8, 8, 1) and np.allclose(zoomed, 1.0)  # centre crop of ones
    np.testing.assert_array_equal(np.asarray(TestTimeView()(x)), x)
    with pytest.raises(ValueError, match="kind"):
        TestTimeView("rotate")
    with pytest.raises(ConfigError, match=r"model\.tta"):
        tiny_config("bad", model={"tta": ["zoom_in", "upside_down"]})


@pytest.fixture(scope="module")
def tta_artifact(tmp_path_factory):
    cfg = tiny_config("tta", model={"tta": ["zoom_in", "darker"]}, training={"epochs": 1})
    return train(cfg, run_dir=tmp_path_factory.mktemp("tta") / "tta", progress=False)


def test_the_exported_model_averages_the_logit_over_its_views(tta_artifact):
    assert tta_artifact.tta == ["zoom_in", "darker"]
    network = tta_artifact.explain_model
    assert network is base_of(tta_artifact.model) and network is not tta_artifact.model
    films = sample_files("kermany")[:6]
    x = np.stack([load_image(p, ImageSpec(size=64)) for p in films])
    views = [x] + [np.asarray(TestTimeView(*VIEWS[name])(x)) for name in ("zoom_in", "darker")]
    expected = np.mean([np.asarray(network(v, training=False)) for v in views], axis=0)
    np.testing.assert_allclose(Predictor(tta_artifact).logits(x), expected, atol=1e-5)
    # the views change the answer: the average is not the plain image's logit
    plain = np.asarray(network(x, training=False))
    assert np.abs(plain - expected).max() > 1e-4


def test_explain_and_the_app_answer_with_the_views_averaged(tta_artifact, tmp_path):
    from cxr_keras.explanation.explain import explain
    from cxr_keras.serving.case_analysis import CaseAnalyzer

    film = sample_files("kermany")[-1]
    expected = Predictor(tta_artifact).predict_files([film]).probabilities[0, 0]
    result = CaseAnalyzer(tta_artifact, mc_passes=3).analyze(film)
    assert result.findings[0].probability == pytest.approx(expected, abs=1e-5)
    assert result.overlays and result.findings[0].mc_dropout_std is not None
    summary = explain(tta_artifact, [film], out=tmp_path / "explain", mc_passes=0)
    assert summary["images"][0]["probabilities"]["PNEUMONIA"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx"])
def test_export_carries_the_views(tta_artifact, tmp_path, fmt):
    import json

    from cxr_keras.serving.export import SIDECAR, export_model

    target = export_model(tta_artifact, fmt, out=tmp_path / fmt)
    sidecar = json.loads((target.parent / SIDECAR).read_text())
    assert sidecar["check"]["max_abs_probability_difference"] < 1e-4
