"""Evaluation after a label-shift correction (``evaluate --adapt-prior`` or
``--prevalence P``): what ``predict`` would answer with the same correction, measured
against the labels.

Per label: the prevalence estimated (or declared) beside the one observed in the labels
and the one the model was calibrated at; the most probable class (probability >= 0.5)
before and after the correction (accuracy, sensitivity, specificity); and calibration
before and after (ECE, log loss, Brier). "Before" is the model's temperature-scaled
answer, as predict gives it without a correction. The correction is monotone per label,
so ROC AUC and the decisions at the Youden, F1 and sensitivity-floor thresholds (cuts
on the model's score) do not move: only the 0.5 cut and calibration can.

Example:
    >>> block = prior_shift_metrics(artifact, logits=z, probabilities=p, y=y, mask=m,
    ...                             in_scope=~ood)  # doctest: +SKIP
    >>> block["labels"]["PNEUMONIA"]["prevalence"]["observed"]  # doctest: +SKIP
    0.625
"""

from __future__ import annotations

import numpy as np

__all__ = ["prior_shift_metrics"]

UNMOVED = (
    "ROC AUC and the decisions at the Youden, F1 and sensitivity-floor thresholds do not "
    "move: the correction keeps each label's order, and those thresholds cut the model's "
    "score. The 0.5 cut (the most probable class) and calibration do."
)


def _at_half(y, p) -> dict:
    from cxr_keras.evaluation.metrics import threshold_metrics

    at = threshold_metrics(y, p, 0.5)
    return {key: at[key] for key in ("accuracy", "sensitivity", "specificity")}


def _calibration(y, p) -> dict:
    from sklearn.metrics import log_loss

    from cxr_keras.artifact.calibration import brier_score, expected_calibration_error

    return {
        "ece": expected_calibration_error(y, p),
        "log_loss": float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "brier": brier_score(y, p),
    }


def prior_shift_metrics(
    artifact,
    *,
    logits: np.ndarray,
    probabilities: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    in_scope: np.ndarray,
    declared: dict[str, float] | float | None = None,
    entry: dict | None = None,
    seed: int = 0,
) -> dict:
    """The ``prior_adaptation`` section of evaluate's metrics (see the module docstring).

    ``logits`` and ``probabilities`` (temperature-scaled) of the evaluated images, ``y``
    and ``mask`` their labels, ``in_scope`` the rows not flagged out of distribution (only
    they estimate the prevalence; every row is corrected and measured). ``declared`` and
    ``entry`` as in :func:`~cxr_keras.artifact.label_shift.correct_prior`.
    """
    from cxr_keras.artifact.label_shift import correct_prior

    fixed = correct_prior(
        artifact,
        logits=logits,
        probabilities=probabilities,
        in_scope=in_scope,
        declared=declared,
        entry=entry,
        seed=seed,
    )
    per_label = {}
    for j, label in enumerate(artifact.labels):
        if label not in fixed.prevalence:
            continue
        known = mask[:, j] > 0
        yj = y[known, j]
        before, after = probabilities[known, j], fixed.probabilities[known, j]
        observed = float(yj.mean()) if len(yj) else None
        estimated = fixed.prevalence[label]["estimated"]
        measured = len(yj) > 0  # no known entry: the estimate alone
        per_label[label] = {
            "prevalence": {
                **fixed.prevalence[label],
                "observed": observed,
                "error": None if observed is None else estimated - observed,
            },
            "at_0.5": {"before": _at_half(yj, before), "after": _at_half(yj, after)}
            if measured
            else None,
            "calibration": {"before": _calibration(yj, before), "after": _calibration(yj, after)}
            if measured
            else None,
        }
    return {
        "method": fixed.method,
        "images": fixed.images,
        "labels": per_label,
        "notes": fixed.notes,
        "note": UNMOVED,
    }
