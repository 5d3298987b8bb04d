"""The Predictor: the one object that turns an artifact's logits into answers.

logits -> / temperature -> sigmoid -> probabilities -> decision at the artifact's decision
thresholds. evaluate, explain, predict, the app and export all go through it, so they
cannot disagree about preprocessing, calibration or thresholds.

Example:
    >>> predictor = Predictor.from_path("runs/demo")  # doctest: +SKIP
    >>> result = predictor.predict_files(["chest.png"])  # doctest: +SKIP
    >>> result.probabilities.shape, result.decisions.dtype  # doctest: +SKIP
    ((1, 1), dtype('bool'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from cxr_keras.artifact.store import Artifact, load_artifact

__all__ = ["Prediction", "Predictor"]


@dataclass
class Prediction:
    """Answers for a batch of images, one row per image, one column per label."""

    logits: np.ndarray
    probabilities: np.ndarray
    decisions: np.ndarray  # bool: probability >= the label's decision threshold
    labels: list[str]
    thresholds: list[float]


class Predictor:
    """Probabilities and decisions from an artifact (see the module docstring)."""

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.labels = artifact.labels
        self.spec = artifact.image_spec
        self.temperatures = np.asarray(artifact.temperatures, dtype=np.float64)
        self.thresholds = artifact.thresholds()

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Predictor:
        """Load the artifact at ``path`` and wrap it."""
        return cls(load_artifact(path))

    def logits(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Raw model outputs for model inputs (n, H, W, 1) in [0, 1], in inference mode."""
        return np.asarray(
            self.artifact.model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64
        )

    def from_logits(self, logits: np.ndarray) -> Prediction:
        """Temperature, sigmoid and thresholds applied to logits."""
        logits = np.asarray(logits, dtype=np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits / self.temperatures))
        decisions = probabilities >= np.asarray(self.thresholds)
        return Prediction(logits, probabilities, decisions, self.labels, self.thresholds)

    def predict(self, images: np.ndarray, batch_size: int = 32) -> Prediction:
        """Answers for model inputs (n, H, W, 1) in [0, 1] (see :func:`load_image`)."""
        return self.from_logits(self.logits(images, batch_size))

    def manifest_logits(self, manifest, batch_size: int = 32) -> np.ndarray:
        """Logits for every row of a manifest (n, labels); rows whose file failed to
        decode are NaN (the decode error is logged), so a long run is never lost to one
        bad file and the caller can count them."""
        from cxr_keras.data.pipeline import make_indexed_dataset

        out = np.full((len(manifest), len(self.labels)), np.nan)
        for rows, images in make_indexed_dataset(manifest, self.spec, batch_size):
            out[rows.numpy()] = np.asarray(self.artifact.model.predict_on_batch(images))
        return out

    def predict_files(self, paths, batch_size: int = 32) -> Prediction:
        """Answers for image or DICOM files, decoded with the artifact's image spec.
        A bad file raises :class:`~cxr_keras.data.io.ImageDecodeError` naming it."""
        from cxr_keras.data.pipeline import make_image_dataset

        ds = make_image_dataset(list(paths), self.spec, batch_size)
        logits = np.concatenate([self.artifact.model.predict_on_batch(x) for x in ds])
        return self.from_logits(logits)
