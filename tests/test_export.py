"""python -m cxr_keras.export: each format gives the .keras model's probabilities."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image
from cxr_keras.sample_data import sample_files
from cxr_keras.serving.export import SIDECAR, TOLERANCE, export_model, exported_predict_fn
from tests.conftest import REPO


@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx", "litert"])
def test_export_matches_the_keras_model(fmt, trained_artifact, tmp_path):
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("the [export] extra (tf2onnx, onnx, onnxruntime) is not installed")
    target = export_model(trained_artifact, fmt, out=tmp_path / fmt, check=4)
    sidecar = json.loads((tmp_path / fmt / SIDECAR).read_text())
    assert (
        sidecar["labels"] == ["PNEUMONIA"] and sidecar["output"]["temperature_and_sigmoid_applied"]
    )
    assert sidecar["thresholds"] == {"PNEUMONIA": trained_artifact.thresholds()[0]}
    # films the check did not use, in one batch of 5: dynamic batch size, same answers
    films = sample_files("kermany")[-5:]
    images = np.stack([load_image(f, trained_artifact.image_spec) for f in films])
    probabilities = exported_predict_fn(target, fmt)(images)
    expected = Predictor(trained_artifact).predict(images).probabilities
    assert probabilities.shape == (5, 1)
    np.testing.assert_allclose(probabilities, expected, atol=TOLERANCE)
    # the sidecar names the tensors the format's own runtime feeds and returns
    fed = _run_by_sidecar_names(target, fmt, sidecar, images)
    np.testing.assert_allclose(fed, expected, atol=TOLERANCE)
    # the out-of-distribution score comes out of the same graph, named by the sidecar
    answers = Predictor(trained_artifact).predict(images)
    _, scores = exported_predict_fn(target, fmt, ood=True)(images)
    np.testing.assert_allclose(scores, answers.ood_scores, rtol=1e-3)
    ood = sidecar["ood"]
    assert ood["threshold"] == trained_artifact.ood_detector.threshold
    assert set(ood["input_checks"]) == {"min_std", "min_range", "max_colour", "aspect"}
    named = _run_by_sidecar_names(target, fmt, sidecar, images, output=ood["output"]["name"])
    np.testing.assert_allclose(named, answers.ood_scores, rtol=1e-3)
    assert sidecar["check"]["max_rel_ood_score_difference"] < 1e-3


def _run_by_sidecar_names(
    target, fmt: str, sidecar: dict, images: np.ndarray, output: str | None = None
) -> np.ndarray:
    """The export run the way a deployment reads the sidecar: tensors by their names."""
    name_in, name_out = sidecar["input"]["name"], output or sidecar["output"]["name"]
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        return session.run([name_out], {name_in: images.astype(np.float32)})[0]
    import tensorflow as tf

    if fmt == "tf_saved_model":
        signature = tf.saved_model.load(str(target)).signatures[sidecar["signature"]]
        return signature(**{name_in: tf.constant(images, tf.float32)})[name_out].numpy()
    from ai_edge_litert.interpreter import Interpreter  # LiteRT as a deployment runs it

    interpreter = Interpreter(model_path=str(target))
    detail = next(d for d in interpreter.get_input_details() if d["name"] == name_in)
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images.astype(np.float32))
    interpreter.invoke()
    output = next(d for d in interpreter.get_output_details() if d["name"] == name_out)
    return interpreter.get_tensor(output["index"])


def test_export_cli_with_temperature_baked_in(trained_artifact, tmp_path):
    from cxr_keras.artifact.store import copy_artifact

    model = copy_artifact(trained_artifact.path, tmp_path / "model")
    meta = json.loads((model / "cxr_model.json").read_text())
    meta["temperature"] = {"PNEUMONIA": 2.5}
    (model / "cxr_model.json").write_text(json.dumps(meta))
    command = [
        sys.executable,
        "-m",
        "cxr_keras.export",
        "--model",
        str(model),
        "--format",
        "litert",
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    check = json.loads((tmp_path / "out" / SIDECAR).read_text())["check"]
    assert check["images"] == 8 and check["max_abs_probability_difference"] < TOLERANCE
    films = sample_files("kermany")[:3]
    images = np.stack([load_image(f, trained_artifact.image_spec) for f in films])
    logits = trained_artifact.model.predict(images, verbose=0)
    exported = exported_predict_fn(tmp_path / "out" / "model.tflite", "litert")(images)
    np.testing.assert_allclose(exported, 1 / (1 + np.exp(-logits / 2.5)), atol=TOLERANCE)


def test_histogram_equalisation_runs_on_litert_builtins(tmp_path):
    """The equalisation layer exports to LiteRT ops that ai-edge-litert runs by itself: no
    TensorFlow Flex delegate (bincount needed one, so the shipped model could not be
    served by LiteRT without TensorFlow)."""
    import keras

    from cxr_keras.models.layers import HistogramEqualization
    from cxr_keras.serving.litert import LiteRTRunner

    inputs = keras.Input((32, 48, 1))
    model = keras.Model(inputs, HistogramEqualization()(inputs))
    images = np.stack(
        [load_image(f, ImageSpec(size=(32, 48))) for f in sample_files("kermany")[:3]]
    )
    model.export(str(tmp_path / "eq.tflite"), format="litert", verbose=False)
    outputs = LiteRTRunner(tmp_path / "eq.tflite").run(images)  # never tf.lite
    np.testing.assert_array_equal(next(iter(outputs.values())), np.asarray(model(images)))
