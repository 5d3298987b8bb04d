"""Export an artifact for deployment with Keras' own ``model.export``
(``python -m cxr_keras.export``).

The exported graph takes the model input (n, H, W, 1) float32 in [0, 1] (make it with
``cxr_keras.data.load_image`` and the sidecar's image spec) and returns PROBABILITIES: the
artifact's temperatures and the sigmoid are baked in. ``cxr_export.json`` beside it
carries the labels, the decision thresholds and rule, the referral rule, the image spec
and the input/output names. After exporting, the exported model is loaded back and
compared with the ``.keras`` model on ``--check`` real bundled films (max absolute
probability difference, printed and stored in the sidecar). ONNX needs the ``[export]``
extra (tf2onnx, onnx, onnxruntime).

Example:
    >>> path = export_model("runs/demo", "tf_saved_model", out="runs/demo/export")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "export_model",
    "exported_io_names",
    "exported_predict_fn",
    "probability_model",
]

log = logging.getLogger("cxr_keras.export")

FORMATS = {"tf_saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
SIDECAR = "cxr_export.json"
TOLERANCE = 1e-4  # max |probability difference| accepted against the .keras model


class ExportError(RuntimeError):
    """A format that cannot be produced here, with the reason and the remedy."""


def probability_model(artifact):
    """The artifact's model with temperature scaling and the sigmoid appended."""
    import keras

    model = artifact.model
    inputs = keras.Input(model.input.shape[1:], dtype="float32", name="image")
    # training=False is part of the graph: an exported endpoint calls the model without it,
    # and Keras' augmentation layers then default to ACTIVE (probabilities off by 0.5)
    logits = model(inputs, training=False)
    temperatures = np.asarray(artifact.temperatures, np.float32)
    scaled = keras.layers.Rescaling(1.0 / temperatures, name="temperature")(logits)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities")(scaled)
    return keras.Model(inputs, probabilities, name=f"{model.name}_probabilities")


def exported_predict_fn(path: str | os.PathLike, fmt: str):
    """A function images -> probabilities running an exported model (for checks)."""
    path = Path(path)
    if fmt == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return lambda x: np.asarray(loaded.serve(tf.constant(x, tf.float32)))
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name: x.astype(np.float32)})[0])
    if fmt == "litert":
        import tensorflow as tf

        def run(x):
            interpreter = tf.lite.Interpreter(model_path=str(path))
            detail = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(detail["index"], x.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], x.astype(np.float32))
            interpreter.invoke()
            return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

        return run
    raise ValueError(f"format: one of {sorted(FORMATS)}, got {fmt!r}")


def exported_io_names(path: str | os.PathLike, fmt: str) -> dict[str, str]:
    """The input and output tensor names of an exported model, as its runtime reports
    them (they differ by format: ONNX ``Identity:0``, SavedModel ``output_0``, ...), so the
    sidecar names the tensors a caller actually feeds and reads."""
    path = Path(path)
    if fmt == "tf_saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        return {
            "input": next(iter(signature.structured_input_signature[1])),
            "output": next(iter(signature.structured_outputs)),
            "signature": "serving_default",
        }
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return {"input": session.get_inputs()[0].name, "output": session.get_outputs()[0].name}
    if fmt == "litert":
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(path))
        return {
            "input": interpreter.get_input_details()[0]["name"],
            "output": interpreter.get_output_details()[0]["name"],
        }
    raise ValueError(f"format: one of {sorted(FORMATS)}, got {fmt!r}")


def _check(artifact, predict_fn, n: int) -> float:
    """Max |probability difference| between the export and the Predictor on n real films."""
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.data.io import load_image
    from cxr_keras.sample_data import sample_files

    files = sample_files("kermany")[:: max(1, len(sample_files("kermany")) // n)][:n]
    images = np.stack([load_image(f, artifact.image_spec) for f in files])
    expected = Predictor(artifact).predict(images).probabilities
    return float(np.abs(predict_fn(images) - expected).max())


def export_model(model, fmt: str, *, out: str | os.PathLike | None = None, check: int = 8) -> Path:
    """Export ``model`` (an artifact or its folder) in ``fmt`` under ``out`` (default
    ``<artifact>/export/<fmt>``); returns the exported file or folder."""
    from cxr_keras.artifact.referral import rule_of
    from cxr_keras.artifact.store import Artifact, library_versions, load_artifact

    if fmt not in FORMATS:
        raise ValueError(f"--format: one of {sorted(FORMATS)}, got {fmt!r}")
    artifact = model if isinstance(model, Artifact) else load_artifact(model)
    out = Path(out) if out else artifact.path / "export" / fmt
    out.mkdir(parents=True, exist_ok=True)
    target = out / FORMATS[fmt]
    serving = probability_model(artifact)
    serving(np.zeros((1, *artifact.image_spec.size, 1), np.float32))  # ONNX wants it called
    try:
        serving.export(str(target), format=fmt, verbose=False)
    except ModuleNotFoundError as exc:
        raise ExportError(
            f"{fmt} export needs {exc.name!r}: pip install 'cxr-keras[export]' "
            "(tf2onnx, onnx, onnxruntime)"
        ) from None
    except (ValueError, NotImplementedError) as exc:
        raise ExportError(f"{fmt} export failed with these versions: {exc}") from None
    names = exported_io_names(target, fmt)
    sidecar = {
        "format": fmt,
        "file": target.name,
        **({"signature": names["signature"]} if "signature" in names else {}),
        "input": {
            "name": names["input"],
            "shape": [None, *artifact.image_spec.size, 1],
            "dtype": "float32",
            "range": [0.0, 1.0],
        },
        "output": {
            "name": names["output"],
            "shape": [None, len(artifact.labels)],
            "temperature_and_sigmoid_applied": True,
        },
        "labels": artifact.labels,
        "thresholds": dict(zip(artifact.labels, artifact.thresholds(), strict=True)),
        "decision_rule": artifact.decision_rule,
        "referral": rule_of(artifact.meta),
        "image_spec": artifact.meta["image_spec"],
        "source_artifact": str(artifact.path),
        "versions": library_versions(),
    }
    if check:
        difference = _check(artifact, exported_predict_fn(target, fmt), check)
        sidecar["check"] = {
            "images": check,
            "max_abs_probability_difference": difference,
            "tolerance": TOLERANCE,
        }
        if difference > TOLERANCE:
            raise ExportError(
                f"{target}: the export differs from the .keras model by {difference:.2e} "
                f"(tolerance {TOLERANCE:g})"
            )
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
    return target
