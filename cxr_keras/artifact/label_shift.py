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

from dataclasses import dataclass, field

import numpy as np

from cxr_keras.artifact.calibration import negative_log_likelihood, sigmoid

__all__ = [
    "MIN_IMAGES",
    "PriorCorrection",
    "adapt_probabilities",
    "bcts_probabilities",
    "correct_prior",
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


@dataclass
class PriorCorrection:
    """Answers moved to the prevalence where they are used (see :func:`correct_prior`)."""

    probabilities: np.ndarray  # (n, labels): corrected; unchanged where not corrected
    # {label: {"estimated": p, "ci95": [lo, hi] or None when declared, "training": p0}}
    prevalence: dict[str, dict]
    method: str
    images: int  # the in-distribution rows the estimate came from
    notes: list[str] = field(default_factory=list)


def correct_prior(
    artifact,
    *,
    logits: np.ndarray,
    probabilities: np.ndarray,
    in_scope: np.ndarray,
    declared: dict[str, float] | float | None = None,
    entry: dict | None = None,
    seed: int = 0,
) -> PriorCorrection:
    """Each label's probabilities recalibrated (BCTS) and moved to the prevalence
    estimated among the ``in_scope`` rows, or to a ``declared`` one (a share for every
    label, or ``{label: share}``; labels left out stay as they were).

    ``entry``: the label-shift calibration (default: the artifact's stored one); every
    row is corrected, only in-distribution rows estimate. A ValueError when the artifact
    has no calibration, a declared label is unknown, or fewer than :data:`MIN_IMAGES`
    rows are in scope for an estimate.

    Example:
        >>> fixed = correct_prior(artifact, logits=z, probabilities=p,
        ...                       in_scope=~ood)  # doctest: +SKIP
        >>> fixed.prevalence["PNEUMONIA"]["estimated"]  # doctest: +SKIP
        0.61
    """
    entry = entry if entry is not None else artifact.meta.get("label_shift")
    if not entry or not entry.get("prevalence"):
        raise ValueError(
            f"{artifact.path}: no label-shift calibration stored; evaluate fits it on the "
            "validation split (python -m cxr_keras.evaluate --model M, with --update-model "
            "for a shipped model)"
        )
    labels = artifact.labels
    if isinstance(declared, dict):
        unknown = sorted(set(declared) - set(labels))
        if unknown:
            raise ValueError(f"--prevalence: unknown labels {unknown}; the model has {labels}")
    in_scope = np.asarray(in_scope, bool)
    if declared is None and in_scope.sum() < MIN_IMAGES:
        raise ValueError(
            f"--adapt-prior needs at least {MIN_IMAGES} in-distribution images to "
            f"estimate a prevalence, got {int(in_scope.sum())}"
        )
    corrected = np.array(probabilities, np.float64)
    prevalence, notes = {}, []
    for j, label in enumerate(labels):
        if label not in entry["prevalence"]:
            notes.append(f"{label}: no calibration stored (one class in validation): unchanged")
            continue
        trained = float(entry["prevalence"][label])
        calibrated = bcts_probabilities(np.asarray(logits)[:, j], entry["calibration"][label])
        if declared is not None:
            share = declared if isinstance(declared, float) else declared.get(label)
            if share is None:
                continue
            estimated, interval = float(share), None
        else:
            estimated, interval = estimate_prevalence(
                calibrated[in_scope], prior=trained, seed=seed
            )
        corrected[:, j] = adapt_probabilities(calibrated, prior_from=trained, prior_to=estimated)
        prevalence[label] = {"estimated": estimated, "ci95": interval, "training": trained}
    return PriorCorrection(
        probabilities=corrected,
        prevalence=prevalence,
        method="declared" if declared is not None else entry["method"],
        images=int(in_scope.sum()),
        notes=notes,
    )
