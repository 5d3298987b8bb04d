"""Calibration: expected calibration error, Brier score, reliability bins, and
temperature scaling fitted on validation logits.

ECE here is the calibration error of the predicted probability of each label being
present: the known entries are put into ``bins`` equal-width probability bins over [0, 1]
(15 by default, as in Guo et al. 2017), and ECE = sum over bins of (bin size / n) *
|observed frequency - mean probability|.

Example:
    >>> y = np.array([[0.0], [1.0], [1.0], [0.0]]); z = np.array([[-4.0], [4.0], [3.0], [2.0]])
    >>> t = fit_temperature(z, y, mask=np.ones_like(y))
    >>> bool(t[0] > 1.0)  # over-confident logits are softened
    True
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
    "sigmoid",
]

ECE_BINS = 15


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large logits.

    ``exp(-log(1 + exp(-z)))`` through NumPy's ``logaddexp`` agrees with SciPy's ``expit``
    to a few ulps; NumPy so that answers from an export (the ``[serve]`` install, without
    SciPy) can be calibrated and moved to a prevalence too.

    Example:
        >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=np.float64)))


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin: count, mean probability and observed frequency (non-empty
    bins only), for one label's known entries or pooled entries."""
    y, p = np.asarray(y, np.float64).ravel(), np.asarray(p, np.float64).ravel()
    which = np.minimum((p * bins).astype(int), bins - 1)  # p = 1.0 falls in the last bin
    out = []
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            out.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "count": int(chosen.sum()),
                    "mean_probability": float(p[chosen].mean()),
                    "observed": float(y[chosen].mean()),
                }
            )
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """ECE over ``bins`` equal-width bins; None without entries."""
    n = np.asarray(y).size
    if n == 0:
        return None
    return float(
        sum(
            b["count"] / n * abs(b["observed"] - b["mean_probability"])
            for b in reliability_bins(y, p, bins)
        )
    )


def brier_score(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean squared difference between probability and outcome (scikit-learn's)."""
    from sklearn.metrics import brier_score_loss

    y, p = np.asarray(y).ravel(), np.asarray(p).ravel()
    if y.size == 0:
        return None
    return float(brier_score_loss(y, p, pos_label=1)) if y.max() > 0 else float(np.mean(p**2))


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits / temperature)`` against ``y``."""
    z = np.asarray(logits, np.float64) / temperature
    y = np.asarray(y, np.float64)
    # log(1 + exp(-|z|)) + max(z, 0) - y z: the stable form of BCE with logits
    return float(np.mean(np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - y * z))


def fit_temperature(
    logits: np.ndarray,
    y: np.ndarray,
    *,
    mask: np.ndarray,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> list[float]:
    """One temperature per label minimising the validation NLL of its known entries
    (a bounded 1-D search over log T). A label whose known entries hold a single class
    keeps T = 1: its NLL would fall forever as the probabilities saturate."""
    from scipy.optimize import minimize_scalar

    logits, y, mask = (np.asarray(a, np.float64) for a in (logits, y, mask))
    temperatures = []
    for j in range(logits.shape[1]):
        known = mask[:, j] > 0
        zj, yj = logits[known, j], y[known, j]
        if len(yj) == 0 or yj.min() == yj.max():
            temperatures.append(1.0)
            continue
        result = minimize_scalar(
            lambda log_t, zj=zj, yj=yj: negative_log_likelihood(zj, yj, float(np.exp(log_t))),
            bounds=tuple(np.log(bounds)),
            method="bounded",
            options={"xatol": 1e-4},
        )
        temperatures.append(float(np.exp(result.x)))
    return temperatures
