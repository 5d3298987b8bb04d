"""Label shift: when the share of positives where a model is used differs from the share
it was calibrated at, re-estimate it from the unlabelled answers and correct them.

- **Calibration for estimation**: bias-corrected temperature scaling (BCTS, Alexandari,
  Kundaje and Shrikumar 2020), ``sigmoid(logit / T + b)`` per label, fitted on the
  validation split by evaluate and stored in the artifact (``label_shift``). EM needs
  calibrated probabilities; BCTS's bias term is what makes its estimates unbiased.
- **Estimation**: expectation-maximisation of the prior (Saerens, Latinne and
  Decaestecker 2002), per label, with a percentile-bootstrap interval over images.
- **Correction**: each probability is moved to the new prior by Bayes' rule (its odds
  multiplied by the ratio of the new to the old prior odds); a stored threshold keeps its
  meaning as a cut on the probability, so decisions move with the prevalence.

A batch must hold at least :data:`MIN_IMAGES` in-distribution images: fewer cannot
estimate a share of positives with any precision.

Example:
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(4000) < 0.3  # 30 % positives here, 50 % where calibrated
    >>> s = np.where(y, rng.beta(6, 2, 4000), rng.beta(2, 6, 4000))
    >>> p = s**4 / (s**4 + (1 - s) ** 4)  # the posterior at prevalence 0.5
    >>> round(em_prevalence(p, prior=0.5), 2)
    0.3
"""

from __future__ import annotations

import numpy as np

from cxr_keras.artifact.calibration import negative_log_likelihood, sigmoid

__all__ = [
    "MIN_IMAGES",
    "adapt_probabilities",
    "bcts_probabilities",
    "em_prevalence",
    "estimate_prevalence",
    "fit_bcts",
]

MIN_IMAGES = 50


def _odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return p / (1 - p)


def adapt_probabilities(p, *, prior_from: float, prior_to: float) -> np.ndarray:
    """Probabilities calibrated at prevalence ``prior_from`` moved to ``prior_to``.

    Example:
        >>> float(adapt_probabilities(np.array([0.5]), prior_from=0.5, prior_to=0.2)[0])
        0.2
    """
    ratio = _odds(prior_to) / _odds(prior_from)
    odds = _odds(p) * ratio
    return odds / (1 + odds)


def em_prevalence(p, *, prior: float, max_iter: int = 1000, tol: float = 1e-8) -> float:
    """The prevalence that makes ``p`` (calibrated at ``prior``) self-consistent: EM of
    Saerens et al. 2002 (E: adapt each probability to the current estimate; M: the
    estimate is their mean)."""
    p = np.asarray(p, np.float64)
    estimate = prior
    for _ in range(max_iter):
        updated = float(adapt_probabilities(p, prior_from=prior, prior_to=estimate).mean())
        updated = min(max(updated, 1e-6), 1 - 1e-6)
        if abs(updated - estimate) < tol:
            return updated
        estimate = updated
    return estimate


def estimate_prevalence(
    p, *, prior: float, n_resamples: int = 200, seed: int = 0
) -> tuple[float, list[float]]:
    """(EM estimate, [2.5, 97.5] percentile-bootstrap interval over images)."""
    p = np.asarray(p, np.float64)
    estimate = em_prevalence(p, prior=prior)
    rng = np.random.default_rng(seed)
    draws = [
        em_prevalence(p[rng.integers(0, len(p), len(p))], prior=prior, tol=1e-6)
        for _ in range(n_resamples)
    ]
    low, high = np.percentile(draws, [2.5, 97.5])
    return estimate, [float(low), float(high)]


def fit_bcts(logits, y) -> dict:
    """``{"temperature": T, "bias": b}`` minimising the log loss of
    ``sigmoid(logit / T + b)`` on one label's validation logits and labels."""
    from scipy.optimize import minimize

    z, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)

    def loss(params):
        log_t, b = params
        return negative_log_likelihood(z / np.exp(log_t) + b, y)

    best = minimize(loss, x0=[0.0, 0.0], method="L-BFGS-B", bounds=[(-5, 5), (-20, 20)])
    return {"temperature": float(np.exp(best.x[0])), "bias": float(best.x[1])}


def bcts_probabilities(logits, calibration: dict) -> np.ndarray:
    """One label's probabilities under its fitted BCTS (see :func:`fit_bcts`)."""
    return sigmoid(
        np.asarray(logits, np.float64) / calibration["temperature"] + calibration["bias"]
    )
