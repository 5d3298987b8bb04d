"""Answers without TensorFlow: the artifact's ONNX export run by onnxruntime, the films
read by :mod:`cxr_keras.data.numpy_io` (``predict --runtime onnx``).

An :class:`ExportedPredictor` is a :class:`~cxr_keras.artifact.predictor.Predictor`
whose forward pass is the export (``<artifact>/export/onnx``, written by ``python -m
cxr_keras.export --format onnx``: the model with its test-time views, temperatures,
sigmoid and out-of-distribution score in one graph). Everything after the forward pass
is the Predictor's own: decisions at the stored thresholds, the input checks, the
out-of-distribution verdict, the referral rule and the audit log. So both paths give the
same answers (``tests/test_light_serving.py``: probabilities within 1e-4, the same
decisions and flags, on real films and DICOMs), and neither TensorFlow nor Keras is
imported: a call costs the onnxruntime import (a fraction of a second), not TensorFlow's
(seconds). Grad-CAM and MC-dropout referral need the Keras model: the full path.

Example:
    >>> predictor = ExportedPredictor.from_artifact("models/kermany_pneumonia")  # doctest: +SKIP
    >>> predictor.predict_files(["chest.png"]).decisions  # doctest: +SKIP
    array([[ True]])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from cxr_keras.artifact.audit_log import AuditLog
from cxr_keras.artifact.predictor import ModelOutputs, Predictor
from cxr_keras.artifact.store import Artifact, load_meta
from cxr_keras.data.input_checks import batch_statistics
from cxr_keras.serving.export import SIDECAR

__all__ = ["EXPORT_FOLDER", "ExportedPredictor", "light_artifact"]

log = logging.getLogger(__name__)

EXPORT_FOLDER = Path("export") / "onnx"  # inside the artifact, where the export writes it


def light_artifact(path: str | os.PathLike) -> Artifact:
    """An artifact's description without its Keras model (``model`` is None): what the
    Predictor's decision logic reads, loaded without TensorFlow."""
    path = Path(path)
    return Artifact(model=None, meta=load_meta(path), path=path)


class ExportedPredictor(Predictor):
    """A Predictor running an ONNX export (see the module docstring)."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        export: str | os.PathLike | None = None,
        audit_log: AuditLog | None = None,
        channel: str = "python",
    ):
        """``export``: the export folder (default ``<artifact>/export/onnx``). A
        ValueError when it is missing or was made for other thresholds, temperatures or
        detector than the artifact holds now (export it again)."""
        import onnxruntime as ort

        folder = Path(export) if export is not None else artifact.path / EXPORT_FOLDER
        sidecar_path = folder / SIDECAR
        if not sidecar_path.is_file():
            raise ValueError(
                f"{folder}: no ONNX export here; make it with python -m cxr_keras.export "
                f"--model {artifact.path} --format onnx"
            )
        self.sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        super().__init__(artifact, channel=channel)  # the decision logic, no forward pass yet
        self._check_current(folder)
        model_file = folder / self.sidecar["file"]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.sidecar["input"]["name"]
        ood = self.sidecar["ood"].get("output")
        self.output_names = [self.sidecar["output"]["name"], *([ood["name"]] if ood else [])]
        # the audit log names the weights as the full path does (the export records their
        # hash); an export from before that is named by its file's hash
        self._weights_sha256 = (
            self.sidecar.get("weights_sha256")
            or hashlib.sha256(model_file.read_bytes()).hexdigest()
        )
        self.audit_log = audit_log

    @classmethod
    def from_artifact(
        cls, path: str | os.PathLike, *, audit_log: AuditLog | None = None
    ) -> ExportedPredictor:
        """The artifact at ``path`` with its ONNX export, loaded without TensorFlow."""
        return cls(light_artifact(path), audit_log=audit_log)

    def _check_current(self, folder: Path) -> None:
        """The export must hold what the artifact holds now: same labels, thresholds,
        temperatures and out-of-distribution threshold."""
        sidecar = self.sidecar
        problems = []
        if sidecar["labels"] != self.labels:
            problems.append(f"labels {sidecar['labels']} != {self.labels}")
        exported = [sidecar["thresholds"][label] for label in sidecar["labels"]]
        if not np.allclose(exported, self.thresholds, rtol=0, atol=1e-12):
            problems.append("other decision thresholds")
        if "temperatures" in sidecar and not np.allclose(
            sidecar["temperatures"], self.temperatures, rtol=1e-9
        ):
            problems.append("other temperatures")
        threshold = sidecar["ood"].get("threshold")
        detector = self.detector.threshold if self.detector else None
        if (threshold is None) != (detector is None) or (
            threshold is not None and not np.isclose(threshold, detector, rtol=1e-9)
        ):
            problems.append("another out-of-distribution detector")
        if problems:
            raise ValueError(
                f"{folder}: the export is older than the artifact ({'; '.join(problems)}); "
                f"export it again: python -m cxr_keras.export --model {self.artifact.path} "
                "--format onnx"
            )

    @property
    def weights_sha256(self) -> str:
        return self._weights_sha256

    def outputs(self, images) -> ModelOutputs:
        """The export's probabilities (as logits at the stored temperatures) and
        out-of-distribution scores, with the input statistics, for a batch."""
        images = np.asarray(images, np.float32)
        results = self.session.run(self.output_names, {self.input_name: images})
        p = np.clip(np.asarray(results[0], np.float64), 1e-15, 1 - 1e-15)
        logits = np.log(p / (1 - p)) * self.temperatures  # what from_logits turns back into p
        scores = np.asarray(results[1], np.float64) if len(results) > 1 else None
        statistics = batch_statistics(images)
        return ModelOutputs(logits, None, statistics, self.input_digests(images), scores)

    def logits(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        images = np.asarray(images, np.float32)
        starts = range(0, len(images), batch_size)
        parts = [self.outputs(images[i : i + batch_size]).logits for i in starts]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)))

    def manifest_batches(self, manifest, batch_size: int = 32):
        """The decodable rows' model inputs, read without TensorFlow; a file that fails
        is logged by name and left out (the caller counts it), as the pipeline does."""
        from cxr_keras.data.io import ImageDecodeError
        from cxr_keras.data.numpy_io import load_image_numpy

        rows, images = [], []
        for i, path in enumerate(manifest["path"]):
            try:
                images.append(load_image_numpy(path, self.spec))
                rows.append(i)
            except ImageDecodeError as exc:
                log.warning("skipped %s: %s", path, exc.reason)
            if len(rows) == batch_size:
                yield np.asarray(rows), np.stack(images)
                rows, images = [], []
        if rows:
            yield np.asarray(rows), np.stack(images)

    def file_batches(self, paths, batch_size: int = 32):
        from cxr_keras.data.numpy_io import load_image_numpy

        paths = list(paths)
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            yield np.stack([load_image_numpy(path, self.spec) for path in batch])
