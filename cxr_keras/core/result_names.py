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
    "THRESHOLD_METRICS",
    "THRESHOLD_RULES",
    "check_decision_rule",
    "rule_names",
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
}

_SENSITIVITY = "sensitivity_"


def rule_names(min_sensitivity: float) -> list[str]:
    """The rules an evaluation chooses thresholds for, in report order."""
    return ["youden", "f1_max", f"{_SENSITIVITY}{min_sensitivity:g}"]


def check_decision_rule(name: str) -> str:
    """``name`` if it names a rule of :data:`THRESHOLD_RULES`, else a ValueError listing
    them (a typo is caught before any inference, e.g. by ``evaluate --decision-rule``)."""
    if name in THRESHOLD_RULES and name != "sensitivity":
        return name
    if name.startswith(_SENSITIVITY):
        try:
            floor = float(name[len(_SENSITIVITY) :])
        except ValueError:
            floor = -1.0
        if 0 < floor < 1:
            return name
    choices = ", ".join(r if r != "sensitivity" else "sensitivity_<X>" for r in THRESHOLD_RULES)
    raise ValueError(f"decision rule {name!r}: one of {choices} (X in (0, 1), e.g. 0.95)")
