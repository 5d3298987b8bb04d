"""Grad-CAM and Grad-CAM++ heatmaps from an artifact, batched, on the LOGIT of a label.

One forward pass gives both the answers and the feature maps: the model is rebuilt flat
(:mod:`cxr_keras.explanation.graph`) with the target layers as extra outputs, so explaining costs a
forward pass plus a backward pass through the head only, not a second prediction, and it
works for backbones nested as one layer as well as for the flat builds cxr-keras makes.
Gradients are taken of the logit (the sigmoid saturates and would flatten them), in
float32 even when the model computes in float16.

Example:
    >>> from cxr_keras.artifact.store import load_artifact
    >>> artifact = load_artifact("runs/demo")  # doctest: +SKIP
    >>> result = gradcam(artifact, images)  # doctest: +SKIP
    >>> result.maps["last_conv_relu"].shape  # (images, labels, H, W)  # doctest: +SKIP
    (4, 1, 128, 128)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxr_keras.explanation.graph import find_layer, rebuild, spatial_layers

__all__ = ["GradCam", "Heatmaps", "default_layer", "gradcam"]

METHODS = ("gradcam", "gradcam++")


@dataclass
class Heatmaps:
    """Heatmaps of a batch: ``maps[layer]`` is (images, labels, H, W) at the model input
    size, each map non-negative with maximum 1 (all zeros where nothing supports the
    label); ``logits`` (images, all labels) come from the same forward pass."""

    maps: dict[str, np.ndarray]
    logits: np.ndarray
    labels: list[str]  # the explained labels, in the maps' label axis
    method: str


def default_layer(model, meta: dict | None = None) -> str:
    """The layer Grad-CAM targets by default: the one the artifact names (the backbone's
    last convolutional block), else the last layer with a spatial feature map."""
    named = ((meta or {}).get("model") or {}).get("feature_layer")
    if named:
        return named
    candidates = spatial_layers(model)
    if not candidates:
        raise ValueError(f"model {model.name!r} has no layer with a spatial feature map")
    return candidates[-1]


def _weights(method: str, features, grads):
    """Per-channel weights (batch, C) from feature maps and their gradients."""
    import tensorflow as tf

    if method == "gradcam":
        return tf.reduce_mean(grads, axis=(1, 2))
    # Grad-CAM++ (Chattopadhyay et al. 2018), closed form for an exponential of the score
    g2, g3 = grads**2, grads**3
    total = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
    denominator = 2.0 * g2 + total * g3
    alphas = g2 / tf.where(tf.abs(denominator) > 1e-12, denominator, tf.ones_like(denominator))
    return tf.reduce_sum(alphas * tf.nn.relu(grads), axis=(1, 2))


class GradCam:
    """A reusable explainer: the flat gradient model is built once (the costly part),
    then each batch is one traced TensorFlow call."""

    def __init__(self, model, layers: Sequence[str], method: str = "gradcam"):
        import tensorflow as tf

        if method not in METHODS:
            raise ValueError(f"method: one of {METHODS}, got {method!r}")
        self.layers = list(layers)
        self.method = method
        for name in self.layers:
            shape = find_layer(model, name).output.shape
            if len(shape) != 4:
                raise ValueError(f"layer {name!r} outputs {tuple(shape)}: Grad-CAM needs a 4-D map")
        self.model = rebuild(model, self.layers)
        self.input_size = tuple(int(d) for d in self.model.inputs[0].shape[1:3])
        self._explain = tf.function(self._batch, reduce_retracing=True)

    def _batch(self, images, label_indices: tuple[int, ...]):
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            *features, logits = self.model(images, training=False)
            # each image's logit depends only on that image, so the gradient of the
            # batch sum is every image's own gradient: one backward pass per label
            scores = [tf.reduce_sum(tf.cast(logits[:, j], tf.float32)) for j in label_indices]
        maps = []
        for score in scores:
            grads = tape.gradient(score, features)
            per_layer = []
            for f, g in zip(features, grads, strict=True):
                f, g = tf.cast(f, tf.float32), tf.cast(g, tf.float32)
                cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", f, _weights(self.method, f, g)))
                cam = tf.image.resize(cam[..., None], self.input_size, "bilinear")[..., 0]
                peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
                per_layer.append(tf.math.divide_no_nan(cam, peak))
            maps.append(per_layer)
        del tape
        return tf.cast(logits, tf.float32), maps

    def __call__(self, images: np.ndarray, label_indices: Sequence[int]) -> tuple:
        """(logits (n, all labels), {layer: maps (n, len(label_indices), H, W)})."""
        logits, maps = self._explain(np.asarray(images, np.float32), tuple(label_indices))
        by_layer = {
            name: np.stack([np.asarray(maps[k][i]) for k in range(len(label_indices))], axis=1)
            for i, name in enumerate(self.layers)
        }
        return np.asarray(logits, np.float64), by_layer


def gradcam(
    artifact,
    images: np.ndarray,
    *,
    label: str | Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    method: str = "gradcam",
    batch_size: int = 32,
) -> Heatmaps:
    """Heatmaps for model inputs ``images`` (n, H, W, 1) in [0, 1].

    ``label``: a label name or names (default: every label of the artifact); ``layers``:
    target layer names, searched in nested models too (default: :func:`default_layer`);
    ``method``: ``gradcam`` or ``gradcam++``.
    """
    labels = artifact.labels
    wanted = labels if label is None else [label] if isinstance(label, str) else list(label)
    unknown = [name for name in wanted if name not in labels]
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; the model predicts {labels}")
    network = artifact.explain_model
    layers = list(layers) if layers else [default_layer(network, artifact.meta)]
    explainer = GradCam(network, layers, method)
    indices = [labels.index(name) for name in wanted]
    logits, maps = [], {name: [] for name in layers}
    for start in range(0, len(images), batch_size):
        batch_logits, batch_maps = explainer(images[start : start + batch_size], indices)
        logits.append(batch_logits)
        for name in layers:
            maps[name].append(batch_maps[name])
    return Heatmaps(
        {name: np.concatenate(parts) for name, parts in maps.items()},
        np.concatenate(logits),
        wanted,
        method,
    )
