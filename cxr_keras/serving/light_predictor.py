"""Answers without TensorFlow: the artifact's ONNX export run by onnxruntime, or its
LiteRT export run by ai-edge-litert, the films read by :mod:`cxr_keras.data.numpy_io`
(``predict --runtime onnx`` or ``--runtime litert``).

An :class:`ExportedPredictor` is a :class:`~cxr_keras.artifact.predictor.Predictor`
whose forward pass is the export (``<artifact>/export/onnx`` or ``export/litert``, written
by ``python -m cxr_keras.export --format onnx|litert``: the model with its test-time
views, temperatures, sigmoid and out-of-distribution score in one graph). Everything
after the forward pass is the Predictor's own: decisions at the stored thresholds, the
input checks, the out-of-distribution verdict, the referral rule and the audit log. So
every path gives the same answers (``tests/test_light_serving.py``: probabilities within
1e-4, the same decisions and flags, on real films and DICOMs), and neither TensorFlow nor
Keras is imported: a call costs the runtime's import (a fraction of a second), not
TensorFlow's (seconds). Grad-CAM and MC-dropout referral need the Keras model: the full
path.

Example:
    >>> predictor = ExportedPredictor.from_artifact("kermany_pneumonia")  # doctest: +SKIP
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
from cxr_keras.artifact.store import Artifact, artifact_folder, load_meta
from cxr_keras.core.install import MissingExtraError
from cxr_keras.data.input_checks import batch_statistics
from cxr_keras.serving.export import SIDECAR
from cxr_keras.serving.litert import LiteRTRunner

__all__ = ["EXPORT_FOLDERS", "ExportedPredictor", "light_artifact"]

log = logging.getLogger(__name__)

# inside the artifact, where python -m cxr_keras.export writes each format
EXPORT_FOLDERS = {"onnx": Path("export") / "onnx", "litert": Path("export") / "litert"}


def light_artifact(path: str | os.PathLike) -> Artifact:
    """An artifact's description without its Keras model (``model`` is None): what the
    Predictor's decision logic reads, loaded without TensorFlow."""
    path = artifact_folder(path)
    return Artifact(model=None, meta=load_meta(path), path=path)


class ExportedPredictor(Predictor):
    """A Predictor running an ONNX or LiteRT export (see the module docstring)."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        runtime: str = "onnx",
        export: str | os.PathLike | None = None,
        audit_log: AuditLog | None = None,
        channel: str = "python",
    ):
        """``runtime``: ``onnx`` (onnxruntime) or ``litert`` (ai-edge-litert). ``export``:
        the export folder (default ``<artifact>/export/<runtime>``). A ValueError when it
        is missing or was made for other thresholds, temperatures or detector than the
        artifact holds now (export it again)."""
        if runtime not in EXPORT_FOLDERS:
            raise ValueError(f"runtime: one of {sorted(EXPORT_FOLDERS)}, got {runtime!r}")
        folder = Path(export) if export is not None else artifact.path / EXPORT_FOLDERS[runtime]
        sidecar_path = folder / SIDECAR
        how = f"python -m cxr_keras.export --model {artifact.path} --format {runtime}"
        if not sidecar_path.is_file():
            raise ValueError(f"{folder}: no {runtime} export here; make it with {how}")
        self.sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        if self.sidecar.get("format") != runtime:
            raise ValueError(f"{folder}: a {self.sidecar.get('format')} export, not {runtime}")
        super().__init__(artifact, channel=channel)  # the decision logic, no forward pass yet
        self.runtime = runtime
        self._check_current(folder, how)
        model_file = folder / self.sidecar["file"]
        self.input_name = self.sidecar["input"]["name"]
        ood = self.sidecar["ood"].get("output")
        self.output_names = [self.sidecar["output"]["name"], *([ood["name"]] if ood else [])]
        self._run = _onnx_run(model_file) if runtime == "onnx" else _litert_run(model_file)
        # the audit log names the weights as the full path does (the export records their
        # hash); an export from before that is named by its file's hash
        self._weights_sha256 = (
            self.sidecar.get("weights_sha256")
            or hashlib.sha256(model_file.read_bytes()).hexdigest()
        )
        self.audit_log = audit_log

    @classmethod
    def from_artifact(
        cls, path: str | os.PathLike, *, runtime: str = "onnx", audit_log: AuditLog | None = None
    ) -> ExportedPredictor:
        """The artifact at ``path`` with its ``runtime`` export, loaded without TensorFlow."""
        return cls(light_artifact(path), runtime=runtime, audit_log=audit_log)

    def _check_current(self, folder: Path, how: str) -> None:
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
                f"export it again: {how}"
            )

    @property
    def weights_sha256(self) -> str:
        return self._weights_sha256

    def outputs(self, images) -> ModelOutputs:
        """The export's probabilities (as logits at the stored temperatures) and
        out-of-distribution scores, with the input statistics, for a batch."""
        images = np.asarray(images, np.float32)
        results = self._run(images, self.input_name, self.output_names)
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


def _onnx_run(model_file: Path):
    """``run(images, input name, output names) -> [arrays]`` on onnxruntime."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise MissingExtraError(
            "the onnx runtime needs onnxruntime: pip install 'cxr-keras[serve]'"
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return lambda images, name, outputs: session.run(outputs, {name: images})


def _litert_run(model_file: Path):
    """``run(images, input name, output names) -> [arrays]`` on ai-edge-litert."""
    runner = LiteRTRunner(model_file)  # never TensorFlow's tf.lite: this path must not import it

    def run(images, name, outputs):
        if name != runner.input["name"]:
            raise ValueError(f"{model_file}: no input {name!r} (the sidecar is not this model's)")
        results = runner.run(images)
        return [results[output] for output in outputs]

    return run
