"""Decision thresholds chosen on the validation split, per label.

Rules (a case is positive when its probability >= the threshold):

- ``youden``: maximises Youden's J = sensitivity + specificity - 1 (ties: the highest
  threshold, i.e. the fewest positives);
- ``f1_max``: maximises F1;
- ``sensitivity_<X>``: the highest threshold whose sensitivity is at least X (the
  screening setting: miss at most 1 - X of the positives, then flag as few as possible).

A threshold never sits on a film's score: each rule finds the lowest score that is still
called positive, and the threshold is placed midway between it and the next lower score
(:func:`midway_below`). Every film is decided as at that score, so the sensitivity and
specificity found on validation are reproduced at the stored threshold, and float noise
(another batch size, another machine) cannot flip the film that defined it.

Example:
    >>> y = np.array([0, 0, 1, 0, 1, 1]); p = np.array([0.1, 0.3, 0.35, 0.4, 0.8, 0.9])
    >>> youden_threshold(y, p), f1_max_threshold(y, p), sensitivity_threshold(y, p, 1.0)
    (0.6000000000000001, 0.32499999999999996, 0.32499999999999996)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from cxr_keras.core.result_names import rule_names

__all__ = [
    "bootstrap_estimate",
    "choose_thresholds",
    "f1_max_threshold",
    "midway_below",
    "sensitivity_floor_over",
    "sensitivity_threshold",
    "threshold_stability",
    "youden_threshold",
]

log = logging.getLogger(__name__)

_TIE = 1e-12  # 2/3 - 0 and 1 - 1/3 differ in the last bit; both are the same J


def _roc(y, p):
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # sklearn's first threshold is +inf (nothing positive): as a probability, above 1
    return fpr, tpr, np.minimum(thresholds, np.nextafter(1.0, 2.0))


def midway_below(score: float, scores: np.ndarray) -> float:
    """A threshold that decides every film as ``score`` does (films at or above it are
    positive) without sitting on any film's score: midway between ``score`` and the next
    lower score (half of ``score`` when none is lower). A threshold above every score
    (nothing positive) is returned as it is.

    Example:
        >>> midway_below(0.8, np.array([0.1, 0.4, 0.8, 0.9])), midway_below(0.1, np.array([0.1]))
        (0.6000000000000001, 0.05)
    """
    scores = np.asarray(scores, np.float64)
    if score > scores.max():
        return float(score)
    below = scores[scores < score]
    return float((score + (below.max() if len(below) else 0.0)) / 2)


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 (off the scores: see the
    module docstring)."""
    fpr, tpr, thresholds = _roc(y, p)
    j = tpr - fpr
    best = np.flatnonzero(j >= j.max() - _TIE)  # ties (up to rounding): the highest threshold
    return midway_below(thresholds[best[0]], p)


def f1_max_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising F1 (the highest one among ties)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    best = np.flatnonzero(f1 >= f1.max() - _TIE)
    return midway_below(thresholds[best[-1]], p)  # thresholds increase: the last is highest


def sensitivity_threshold(y: np.ndarray, p: np.ndarray, minimum: float) -> float:
    """The highest threshold with sensitivity >= ``minimum``."""
    _, tpr, thresholds = _roc(y, p)
    return midway_below(thresholds[int(np.argmax(tpr >= minimum - 1e-12))], p)


def sensitivity_floor_over(
    y: np.ndarray, p: np.ndarray, *, groups: np.ndarray, minimum: float
) -> float:
    """The highest threshold whose sensitivity is at least ``minimum`` within every group
    that holds positives (e.g. the films as they are, and under each acquisition shift):
    a floor that holds in the worst group, not only on the groups pooled, where groups
    whose positives score higher would make up for one whose positives score lower.

    Example:
        >>> y = np.array([1, 1, 0, 1, 1, 0]); p = np.array([0.9, 0.6, 0.25, 0.95, 0.3, 0.1])
        >>> float(sensitivity_floor_over(y, p, groups=np.array([0, 0, 0, 1, 1, 1]), minimum=1.0))
        0.2
    """
    y, p, groups = np.asarray(y), np.asarray(p, np.float64), np.asarray(groups)
    floors = [
        sensitivity_threshold(y[groups == g], p[groups == g], minimum)
        for g in np.unique(groups)
        if y[groups == g].max(initial=0) == 1 and y[groups == g].min(initial=1) == 0
    ]
    if not floors:
        raise ValueError("no group holds both classes: no sensitivity floor can be chosen")
    lowest = min(floors)
    return lowest if not np.isin(lowest, p) else midway_below(lowest, p)


def bootstrap_estimate(rule: str, spread: dict) -> float:
    """The threshold to store for a rule from its bootstrap spread (see
    :func:`threshold_stability`): the median for ``youden`` and ``f1_max``; for a
    ``sensitivity_<X>`` rule the low (2.5th percentile) end, because its point is a floor:
    the median threshold keeps sensitivity >= X on only about half of new patient samples.

    Example:
        >>> spread = {"median": 0.75, "low": 0.65, "high": 0.87}
        >>> bootstrap_estimate("youden", spread), bootstrap_estimate("sensitivity_0.95", spread)
        (0.75, 0.65)
    """
    return float(spread["low"] if rule.startswith("sensitivity_") else spread["median"])


def choose_thresholds(
    y: np.ndarray,
    p: np.ndarray,
    *,
    mask: np.ndarray,
    labels: Sequence[str],
    min_sensitivity: float = 0.95,
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Thresholds ``{rule: {label: threshold}}`` from validation outputs (n, labels), and
    notes for labels that fall back to 0.5 because their validation entries hold a
    single class (no threshold can be learnt from them)."""
    rules = rule_names(min_sensitivity)
    table: dict[str, dict[str, float]] = {rule: {} for rule in rules}
    notes = []
    for j, label in enumerate(labels):
        known = np.asarray(mask)[:, j] > 0
        yj, pj = np.asarray(y)[known, j], np.asarray(p)[known, j]
        if len(yj) == 0 or yj.min() == yj.max():
            notes.append(
                f"{label}: validation has {int(yj.sum())} positives of {len(yj)} known; "
                "thresholds left at 0.5"
            )
            for rule in rules:
                table[rule][label] = 0.5
            continue
        table["youden"][label] = youden_threshold(yj, pj)
        table["f1_max"][label] = f1_max_threshold(yj, pj)
        table[rules[2]][label] = sensitivity_threshold(yj, pj, min_sensitivity)
    for note in notes:
        log.warning(note)
    return table, notes


def threshold_stability(
    y: np.ndarray,
    p: np.ndarray,
    *,
    mask: np.ndarray,
    labels: Sequence[str],
    patient_ids: Sequence | None = None,
    min_sensitivity: float = 0.95,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """How much each rule's threshold moves when the validation patients are resampled:
    ``{rule: {label: {"median", "low", "high", "width"}}}`` over ``n_resamples`` patient-level
    bootstrap resamples (``low``/``high``: the 2.5 and 97.5 percentiles). A wide interval
    is a threshold on a knife edge; the median is a steadier choice than the point value.
    Labels whose validation entries hold one class are left out.

    Example:
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 200)
        >>> p = np.clip(0.3 * y + rng.normal(0.35, 0.15, 200), 0, 1)
        >>> spread = threshold_stability(
        ...     y[:, None], p[:, None], mask=np.ones((200, 1)), labels=["A"]
        ... )
        >>> s = spread["youden"]["A"]; bool(s["low"] <= s["median"] <= s["high"])
        True
    """
    from cxr_keras.evaluation.metrics import bootstrap_rows, patient_groups

    y, p, mask = np.asarray(y), np.asarray(p), np.asarray(mask)
    rules = rule_names(min_sensitivity)
    draws: dict[str, dict[str, list[float]]] = {rule: {} for rule in rules}
    for rows in bootstrap_rows(patient_groups(patient_ids, len(y)), n_resamples, seed):
        for j, label in enumerate(labels):
            known = rows[mask[rows, j] > 0]
            yj, pj = y[known, j], p[known, j]
            if len(yj) == 0 or yj.min() == yj.max():
                continue
            values = {
                "youden": youden_threshold(yj, pj),
                "f1_max": f1_max_threshold(yj, pj),
                rules[2]: sensitivity_threshold(yj, pj, min_sensitivity),
            }
            for rule, value in values.items():
                draws[rule].setdefault(label, []).append(value)
    out: dict[str, dict[str, dict]] = {rule: {} for rule in rules}
    for rule, per_label in draws.items():
        for label, values in per_label.items():
            low, median, high = np.percentile(values, [2.5, 50, 97.5])
            out[rule][label] = {
                "median": float(median),
                "low": float(low),
                "high": float(high),
                "width": float(high - low),
                "resamples": len(values),
            }
    return out
