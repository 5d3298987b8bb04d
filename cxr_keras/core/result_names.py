"""The names of what an evaluation measures and of how a decision threshold is chosen: one
registry each, read by the metric code, the command lines and every renderer (the report,
the comparison, the recipe report, the model card, the app).

Example:
    >>> list(THRESHOLD_METRICS)
    ['accuracy', 'precision', 'sensitivity', 'specificity', 'f1']
    >>> rule_names(0.95), check_decision_rule("sensitivity_0.9")
    (['youden', 'f1_max', 'sensitivity_0.95'], 'sensitivity_0.9')
"""

from __future__ import annotations

__all__ = [
    "CALIBRATION_METRICS",
    "COUNTS",
    "RANKING_METRICS",
    "STRESSED",
    "THRESHOLD_METRICS",
    "THRESHOLD_RULES",
    "check_decision_rule",
    "rule_names",
    "stressed_rule_names",
]

#: threshold-free metrics of the ranking: key -> title
RANKING_METRICS = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC"}

#: metrics of the decisions at one threshold, in report order: key -> title
THRESHOLD_METRICS = {
    "accuracy": "accuracy",
    "precision": "precision",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "f1": "F1",
}

#: the confusion-matrix counts at a threshold
COUNTS = ("tp", "fp", "fn", "tn")

#: calibration metrics: key -> title
CALIBRATION_METRICS = {"ece": "ECE", "brier": "Brier score"}

#: how a stored threshold is chosen: name -> what it is. ``sensitivity`` is stored as
#: ``sensitivity_<X>`` with its floor X, e.g. ``sensitivity_0.95``.
THRESHOLD_RULES = {
    "default": "0.5, the threshold of a model not yet evaluated",
    "youden": "maximises sensitivity + specificity - 1 (Youden's J) on validation",
    "f1_max": "maximises F1 on validation",
    "sensitivity": "the highest threshold whose validation sensitivity is at least X "
    "(sensitivity_<X>, the screening rule)",
    "youden_stressed": "Youden's J on the validation films as they are and under every "
    "acquisition shift of the stress evaluation, pooled (evaluate --stressed-thresholds)",
    "sensitivity_stressed": "the highest threshold whose sensitivity is at least X on "
    "those films as they are and under each shift, every one (sensitivity_<X>_stressed)",
}

_SENSITIVITY = "sensitivity_"
STRESSED = "_stressed"  # the suffix of a rule chosen on validation films under the shifts


def rule_names(min_sensitivity: float) -> list[str]:
    """The rules an evaluation chooses thresholds for, in report order."""
    return ["youden", "f1_max", f"{_SENSITIVITY}{min_sensitivity:g}"]


def stressed_rule_names(min_sensitivity: float) -> list[str]:
    """The rules ``evaluate --stressed-thresholds`` adds, chosen on validation films pooled
    with their copies under the acquisition shifts.

    Example:
        >>> stressed_rule_names(0.95)
        ['youden_stressed', 'sensitivity_0.95_stressed']
    """
    return [f"youden{STRESSED}", f"{_SENSITIVITY}{min_sensitivity:g}{STRESSED}"]


def check_decision_rule(name: str) -> str:
    """``name`` if it names a rule of :data:`THRESHOLD_RULES`, else a ValueError listing
    them (a typo is caught before any inference, e.g. by ``evaluate --decision-rule``)."""
    if name in THRESHOLD_RULES and name not in ("sensitivity", "sensitivity_stressed"):
        return name
    if name.startswith(_SENSITIVITY):
        try:
            floor = float(name[len(_SENSITIVITY) :].removesuffix(STRESSED))
        except ValueError:
            floor = -1.0
        if 0 < floor < 1:
            return name
    choices = ", ".join(
        r.replace("sensitivity", "sensitivity_<X>") if r.startswith("sensitivity") else r
        for r in THRESHOLD_RULES
    )
    raise ValueError(f"decision rule {name!r}: one of {choices} (X in (0, 1), e.g. 0.95)")
