"""Discrimination and threshold metrics with patient-level bootstrap confidence intervals.

Every function takes ``y`` (0/1), ``p`` (probabilities) and ``mask`` (1 where the label is
known) of shape (n, labels): masked entries (uncertain or missing labels) are left out of
every number. A label with only one class among its known entries has no ROC or PR AUC:
it is reported as ``None`` ("undefined"), never as 0 or 1.

Example:
    >>> y = np.array([[0], [0], [1], [1]]); p = np.array([[0.1], [0.6], [0.4], [0.9]])
    >>> roc_pr_auc(y[:, 0], p[:, 0])
    (0.75, 0.8333333333333333)
    >>> threshold_metrics(y[:, 0], p[:, 0], 0.5)["sensitivity"]
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "bootstrap_auc",
    "discrimination",
    "patient_groups",
    "roc_pr_auc",
    "threshold_metrics",
]


def roc_pr_auc(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC and PR AUC (average precision) of one label's known entries, or
    ``(None, None)`` when they hold a single class.

    The values are scikit-learn's ``roc_auc_score`` and ``average_precision_score``
    (ties included; ``tests/test_evaluation_metrics.py`` checks they agree), computed from
    one sort: the bootstraps call this hundreds of thousands of times, where
    scikit-learn's input checks cost ~30x the arithmetic.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0 or y.all() or not y.any():
        return None, None
    order = np.argsort(-p, kind="mergesort")
    scores, hits = p[order], y[order]
    # one point per distinct score, from the highest: true/false positives at or above it
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(hits)[last].astype(np.float64)
    fps = last + 1.0 - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    roc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    ap = float(np.sum(np.diff(tpr) * (tps / (tps + fps))))  # sum (R_k - R_k-1) * P_k
    return roc, ap


def patient_groups(patient_ids: Sequence | None, n: int) -> list[np.ndarray]:
    """Row indices per patient, the unit the bootstrap resamples; rows without an id
    (None, NaN, empty) are their own group, and no ids at all gives one row per group."""
    if patient_ids is None:
        return [np.array([i]) for i in range(n)]
    groups: dict[str, list[int]] = {}
    for i, pid in enumerate(patient_ids):
        missing = pid is None or (isinstance(pid, float) and np.isnan(pid)) or str(pid) == ""
        groups.setdefault(f"\0row{i}" if missing else str(pid), []).append(i)
    return [np.asarray(rows) for rows in groups.values()]


def bootstrap_rows(groups: list[np.ndarray], n_resamples: int, seed: int = 0):
    """Yield the rows of each bootstrap resample: ``len(groups)`` groups (patients) drawn
    with replacement, all rows of each kept together."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        picked = rng.integers(0, len(groups), size=len(groups))
        yield np.concatenate([groups[g] for g in picked])


def _aucs(y, p, mask, rows) -> tuple[list, list, float | None, float | None]:
    """Per-label ROC/PR AUCs and the micro (pooled) pair, on the given rows."""
    rocs, prs = [], []
    for j in range(y.shape[1]):
        known = mask[rows, j] > 0
        roc, pr = roc_pr_auc(y[rows, j][known], p[rows, j][known])
        rocs.append(roc)
        prs.append(pr)
    known = mask[rows] > 0
    micro_roc, micro_pr = roc_pr_auc(y[rows][known], p[rows][known])
    return rocs, prs, micro_roc, micro_pr


def _macro(values: Sequence[float | None], defined: Sequence[bool]) -> float | None:
    """Mean over the labels defined on the whole split; None if one of them is not
    defined in this sample (a macro over a different label set is another quantity)."""
    chosen = [v for v, d in zip(values, defined, strict=True) if d]
    if not chosen or any(v is None for v in chosen):
        return None
    return float(np.mean(chosen))


def bootstrap_auc(
    y: np.ndarray,
    p: np.ndarray,
    *,
    mask: np.ndarray,
    groups: list[np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict]:
    """Percentile bootstrap CIs of per-label, macro and micro ROC and PR AUC.

    Each resample draws ``len(groups)`` groups (patients) with replacement and keeps all
    their rows, so images of one patient stay together, as they are not independent.
    Resamples where a quantity is undefined (one class only) are left out of its interval;
    ``n_valid`` says how many counted.

    Returns ``{"roc_auc": {key: (low, high, n_valid)}, "pr_auc": {...}}`` with ``key`` a
    label index, ``"macro"`` or ``"micro"``; ``(None, None, n_valid)`` if fewer than 10
    resamples were valid.
    """
    y, p, mask = np.asarray(y), np.asarray(p), np.asarray(mask)
    if not groups:
        raise ValueError("bootstrap: no rows to resample")
    all_rows = np.arange(len(y))
    rocs, _, _, _ = _aucs(y, p, mask, all_rows)
    defined = [r is not None for r in rocs]
    samples: dict[str, dict] = {"roc_auc": {}, "pr_auc": {}}
    for rows in bootstrap_rows(groups, n_resamples, seed):
        rocs, prs, micro_roc, micro_pr = _aucs(y, p, mask, rows)
        for name, per_label, micro in (("roc_auc", rocs, micro_roc), ("pr_auc", prs, micro_pr)):
            values = {**dict(enumerate(per_label)), "macro": _macro(per_label, defined)}
            values["micro"] = micro
            for key, value in values.items():
                if value is not None:
                    samples[name].setdefault(key, []).append(value)
    alpha = (1.0 - level) / 2.0
    out: dict[str, dict] = {}
    for name, by_key in samples.items():
        out[name] = {}
        for key in [*range(y.shape[1]), "macro", "micro"]:
            values = by_key.get(key, [])
            if len(values) < 10:
                out[name][key] = (None, None, len(values))
            else:
                low, high = np.quantile(values, [alpha, 1.0 - alpha])
                out[name][key] = (float(low), float(high), len(values))
    return out


def discrimination(
    y: np.ndarray,
    p: np.ndarray,
    *,
    mask: np.ndarray,
    labels: Sequence[str],
    patient_ids: Sequence | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """ROC/PR AUC per label, macro (mean over defined labels) and micro (pooled entries),
    each with its bootstrap CI, plus counts. The JSON-ready block of the report."""
    y, p, mask = np.asarray(y), np.asarray(p), np.asarray(mask)
    rows = np.arange(len(y))
    rocs, prs, micro_roc, micro_pr = _aucs(y, p, mask, rows)
    groups = patient_groups(patient_ids, len(y))
    ci = bootstrap_auc(y, p, mask=mask, groups=groups, n_resamples=n_resamples, seed=seed)
    defined = [r is not None for r in rocs]

    def entry(key, roc, pr, extra):
        return {
            **extra,
            "roc_auc": roc,
            "roc_auc_ci": list(ci["roc_auc"][key][:2]),
            "pr_auc": pr,
            "pr_auc_ci": list(ci["pr_auc"][key][:2]),
            "defined": roc is not None,
        }

    per_label = {}
    for j, label in enumerate(labels):
        known = mask[:, j] > 0
        counts = {
            "n": int(known.sum()),
            "positives": int(y[known, j].sum()),
            "negatives": int(known.sum() - y[known, j].sum()),
        }
        per_label[label] = entry(j, rocs[j], prs[j], counts)
    macro_labels = [label for label, d in zip(labels, defined, strict=True) if d]
    return {
        "labels": per_label,
        "macro": entry(
            "macro", _macro(rocs, defined), _macro(prs, defined), {"over_labels": macro_labels}
        ),
        "micro": entry("micro", micro_roc, micro_pr, {"n": int((mask > 0).sum())}),
        "bootstrap": {
            "resamples": n_resamples,
            "seed": seed,
            "level": 0.95,
            "unit": "patient" if patient_ids is not None else "image",
            "groups": len(groups),
            "method": "percentile",
        },
    }


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion matrix and the rates it gives for one label's known entries, positive
    when ``p >= threshold``. A rate with a zero denominator is ``None`` (undefined)."""
    from sklearn.metrics import confusion_matrix

    y = np.asarray(y).astype(int)
    predicted = (np.asarray(p) >= threshold).astype(int)
    if len(y) == 0:  # no known entries: every count 0, every rate undefined
        tn = fp = fn = tp = 0
    else:
        tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[0, 1]).ravel())

    def ratio(a, b):
        return a / b if b else None

    return {
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "precision": ratio(tp, tp + fp),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }
