"""Losses and training metrics that understand per-label weights (masks).

The data pipeline yields ``(image, labels, weights)`` with weights of shape
(batch, n_labels): 0 for an ignored label (e.g. an uncertain CheXpert finding under the
``ignore`` policy), else its class weight. :class:`MaskedBinaryLoss` computes the loss of
every (image, label) entry and Keras reduces it with ``mean_with_sample_weight``:
``sum(w * loss) / sum(w)``, so ignored entries drop out entirely (not counted as
negatives, not diluting the mean). The metrics here read the same weights.

Example:
    >>> import numpy as np
    >>> y = np.array([[1.0, 0.0]], "float32")
    >>> logits = np.array([[2.0, 5.0]], "float32")
    >>> w = np.array([[1.0, 0.0]], "float32")  # the second label is ignored
    >>> round(float(MaskedBinaryLoss()(y, logits, sample_weight=w)), 4)  # -log(sigmoid(2))
    0.1269
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["LabelAUC", "MaskedBinaryLoss", "training_metrics"]


@keras.saving.register_keras_serializable(package="cxr_keras")
class MaskedBinaryLoss(keras.losses.Loss):
    """Binary cross-entropy or focal loss on logits, per (image, label) entry, averaged
    over the entries' weights (see the module docstring).

    Args:
        kind: ``bce`` or ``focal`` (Keras' binary focal cross-entropy).
        gamma: focal loss focusing parameter.
        label_smoothing: targets become ``y * (1 - s) + s / 2``.
    """

    def __init__(
        self,
        kind: str = "bce",
        gamma: float = 2.0,
        label_smoothing: float = 0.0,
        name: str = "masked_binary_loss",
        **kwargs,
    ):
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        if kind not in ("bce", "focal"):
            raise ValueError(f"kind must be bce or focal, got {kind!r}")
        self.kind, self.gamma, self.label_smoothing = kind, float(gamma), float(label_smoothing)

    def call(self, y_true, y_pred):
        # A trailing axis of size 1 makes Keras' functions return one value per entry.
        y_true = ops.expand_dims(ops.cast(y_true, "float32"), -1)
        y_pred = ops.expand_dims(ops.cast(y_pred, "float32"), -1)
        if self.kind == "focal":
            return keras.losses.binary_focal_crossentropy(
                y_true,
                y_pred,
                gamma=self.gamma,
                from_logits=True,
                label_smoothing=self.label_smoothing,
            )
        return keras.losses.binary_crossentropy(
            y_true, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="cxr_keras")
class LabelAUC(keras.metrics.AUC):
    """ROC AUC of one label of a multi-label model, on logits, honouring its weights."""

    def __init__(self, index: int = 0, **kwargs):
        kwargs.setdefault("from_logits", True)
        super().__init__(**kwargs)
        self.index = int(index)

    def update_state(self, y_true, y_pred, sample_weight=None):
        i = self.index
        weight = None if sample_weight is None else sample_weight[:, i : i + 1]
        return super().update_state(y_true[:, i : i + 1], y_pred[:, i : i + 1], weight)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def training_metrics(labels: list[str]) -> list:
    """The metrics logged while training, all on logits with per-label weights: macro ROC
    AUC (``auc``; per label too, ``auc_<label>``, when there are several), precision,
    recall and binary accuracy at probability 0.5 (logit 0)."""
    n = len(labels)
    metrics = [
        keras.metrics.AUC(
            name="auc", from_logits=True, multi_label=n > 1, num_labels=n if n > 1 else None
        )
    ]
    if n > 1:
        metrics += [LabelAUC(i, name=f"auc_{_safe(label)}") for i, label in enumerate(labels)]
    metrics += [
        keras.metrics.Precision(thresholds=0.0, name="precision"),
        keras.metrics.Recall(thresholds=0.0, name="recall"),
        keras.metrics.BinaryAccuracy(threshold=0.0, name="binary_accuracy"),
    ]
    return metrics
