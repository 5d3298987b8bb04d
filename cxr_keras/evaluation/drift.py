"""Has a stream of answers drifted from the reference? Distribution and rate comparisons
with verdicts whose thresholds are stated (:data:`RULES`), for the monitor.

- **Population stability index** (PSI): the reference's deciles as bins, ``sum((c - r) *
  ln(c / r))`` over the bins' shares; the size of a shift, whatever the sample size.
  Conventional reading: < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a large one.
- **Two-sample Kolmogorov-Smirnov test** (:func:`scipy.stats.ks_2samp`): whether the
  shift can be chance. PSI alone flags small samples (30 answers over 10 bins have an
  expected PSI near 0.3 with no shift at all); the test alone flags shifts too small to
  matter once there are thousands of answers. A verdict needs both.
- **Rates** (out of distribution, for instance): a one-sided binomial test of the stream's
  rate against the reference's, and a minimum excess in percentage points.

Example:
    >>> rng = np.random.default_rng(0)
    >>> same, moved = rng.normal(0, 1, 500), rng.normal(1, 1, 500)
    >>> reference = rng.normal(0, 1, 800)
    >>> compare(reference, same)["verdict"], compare(reference, moved)["verdict"]
    ('stable', 'drift')
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "RULES",
    "VERDICTS",
    "compare",
    "compare_rate",
    "population_stability_index",
    "worst",
]

VERDICTS = ("stable", "watch", "drift")  # in order of severity; "too few answers" is apart
TOO_FEW = "too few answers"
RULES = {
    "psi_watch": 0.1,
    "psi_drift": 0.25,
    "p_watch": 0.01,
    "p_drift": 0.001,
    "min_answers": 30,
    "rate_excess_watch": 0.02,
    "rate_excess_drift": 0.05,
}


def population_stability_index(reference, current, *, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference``, over the reference's quantile bins (ties
    merged); shares are floored at 1e-4 so an empty bin costs a large, finite amount.

    Example:
        >>> x = np.linspace(0, 1, 1000)
        >>> round(population_stability_index(x, x), 6), population_stability_index(x, x + 1) > 5
        (0.0, True)
    """
    reference = np.asarray(reference, np.float64)
    current = np.asarray(current, np.float64)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    # bin i holds values in (edge[i-1], edge[i]]: a point mass at an edge stays in one bin
    ref_share = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1)
    cur_share = np.bincount(np.searchsorted(edges, current), minlength=len(edges) + 1)
    ref_share = np.maximum(ref_share / len(reference), 1e-4)
    cur_share = np.maximum(cur_share / len(current), 1e-4)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def compare(reference, current, *, rules: dict | None = None) -> dict:
    """One quantity's stream against its reference: ``{"answers", "psi", "ks", "p_value",
    "reference_median", "median", "verdict"}``. ``drift``: PSI >= psi_drift and the KS
    p-value < p_drift; ``watch``: PSI >= psi_watch and p < p_watch; fewer than
    min_answers: no verdict."""
    from scipy.stats import ks_2samp

    rules = {**RULES, **(rules or {})}
    reference = np.asarray(reference, np.float64)
    current = np.asarray(current, np.float64)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    out = {
        "answers": len(current),
        "reference_median": float(np.median(reference)) if len(reference) else None,
        "median": float(np.median(current)) if len(current) else None,
        "psi": None,
        "ks": None,
        "p_value": None,
    }
    if len(current) < rules["min_answers"] or len(reference) < rules["min_answers"]:
        return {**out, "verdict": TOO_FEW}
    psi = population_stability_index(reference, current)
    test = ks_2samp(reference, current)
    p_value = float(test.pvalue)
    if psi >= rules["psi_drift"] and p_value < rules["p_drift"]:
        verdict = "drift"
    elif psi >= rules["psi_watch"] and p_value < rules["p_watch"]:
        verdict = "watch"
    else:
        verdict = "stable"
    return {**out, "psi": psi, "ks": float(test.statistic), "p_value": p_value, "verdict": verdict}


def compare_rate(
    count: int, total: int, *, reference_rate: float, reference_total: int, rules=None
) -> dict:
    """A share in the stream (``count`` of ``total``) against the reference's: ``drift``
    when it is above it by a one-sided binomial test (p < p_drift) and by at least
    rate_excess_drift; ``watch`` likewise with p_watch and rate_excess_watch. The
    reference rate is floored at 1 / (reference_total + 1): none of a few hundred
    reference films flagged does not make every flag a drift.

    Example:
        >>> compare_rate(30, 200, reference_rate=0.004, reference_total=785)["verdict"]
        'drift'
    """
    from scipy.stats import binomtest

    rules = {**RULES, **(rules or {})}
    rate = count / total if total else None
    out = {"count": int(count), "answers": int(total), "rate": rate}
    out["reference_rate"] = reference_rate
    if total < rules["min_answers"] or reference_rate is None:
        return {**out, "p_value": None, "verdict": TOO_FEW}
    floor = max(float(reference_rate), 1.0 / (reference_total + 1))
    p_value = float(binomtest(int(count), int(total), floor, alternative="greater").pvalue)
    excess = rate - float(reference_rate)
    if p_value < rules["p_drift"] and excess >= rules["rate_excess_drift"]:
        verdict = "drift"
    elif p_value < rules["p_watch"] and excess >= rules["rate_excess_watch"]:
        verdict = "watch"
    else:
        verdict = "stable"
    return {**out, "p_value": p_value, "verdict": verdict}


def worst(verdicts) -> str:
    """The most severe verdict of several (``too few answers`` only when all are).

    Example:
        >>> worst(["stable", "drift", "watch"])
        'drift'
    """
    known = [v for v in verdicts if v in VERDICTS]
    if not known:
        return TOO_FEW
    return max(known, key=VERDICTS.index)
