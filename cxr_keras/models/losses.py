"""Losses and training metrics that understand ignored labels.

The data pipeline yields ``(image, labels, mask)`` with a mask of shape
(batch, n_labels): 0 for an ignored label (e.g. an uncertain CheXpert finding under the
``ignore`` policy), 1 otherwise. Keras passes it as ``sample_weight`` to the loss and, when
the model is compiled with ``weighted_metrics=``, to every metric, so ignored entries drop
out of both instead of counting as negatives.

:class:`MaskedBinaryLoss` computes the loss of every (image, label) entry, multiplies it
by the entry's class weight (the loss's own table: positives of label j weigh
``w[j, 1]``, negatives ``w[j, 0]``), and averages over the observed entries:
``sum(mask * w * loss) / sum(mask)``, which is the usual weighted BCE.

Example:
    >>> import numpy as np
    >>> y = np.array([[1.0, 0.0]], "float32")
    >>> logits = np.array([[2.0, 5.0]], "float32")
    >>> mask = np.array([[1.0, 0.0]], "float32")  # the second label is ignored
    >>> round(float(MaskedBinaryLoss()(y, logits, sample_weight=mask)), 4)  # -log(sigmoid(2))
    0.1269
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["LabelAUC", "MacroAUC", "MaskedBinaryLoss", "metric_names", "training_metrics"]


@keras.saving.register_keras_serializable(package="cxr_keras")
class MaskedBinaryLoss(keras.losses.Loss):
    """Binary cross-entropy or focal loss on logits, per (image, label) entry, weighted by
    class and averaged over the observed entries (see the module docstring).

    Args:
        kind: ``bce`` or ``focal`` (Keras' binary focal cross-entropy).
        gamma: focal loss focusing parameter.
        label_smoothing: targets become ``y * (1 - s) + s / 2``.
        class_weights: (n_labels, 2) weights of negatives and positives, or None (all 1).
    """

    def __init__(
        self,
        kind: str = "bce",
        gamma: float = 2.0,
        label_smoothing: float = 0.0,
        class_weights=None,
        name: str = "masked_binary_loss",
        **kwargs,
    ):
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        if kind not in ("bce", "focal"):
            raise ValueError(f"kind must be bce or focal, got {kind!r}")
        self.kind, self.gamma, self.label_smoothing = kind, float(gamma), float(label_smoothing)
        self.class_weights = (
            None if class_weights is None else [[float(w0), float(w1)] for w0, w1 in class_weights]
        )

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        # A trailing axis of size 1 makes Keras' functions return one value per entry.
        t, z = ops.expand_dims(y_true, -1), ops.expand_dims(ops.cast(y_pred, "float32"), -1)
        if self.kind == "focal":
            loss = keras.losses.binary_focal_crossentropy(
                t, z, gamma=self.gamma, from_logits=True, label_smoothing=self.label_smoothing
            )
        else:
            loss = keras.losses.binary_crossentropy(
                t, z, from_logits=True, label_smoothing=self.label_smoothing
            )
        if self.class_weights is not None:
            table = ops.convert_to_tensor(self.class_weights, "float32")
            loss = loss * (y_true * table[:, 1] + (1.0 - y_true) * table[:, 0])
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
            "class_weights": self.class_weights,
        }


@keras.saving.register_keras_serializable(package="cxr_keras")
class LabelAUC(keras.metrics.AUC):
    """ROC AUC of one label of a multi-label model, on logits, honouring its mask."""

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


@keras.saving.register_keras_serializable(package="cxr_keras")
class MacroAUC(keras.metrics.AUC):
    """Mean ROC AUC over the labels that have both positives and negatives so far.

    Keras' multi-label AUC counts a label without positives (common for rare findings in a
    small validation split) as AUC 0 in the mean; here it is left out, as undefined.
    """

    def __init__(self, num_labels: int = 1, **kwargs):
        kwargs.update(multi_label=True, num_labels=num_labels)
        kwargs.setdefault("from_logits", True)
        super().__init__(**kwargs)

    def result(self):
        positives = self.true_positives[0] + self.false_negatives[0]
        negatives = self.false_positives[0] + self.true_negatives[0]
        defined = ops.cast(ops.logical_and(positives > 0, negatives > 0), "float32")
        saved = self.label_weights
        self.label_weights = defined
        try:
            return super().result()
        finally:
            self.label_weights = saved

    def get_config(self):
        config = super().get_config()
        for key in ("multi_label", "label_weights"):
            config.pop(key, None)
        return config


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def training_metrics(labels: list[str]) -> list:
    """The metrics logged while training, all on logits; compile them as
    ``weighted_metrics`` so they honour the label masks. Macro ROC AUC (``auc``; per label
    too, ``auc_<label>``, when there are several), precision, recall and binary accuracy
    at probability 0.5 (logit 0)."""
    n = len(labels)
    if n > 1:
        metrics = [MacroAUC(n, name="auc")]
        metrics += [LabelAUC(i, name=f"auc_{_safe(label)}") for i, label in enumerate(labels)]
    else:
        metrics = [keras.metrics.AUC(name="auc", from_logits=True)]
    metrics += [
        keras.metrics.Precision(thresholds=0.0, name="precision"),
        keras.metrics.Recall(thresholds=0.0, name="recall"),
        keras.metrics.BinaryAccuracy(threshold=0.0, name="binary_accuracy"),
    ]
    return metrics


def metric_names(labels: list[str]) -> list[str]:
    """The names training logs for these labels (``val_`` + each for validation)."""
    names = ["loss", "auc", "precision", "recall", "binary_accuracy"]
    if len(labels) > 1:
        names += [f"auc_{_safe(label)}" for label in labels]
    return names
