"""The masked, class-weighted loss against hand computations, and metrics honouring the
masks through Keras' own fit/evaluate."""

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
W = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], np.float32)  # two entries ignored


def test_ignored_entries_leave_the_loss():
    expected = (_bce(1, 2.0) + _bce(1, 0.5) + _bce(0, 1.5) + _bce(1, 3.0)) / 4
    assert math.isclose(
        float(MaskedBinaryLoss()(Y, LOGITS, sample_weight=W)), expected, rel_tol=1e-5
    )
    flipped = Y.copy()
    flipped[W == 0] = 1 - flipped[W == 0]  # the targets of ignored entries do not matter
    assert math.isclose(
        float(MaskedBinaryLoss()(flipped, LOGITS, sample_weight=W)), expected, rel_tol=1e-5
    )


def test_class_weights_weigh_entries_and_the_mean_is_over_observed_entries():
    table = [[1.0, 3.0], [0.5, 2.0], [1.0, 1.0]]  # per label: [negative, positive]
    loss = MaskedBinaryLoss(class_weights=table)(Y, LOGITS, sample_weight=W)
    expected = (
        3.0 * _bce(1, 2.0) + 1.0 * _bce(1, 0.5) + 1.0 * _bce(0, 1.5) + 2.0 * _bce(1, 3.0)
    ) / 4  # divided by the 4 observed entries
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    restored = MaskedBinaryLoss.from_config(MaskedBinaryLoss(class_weights=table).get_config())
    assert restored.class_weights == table


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


def _model_outputting_its_input(n: int):
    import keras

    inputs = keras.Input((n,))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=MaskedBinaryLoss(), weighted_metrics=training_metrics(["A", "B"]))
    return model


def test_metrics_honour_masks_in_keras_evaluate():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 2)) < 0.4).astype("float32")
    logits = (2 * y + rng.normal(0, 1, (300, 2))).astype("float32")
    mask = np.ones_like(y)
    mask[:100, 1] = 0
    garbage = y.copy()
    garbage[:100, 1] = 0  # as the pipeline stores ignored labels
    result = _model_outputting_its_input(2).evaluate(
        logits, garbage, sample_weight=mask, verbose=0, return_dict=True
    )
    auc_a = roc_auc_score(y[:, 0], logits[:, 0])
    auc_b = roc_auc_score(y[100:, 1], logits[100:, 1])
    assert abs(result["auc_a"] - auc_a) < 0.01 and abs(result["auc_b"] - auc_b) < 0.01
    assert abs(result["auc"] - (auc_a + auc_b) / 2) < 0.01
    observed = np.concatenate([y[:, 0], y[100:, 1]])
    predicted = np.concatenate([logits[:, 0], logits[100:, 1]]) > 0
    assert math.isclose(
        result["binary_accuracy"], float((observed == predicted).mean()), rel_tol=1e-4
    )
    assert math.isclose(result["recall"], float(predicted[observed == 1].mean()), rel_tol=1e-4)


def test_macro_auc_leaves_out_labels_without_positives():
    rng = np.random.default_rng(1)
    y = np.stack([(rng.random(200) < 0.5), np.zeros(200)], axis=1).astype("float32")
    logits = (2 * y + rng.normal(0, 1, (200, 2))).astype("float32")
    result = _model_outputting_its_input(2).evaluate(logits, y, verbose=0, return_dict=True)
    assert abs(result["auc"] - roc_auc_score(y[:, 0], logits[:, 0])) < 0.01  # not halved
