"""The "refer to a radiologist" rule: decision logic of every answer, stored in the artifact.

The referral rule is stored in the artifact (``cxr_model.json``, ``referral``): refer when
the probability lies within ``band`` of the decision threshold, or when the MC-dropout
standard deviation (:mod:`cxr_keras.explanation.uncertainty`) exceeds ``max_std``. Without
a stored rule, :data:`DEFAULT_RULE`.

Example:
    >>> refer(np.array([[0.52], [0.9]]), [0.5], std=None, rule={"band": 0.05, "max_std": 0.1})
    array([[ True],
           [False]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_RULE", "check_rule", "refer", "referral_reasons", "rule_of"]

DEFAULT_RULE = {"band": 0.1, "max_std": 0.15, "passes": 20}


def check_rule(rule: dict) -> dict:
    """A referral rule with its values checked: ``band`` in [0, 0.5], ``max_std`` in
    (0, 0.5], ``passes`` 0 (no MC dropout) or at least 2."""
    band, max_std, passes = float(rule["band"]), float(rule["max_std"]), int(rule["passes"])
    if not 0 <= band <= 0.5:
        raise ValueError(f"referral band: a probability distance in [0, 0.5], got {band}")
    if not 0 < max_std <= 0.5:
        raise ValueError(f"referral max_std: in (0, 0.5], got {max_std}")
    if passes == 1 or passes < 0:
        raise ValueError(f"referral passes: 0 (off) or at least 2, got {passes}")
    return {"band": band, "max_std": max_std, "passes": passes}


def rule_of(meta: dict) -> dict:
    """The artifact's referral rule, defaults filled in."""
    return {**DEFAULT_RULE, **(meta.get("referral") or {})}


def refer(
    probabilities: np.ndarray, thresholds, *, std: np.ndarray | None, rule: dict
) -> np.ndarray:
    """Boolean (n, labels): near the threshold, or too uncertain under MC dropout."""
    probabilities = np.asarray(probabilities, np.float64)
    flag = np.abs(probabilities - np.asarray(thresholds)) < float(rule["band"])
    if std is not None:
        flag |= np.asarray(std) > float(rule["max_std"])
    return flag


def referral_reasons(
    labels: Sequence[str],
    probabilities,
    *,
    thresholds,
    std,
    rule: dict,
    ood_reasons: Sequence[str] = (),
) -> list[str]:
    """Why one image is referred (empty: not referred): out of distribution
    (``ood_reasons``, from :class:`~cxr_keras.artifact.predictor.Predictor`), labels near
    their threshold, or uncertain under MC dropout (``std`` per label, or None without MC
    dropout).

    Example:
        >>> referral_reasons(
        ...     ["PNEUMONIA"], [0.52], thresholds=[0.5], std=None,
        ...     rule={"band": 0.05, "max_std": 0.1}
        ... )
        ['PNEUMONIA: probability 0.520 within 0.05 of its threshold 0.500']
    """
    reasons = [f"out of distribution: {reason}" for reason in ood_reasons]
    for j, label in enumerate(labels):
        if abs(probabilities[j] - thresholds[j]) < rule["band"]:
            reasons.append(
                f"{label}: probability {probabilities[j]:.3f} within {rule['band']:g} of its "
                f"threshold {thresholds[j]:.3f}"
            )
        if std is not None and std[j] > rule["max_std"]:
            reasons.append(
                f"{label}: uncertain (MC-dropout std {std[j]:.3f} > {rule['max_std']:g})"
            )
    return reasons
