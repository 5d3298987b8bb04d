"""The out-of-distribution detector stored in an artifact: is an input like the films the
model was trained on?

Feature-space Mahalanobis distance (Lee et al., NeurIPS 2018), over several layers:

- for each chosen layer, the feature map is averaged over space; the training split's
  features get one mean per class (no finding / a finding) and one shared covariance,
  shrunk by Ledoit-Wolf (scikit-learn), as the feature count is large for the number of
  films; an input's layer score is its squared distance to the nearest class mean;
- each layer's score is divided by its median on the training split, and an input's score
  is the largest of them, so one layer that finds the input strange is enough;
- the flag threshold is a quantile (default 99.5%) of the scores of the validation split,
  in-distribution films only, placed midway between two films' scores. It never sees an
  out-of-distribution example.

The layers are the last half of the network's activations (up to :data:`MAX_LAYERS`,
evenly spaced, ending at the last): low-level layers see texture and exposure, the last
ones content. On our own out-of-distribution examples (``benchmarks/ood.py``) this
separated photographs, other medical images and synthetic images from validation films
better than the last layer alone, max-logit or energy scores, which a confident wrong
answer fools.

Inputs are also checked cheaply first (:mod:`cxr_keras.data.input_checks`); either kind of
finding flags the input, and every flagged answer is referred.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = [rng.normal(size=(400, 6))]; val = [rng.normal(size=(200, 6))]
    >>> detector = fit_detector(
    ...     train, groups=np.zeros(400, int), val_features=val, layers=["pool"]
    ... )
    >>> far = [np.full((1, 6), 8.0)]
    >>> bool(detector.score(far)[0] > detector.threshold), detector.quantile
    (True, 0.995)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_keras.data.input_checks import InputChecks

__all__ = [
    "DEFAULT_QUANTILE",
    "MAX_LAYERS",
    "OOD_FILE",
    "OODDetector",
    "detector_layers",
    "fit_detector",
    "load_detector",
    "save_detector",
]

OOD_FILE = "ood.npz"
DEFAULT_QUANTILE = 0.995
MAX_LAYERS = 4
MAX_DIMENSIONS = 512  # wider layers are projected on their first principal components


@dataclass
class OODDetector:
    """A fitted detector: per layer the class means and shared precision matrix (and a
    PCA projection for wide layers), the per-layer scales, the threshold."""

    layers: list[str]
    means: list[np.ndarray]  # per layer (classes, k)
    precisions: list[np.ndarray]  # per layer (k, k)
    projections: list[np.ndarray | None]  # per layer (d, k) or None
    centers: list[np.ndarray | None]  # per layer (d,) or None (with the projection)
    scales: list[float]  # per layer: median score of the training split
    threshold: float
    quantile: float
    checks: InputChecks = field(default_factory=InputChecks)
    summary: dict = field(default_factory=dict)

    def layer_scores(self, features: list[np.ndarray]) -> np.ndarray:
        """(n, layers): each layer's squared Mahalanobis distance to the nearest class
        mean, divided by its training median."""
        columns = []
        for j, x in enumerate(features):
            x = np.asarray(x, np.float64)
            if self.projections[j] is not None:
                x = (x - self.centers[j]) @ self.projections[j]
            distances = []
            for mean in self.means[j]:
                diff = x - mean
                distances.append(np.einsum("ij,jk,ik->i", diff, self.precisions[j], diff))
            columns.append(np.min(distances, axis=0) / self.scales[j])
        return np.stack(columns, axis=1)

    def score(self, features: list[np.ndarray]) -> np.ndarray:
        """(n,): the out-of-distribution score (above :attr:`threshold`: flagged)."""
        return self.layer_scores(features).max(axis=1)

    def meta(self) -> dict:
        """What ``cxr_model.json`` records of the detector (the arrays live in ``ood.npz``)."""
        return {
            "method": "mahalanobis",
            "layers": list(self.layers),
            "pooling": "spatial mean",
            "covariance": "shared across classes, Ledoit-Wolf shrinkage",
            "combine": "max over layers of the score / its training-split median",
            "scales": [float(s) for s in self.scales],
            "quantile": self.quantile,
            "threshold": self.threshold,
            "input_checks": self.checks.to_dict(),
            "file": OOD_FILE,
            **self.summary,
        }


def detector_layers(model, *, limit: int = MAX_LAYERS) -> list[str]:
    """The layers the detector reads: the activation layers (ReLU / Activation with a
    feature map larger than 1 x 1) of the network's last half, up to ``limit``, evenly
    spaced, ending at the last one."""
    import keras

    found = [
        layer.name
        for layer in model.layers
        if isinstance(layer, (keras.layers.ReLU, keras.layers.Activation))
        and len(layer.output.shape) == 4
        and all(side is None or side > 1 for side in layer.output.shape[1:3])
    ]  # feature maps only: not squeeze-excitation gates (1 x 1)
    if not found:
        raise ValueError(f"{model.name}: no activation layer with a feature map to read")
    half = found[len(found) // 2 :]
    if len(half) <= limit:
        return half
    picks = np.linspace(0, len(half) - 1, limit).round().astype(int)
    return [half[i] for i in sorted(set(picks))]


def _midway_quantile(scores: np.ndarray, quantile: float) -> float:
    """The quantile of ``scores`` placed midway between the two scores around it, so no
    film sits exactly on the threshold."""
    ordered = np.sort(np.asarray(scores, np.float64))
    k = min(int(np.ceil(quantile * len(ordered))), len(ordered) - 1)
    if k == 0 or len(ordered) == 1:
        return float(ordered[-1] * 1.05)
    low, high = ordered[k - 1], ordered[k]
    return float((low + high) / 2) if high > low else float(np.nextafter(high, np.inf))


def fit_detector(
    train_features: list[np.ndarray],
    *,
    groups: np.ndarray,
    val_features: list[np.ndarray] | None,
    layers: list[str],
    quantile: float = DEFAULT_QUANTILE,
    checks: InputChecks | None = None,
) -> OODDetector:
    """Fit the detector on training-split features (one array per layer, rows = films;
    ``groups`` the class of each film) and set its threshold at ``quantile`` of the
    validation split's scores (without one: of the training split's, noted)."""
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    if not 0.5 < quantile < 1:
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile}")
    groups = np.asarray(groups)
    classes = [g for g in np.unique(groups) if (groups == g).sum() >= 2] or [None]
    means, precisions, projections, centers, scales = [], [], [], [], []
    for x in train_features:
        x = np.asarray(x, np.float64)
        projection = center = None
        if x.shape[1] > MAX_DIMENSIONS:
            pca = PCA(n_components=min(MAX_DIMENSIONS, len(x) - 1), random_state=0).fit(x)
            projection, center = pca.components_.T, pca.mean_
            x = (x - center) @ projection
        rows = [x if g is None else x[groups == g] for g in classes]
        class_means = np.stack([r.mean(axis=0) for r in rows])
        residuals = np.concatenate([r - m for r, m in zip(rows, class_means, strict=True)])
        precision = LedoitWolf(assume_centered=True).fit(residuals).precision_
        means.append(class_means)
        precisions.append(precision)
        projections.append(projection)
        centers.append(center)
        scales.append(1.0)
    detector = OODDetector(
        layers=list(layers),
        means=means,
        precisions=precisions,
        projections=projections,
        centers=centers,
        scales=scales,
        threshold=np.inf,
        quantile=float(quantile),
        checks=checks or InputChecks(),
    )
    raw = detector.layer_scores(train_features)
    detector.scales = [float(max(s, 1e-12)) for s in np.median(raw, axis=0)]
    reference = val_features if val_features is not None else train_features
    scores = detector.score(reference)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise ValueError("no finite out-of-distribution score to set the threshold from")
    detector.threshold = _midway_quantile(scores, quantile)
    detector.summary = {
        "fitted_on": {"split": "train", "images": len(train_features[0])},
        "threshold_from": {
            "split": "val" if val_features is not None else "train",
            "images": len(scores),
        },
        "flag_rate": {
            "val" if val_features is not None else "train": float(
                np.mean(scores > detector.threshold)
            )
        },
    }
    return detector


def save_detector(detector: OODDetector, directory: str | os.PathLike) -> dict:
    """Write ``ood.npz`` (plain arrays, no pickle) into an artifact folder; returns the
    meta entry (with the file's sha256) to store under ``cxr_model.json``'s ``ood``."""
    arrays = {}
    for j in range(len(detector.layers)):
        arrays[f"means_{j}"] = detector.means[j]
        arrays[f"precision_{j}"] = detector.precisions[j]
        if detector.projections[j] is not None:
            arrays[f"projection_{j}"] = detector.projections[j]
            arrays[f"center_{j}"] = detector.centers[j]
    path = Path(directory) / OOD_FILE
    tmp = path.with_name(f".{OOD_FILE}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return {**detector.meta(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_detector(directory: str | os.PathLike, entry: dict) -> OODDetector:
    """The detector an artifact's ``ood`` entry describes, its arrays read from ``ood.npz``
    (a missing or changed file raises ValueError naming it)."""
    path = Path(directory) / entry.get("file", OOD_FILE)
    if not path.is_file():
        raise ValueError(f"{path}: the out-of-distribution detector's file is missing")
    if entry.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise ValueError(f"{path}: does not match the sha256 recorded in cxr_model.json")
    layers = list(entry["layers"])
    with np.load(path, allow_pickle=False) as arrays:
        return OODDetector(
            layers=layers,
            means=[arrays[f"means_{j}"] for j in range(len(layers))],
            precisions=[arrays[f"precision_{j}"] for j in range(len(layers))],
            projections=[arrays.get(f"projection_{j}") for j in range(len(layers))],
            centers=[arrays.get(f"center_{j}") for j in range(len(layers))],
            scales=[float(s) for s in entry["scales"]],
            threshold=float(entry["threshold"]),
            quantile=float(entry["quantile"]),
            checks=InputChecks.from_dict(entry.get("input_checks")),
            summary={
                k: entry[k] for k in ("fitted_on", "threshold_from", "flag_rate") if k in entry
            },
        )
