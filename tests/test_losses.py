"""The masked loss against hand computations, and metrics honouring the masks."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from cxr_keras.models.losses import MaskedBinaryLoss, training_metrics


def _bce(t: float, z: float) -> float:
    p = 1.0 / (1.0 + math.exp(-z))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
LOGITS = np.array([[2.0, -1.0, 0.5], [1.5, 3.0, -2.0]], np.float32)
W = np.array([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]], np.float32)  # two entries ignored


def test_ignored_entries_leave_the_loss():
    expected = (_bce(1, 2.0) + 2 * _bce(1, 0.5) + _bce(0, 1.5) + _bce(1, 3.0)) / (1 + 2 + 1 + 1)
    assert math.isclose(
        float(MaskedBinaryLoss()(Y, LOGITS, sample_weight=W)), expected, rel_tol=1e-5
    )
    flipped = Y.copy()
    flipped[W == 0] = 1 - flipped[W == 0]  # the targets of ignored entries do not matter
    assert math.isclose(
        float(MaskedBinaryLoss()(flipped, LOGITS, sample_weight=W)), expected, rel_tol=1e-5
    )


def test_focal_and_label_smoothing_by_hand():
    gamma, s = 2.0, 0.1
    focal = MaskedBinaryLoss("focal", gamma=gamma)(Y, LOGITS, sample_weight=W)
    terms = []
    for t, z, w in zip(Y.ravel(), LOGITS.ravel(), W.ravel(), strict=True):
        p = 1.0 / (1.0 + math.exp(-z))
        p_t = p if t == 1 else 1 - p
        terms.append((w * (1 - p_t) ** gamma * _bce(t, z), w))
    assert math.isclose(
        float(focal), sum(a for a, _ in terms) / sum(w for _, w in terms), rel_tol=1e-4
    )
    smooth = MaskedBinaryLoss(label_smoothing=s)(Y[:1, :1], LOGITS[:1, :1])
    assert math.isclose(float(smooth), _bce(1 - s / 2, 2.0), rel_tol=1e-5)


def test_metrics_read_the_masks():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 2)) < 0.4).astype("float32")
    logits = (2 * y + rng.normal(0, 1, (300, 2))).astype("float32")
    w = np.ones_like(y)
    w[:100, 1] = 0
    garbage = y.copy()
    garbage[:100, 1] = 1 - garbage[:100, 1]
    metrics = {m.name: m for m in training_metrics(["A", "B"])}
    for m in metrics.values():
        m.update_state(garbage, logits, w)
    assert abs(float(metrics["auc_b"].result()) - roc_auc_score(y[100:, 1], logits[100:, 1])) < 0.01
    assert abs(float(metrics["auc_a"].result()) - roc_auc_score(y[:, 0], logits[:, 0])) < 0.01
    observed = np.concatenate([y[:, 0], y[100:, 1]])
    predicted = np.concatenate([logits[:, 0], logits[100:, 1]]) > 0
    assert math.isclose(
        float(metrics["binary_accuracy"].result()),
        float((observed == predicted).mean()),
        rel_tol=1e-5,
    )
