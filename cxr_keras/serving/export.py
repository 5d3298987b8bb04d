"""Export an artifact for deployment with Keras' own ``model.export``
(``python -m cxr_keras.export``).

The exported graph takes the model input (n, H, W, 1) float32 in [0, 1] (make it with
``cxr_keras.data.load_image`` and the sidecar's image spec) and returns PROBABILITIES: the
artifact's temperatures and the sigmoid are baked in; with a fitted out-of-distribution
detector (:mod:`cxr_keras.artifact.ood`) also each image's OOD SCORE (n,), computed in the
graph from the same forward pass. ``cxr_export.json`` beside it carries the labels, the
decision thresholds and rule, the referral rule, the detector's threshold and the input
checks a caller runs on the file first, the image spec and the input/output names.
After exporting, the exported model is loaded back and compared with the ``.keras`` model
on ``--check`` real bundled films (max absolute probability difference and relative OOD
score difference, stored in the sidecar). ONNX needs the ``[export]``
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
OOD_TOLERANCE = 1e-3  # max relative difference of the OOD score (float32 in the graph)


class ExportError(RuntimeError):
    """A format that cannot be produced here, with the reason and the remedy."""


def probability_model(artifact, *, ood: bool = True):
    """The artifact's model with temperature scaling and the sigmoid appended; with
    ``ood`` and a fitted detector, a second output: the out-of-distribution score."""
    import keras

    from cxr_keras.artifact.predictor import feature_model

    model = artifact.model
    detector = artifact.ood_detector if ood else None
    inputs = keras.Input(model.input.shape[1:], dtype="float32", name="image")
    # training=False is part of the graph: an exported endpoint calls the model without it,
    # and Keras' augmentation layers then default to ACTIVE (probabilities off by 0.5)
    if detector is None:
        logits, features = model(inputs, training=False), None
    else:
        logits, *features = feature_model(artifact, detector.layers)(inputs, training=False)
    temperatures = np.asarray(artifact.temperatures, np.float32)
    scaled = keras.layers.Rescaling(1.0 / temperatures, name="temperature")(logits)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities")(scaled)
    if detector is None:
        return keras.Model(inputs, probabilities, name=f"{model.name}_probabilities")
    score = _ood_score_layer(detector)(features)
    return keras.Model(inputs, [probabilities, score], name=f"{model.name}_probabilities")


def _ood_score_layer(detector):
    """A layer computing :meth:`OODDetector.score` in the graph (float32), so an exported
    model answers the out-of-distribution question without cxr-keras."""
    import keras
    from keras import ops

    class OODScore(keras.layers.Layer):
        def call(self, features):
            scores = []
            for j, x in enumerate(features):
                x = ops.cast(x, "float32")
                if detector.projections[j] is not None:
                    center = detector.centers[j].astype(np.float32)
                    x = ops.matmul(x - center, detector.projections[j].astype(np.float32))
                diff = ops.expand_dims(x, 1) - detector.means[j].astype(np.float32)[None]
                precision = detector.precisions[j].astype(np.float32)
                distance = ops.sum(ops.matmul(diff, precision) * diff, axis=-1)
                scores.append(ops.min(distance, axis=1) / np.float32(detector.scales[j]))
            return ops.max(ops.stack(scores, axis=1), axis=1)

    return OODScore(name="ood_score", dtype="float32")


def exported_predict_fn(path: str | os.PathLike, fmt: str, *, ood: bool = False):
    """A function images -> probabilities running an exported model (for checks); with
    ``ood``, images -> (probabilities, out-of-distribution scores or None)."""
    run = _exported_outputs_fn(Path(path), fmt)
    if ood:
        return lambda x: (lambda outs: (outs[0], outs[1] if len(outs) > 1 else None))(run(x))
    return lambda x: run(x)[0]


def _exported_outputs_fn(path: Path, fmt: str):
    """images -> [probabilities (n, labels), ood scores (n,) when exported]."""
    if fmt == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))

        def run_saved_model(x):
            out = loaded.serve(tf.constant(x, tf.float32))
            return (
                [np.asarray(o) for o in out] if isinstance(out, list | tuple) else [np.asarray(out)]
            )

        return run_saved_model
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: [np.asarray(o) for o in session.run(None, {name: x.astype(np.float32)})]
    if fmt == "litert":
        from cxr_keras.serving.litert import LiteRTRunner

        runner = LiteRTRunner(path, allow_tensorflow=True)

        def run_litert(x):
            outputs = runner.run(x)
            return [outputs[name] for name in runner.output_names]

        return run_litert
    raise ValueError(f"format: one of {sorted(FORMATS)}, got {fmt!r}")


def exported_io_names(path: str | os.PathLike, fmt: str) -> dict[str, str]:
    """The input and output tensor names of an exported model, as its runtime reports
    them (they differ by format: ONNX ``Identity:0``, SavedModel ``output_0``, ...), so the
    sidecar names the tensors a caller actually feeds and reads."""
    path = Path(path)
    if fmt == "tf_saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        outputs = sorted(signature.structured_outputs)  # output_0, output_1: Keras' order
        return {
            "input": next(iter(signature.structured_input_signature[1])),
            "output": outputs[0],
            **({"ood_output": outputs[1]} if len(outputs) > 1 else {}),
            "signature": "serving_default",
        }
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        return {
            "input": session.get_inputs()[0].name,
            "output": outputs[0],
            **({"ood_output": outputs[1]} if len(outputs) > 1 else {}),
        }
    if fmt == "litert":
        from cxr_keras.serving.litert import LiteRTRunner

        runner = LiteRTRunner(path, allow_tensorflow=True)
        outputs = runner.output_names  # the probabilities first: the rank-2 output
        return {
            "input": runner.input["name"],
            "output": outputs[0],
            **({"ood_output": outputs[1]} if len(outputs) > 1 else {}),
        }
    raise ValueError(f"format: one of {sorted(FORMATS)}, got {fmt!r}")


def _check(artifact, predict_fn, n: int) -> tuple[float, float | None]:
    """Max |probability difference| and max relative out-of-distribution score difference
    (None without a detector) between the export and the Predictor on n real films."""
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.data.io import load_image
    from cxr_keras.sample_data import sample_files

    files = sample_files("kermany")[:: max(1, len(sample_files("kermany")) // n)][:n]
    images = np.stack([load_image(f, artifact.image_spec) for f in files])
    expected = Predictor(artifact).predict(images)
    probabilities, scores = predict_fn(images)
    difference = float(np.abs(probabilities - expected.probabilities).max())
    if scores is None:
        return difference, None
    relative = np.abs(scores - expected.ood_scores) / np.maximum(np.abs(expected.ood_scores), 1)
    return difference, float(relative.max())


def _ood_sidecar(artifact, names: dict) -> dict:
    """What a caller of the export needs to flag inputs out of distribution."""
    from cxr_keras.data.input_checks import InputChecks

    detector = artifact.ood_detector
    checks = (detector.checks if detector else InputChecks()).to_dict()
    note = (
        "flag an image when its ood_score output is above the threshold, or when it fails "
        "an input check (cxr_keras.data.input_checks: near-constant, a tiny value range, "
        "colour, aspect ratio; the last two need the file, before it becomes the model "
        "input); a flagged answer is not to be trusted: refer it"
    )
    if detector is None:
        return {"output": None, "threshold": None, "input_checks": checks, "note": note}
    return {
        "output": {"name": names["ood_output"], "shape": [None]},
        "threshold": detector.threshold,
        "quantile": detector.quantile,
        "input_checks": checks,
        "note": note,
    }


def export_model(model, fmt: str, *, out: str | os.PathLike | None = None, check: int = 8) -> Path:
    """Export ``model`` (an artifact or its folder) in ``fmt`` under ``out`` (default
    ``<artifact>/export/<fmt>``); returns the exported file or folder."""
    from cxr_keras.artifact.audit_log import weights_digest
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
        "temperatures": artifact.temperatures,  # baked in; the light path checks they hold
        # the weights' hash the audit log names answers by, on every path
        "weights_sha256": weights_digest(artifact.model),
        "decision_rule": artifact.decision_rule,
        "referral": rule_of(artifact.meta),
        "ood": _ood_sidecar(artifact, names),
        "image_spec": artifact.meta["image_spec"],
        "source_artifact": str(artifact.path),
        "versions": library_versions(),
    }
    if check:
        difference, ood = _check(artifact, exported_predict_fn(target, fmt, ood=True), check)
        sidecar["check"] = {
            "images": check,
            "max_abs_probability_difference": difference,
            "tolerance": TOLERANCE,
            "max_rel_ood_score_difference": ood,
            "ood_tolerance": OOD_TOLERANCE,
        }
        if difference > TOLERANCE or (ood is not None and ood > OOD_TOLERANCE):
            raise ExportError(
                f"{target}: the export differs from the .keras model by {difference:.2e} "
                f"in probability (tolerance {TOLERANCE:g}) and {ood} relative in its "
                f"out-of-distribution score (tolerance {OOD_TOLERANCE:g})"
            )
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
    return target
