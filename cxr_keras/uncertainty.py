"""Monte Carlo dropout and the "refer to a radiologist" flag.

MC dropout runs the model ``passes`` times with only its Dropout layers active (the
augmentation layers stay off and BatchNorm keeps its moving statistics, which calling the
model with ``training=True`` would not do), then reports per label the mean probability,
its standard deviation and the predictive entropy of the mean.

The referral rule is stored in the artifact (``cxr_model.json``, ``referral``): refer when
the probability lies within ``band`` of the decision threshold, or when the MC-dropout
standard deviation exceeds ``max_std``. Without a stored rule, :data:`DEFAULT_RULE`.

Example:
    >>> refer(np.array([[0.52], [0.9]]), [0.5], None, {"band": 0.05, "max_std": 0.1})
    array([[ True],
           [False]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxr_keras.calibration import sigmoid

__all__ = [
    "DEFAULT_RULE",
    "McDropout",
    "check_rule",
    "mc_dropout",
    "predictive_entropy",
    "refer",
    "rule_of",
]

DEFAULT_RULE = {"band": 0.1, "max_std": 0.15, "passes": 20}


@dataclass
class McDropout:
    """Per image and label: mean probability, its standard deviation over the passes, and
    the predictive entropy (nats) of the mean."""

    mean: np.ndarray
    std: np.ndarray
    entropy: np.ndarray
    passes: int


def predictive_entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats of each probability (0 at 0 and 1, log 2 at 0.5)."""
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def mc_dropout(
    model, images: np.ndarray, temperatures, passes: int = 20, seed: int = 0, batch_size: int = 32
) -> McDropout:
    """MC-dropout statistics of model inputs (n, H, W, 1), temperature applied per label."""
    import keras

    from cxr_keras.graph import rebuild

    if passes < 2:
        raise ValueError(f"MC dropout needs at least 2 passes, got {passes}")
    stochastic = rebuild(model, training_for=lambda layer: isinstance(layer, keras.layers.Dropout))
    keras.utils.set_random_seed(seed)
    temperatures = np.asarray(temperatures, np.float64)
    samples = []
    for _ in range(passes):
        logits = np.concatenate(
            [
                np.asarray(stochastic(images[i : i + batch_size]), np.float64)
                for i in range(0, len(images), batch_size)
            ]
        )
        samples.append(sigmoid(logits / temperatures))
    samples = np.stack(samples)
    mean = samples.mean(axis=0)
    return McDropout(mean, samples.std(axis=0), predictive_entropy(mean), passes)


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


def refer(probabilities: np.ndarray, thresholds, std: np.ndarray | None, rule: dict) -> np.ndarray:
    """Boolean (n, labels): near the threshold, or too uncertain under MC dropout."""
    probabilities = np.asarray(probabilities, np.float64)
    flag = np.abs(probabilities - np.asarray(thresholds)) < float(rule["band"])
    if std is not None:
        flag |= np.asarray(std) > float(rule["max_std"])
    return flag
