"""Monte Carlo dropout: how uncertain the model is about one image.

MC dropout runs the model ``passes`` times with only its Dropout layers active (the
augmentation layers stay off and BatchNorm keeps its moving statistics, which calling the
model with ``training=True`` would not do), then reports per label the mean probability,
its standard deviation and the predictive entropy of the mean.

Its standard deviation feeds the referral rule (:mod:`cxr_keras.artifact.referral`).

Example:
    >>> predictive_entropy(np.array([0.5, 1.0])).round(4).tolist()
    [0.6931, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxr_keras.artifact.calibration import sigmoid

__all__ = [
    "McDropout",
    "McDropoutSampler",
    "mc_dropout",
    "predictive_entropy",
]


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

    The graph is cut before the first Dropout layer
    (:func:`cxr_keras.explanation.graph.split_before`):
    everything before it is deterministic, so it runs once per image and only the head
    runs per pass (for cxr-keras models, the dropout and dense layers after pooling). Each
    image's head input is repeated ``passes`` times inside a batch: Dropout draws its mask
    per batch row, so the rows are independent passes. A model the cut does not fit runs
    whole per pass.
    """

    def __init__(self, model):
        import keras
        import tensorflow as tf

        from cxr_keras.explanation.graph import rebuild, split_before

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
    model,
    images: np.ndarray,
    *,
    temperatures,
    passes: int = 20,
    seed: int = 0,
    batch_size: int = 32,
) -> McDropout:
    """MC-dropout statistics of model inputs (n, H, W, 1), temperature applied per label
    (one-off: builds a :class:`McDropoutSampler`)."""
    return McDropoutSampler(model)(images, temperatures, passes, seed, batch_size)
