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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxr_keras.calibration import sigmoid

__all__ = [
    "DEFAULT_RULE",
    "McDropout",
    "McDropoutSampler",
    "check_rule",
    "mc_dropout",
    "predictive_entropy",
    "refer",
    "referral_reasons",
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


class McDropoutSampler:
    """MC dropout with the stochastic model built once (the costly part), for callers that
    sample many times, such as the app.

    The graph is cut before the first Dropout layer (:func:`cxr_keras.graph.split_before`):
    everything before it is deterministic, so it runs once per image and only the head
    runs per pass (for cxr-keras models, the dropout and dense layers after pooling). Each
    image's head input is repeated ``passes`` times inside a batch: Dropout draws its mask
    per batch row, so the rows are independent passes. A model the cut does not fit runs
    whole per pass.
    """

    def __init__(self, model):
        import keras
        import tensorflow as tf

        from cxr_keras.graph import rebuild, split_before

        def is_dropout(layer) -> bool:
            return isinstance(layer, keras.layers.Dropout)

        split = split_before(model, is_dropout, training_for=is_dropout)
        if split is None:
            trunk, head = None, rebuild(model, training_for=is_dropout)
        else:
            trunk, head = split
        self.split = split is not None
        self._trunk = None if trunk is None else tf.function(trunk, reduce_retracing=True)
        self._head = tf.function(head, reduce_retracing=True)

    def __call__(
        self, images: np.ndarray, temperatures, passes: int = 20, seed: int = 0, batch_size=32
    ) -> McDropout:
        """Statistics of model inputs (n, H, W, 1), temperature applied per label."""
        import keras

        if passes < 2:
            raise ValueError(f"MC dropout needs at least 2 passes, got {passes}")
        keras.utils.set_random_seed(seed)
        images = np.asarray(images, np.float32)
        if self._trunk is not None:  # deterministic part once, in batches
            images = np.concatenate(
                [
                    np.asarray(self._trunk(images[i : i + batch_size]))
                    for i in range(0, len(images), batch_size)
                ]
            )
            batch_size *= passes  # head inputs are small: a whole chunk per call
        tiled = np.repeat(images, passes, axis=0)
        logits = np.concatenate(
            [
                np.asarray(self._head(tiled[i : i + batch_size]), np.float64)
                for i in range(0, len(tiled), batch_size)
            ]
        )
        samples = sigmoid(logits.reshape(len(images), passes, -1) / np.asarray(temperatures))
        mean = samples.mean(axis=1)
        return McDropout(mean, samples.std(axis=1), predictive_entropy(mean), passes)


def mc_dropout(
    model, images: np.ndarray, temperatures, passes: int = 20, seed: int = 0, batch_size: int = 32
) -> McDropout:
    """MC-dropout statistics of model inputs (n, H, W, 1), temperature applied per label
    (one-off: builds a :class:`McDropoutSampler`)."""
    return McDropoutSampler(model)(images, temperatures, passes, seed, batch_size)


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


def referral_reasons(
    labels: Sequence[str], probabilities, thresholds, std, rule: dict
) -> list[str]:
    """Why one image is referred (empty: not referred): labels near their threshold, or
    uncertain under MC dropout (``std`` per label, or None without MC dropout).

    Example:
        >>> referral_reasons(["PNEUMONIA"], [0.52], [0.5], None, {"band": 0.05, "max_std": 0.1})
        ['PNEUMONIA: probability 0.520 within 0.05 of its threshold 0.500']
    """
    reasons = []
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
