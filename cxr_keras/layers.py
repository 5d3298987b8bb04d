"""Custom Keras layers of cxr-keras, registered so saved models load with ``safe_mode=True``.

Import this module before loading a model that uses them (the artifact loader does).

Example:
    >>> import numpy as np
    >>> x = np.linspace(0.2, 0.4, 64, dtype="float32").reshape(1, 8, 8, 1)
    >>> y = np.asarray(HistogramEqualization()(x))
    >>> round(float(y.min()), 3), round(float(y.max()), 3)  # stretched to the full range
    (0.0, 1.0)
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["HistogramEqualization"]


@keras.saving.register_keras_serializable(package="cxr_keras")
class HistogramEqualization(keras.layers.Layer):
    """Global histogram equalisation of each image in [0, 1], identical in training and
    inference (deterministic preprocessing, unlike a random augmentation layer).

    Each image's values are binned into ``bins`` levels; every value is replaced by the
    normalised cumulative histogram at its bin, ``(cdf - cdf_min) / (n - cdf_min)``, so the
    output spans [0, 1] with a near-uniform histogram. A constant image becomes all zeros.
    Keras' own ``Equalization`` layer is not used: in Keras 3.8-3.15 it acts only when
    ``training=True`` and cannot follow another layer in a functional model.

    Args:
        bins: number of grey levels of the histogram (256 for 8-bit precision).
    """

    def __init__(self, bins: int = 256, **kwargs):
        super().__init__(**kwargs)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = int(bins)

    def call(self, images):
        images = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        shape = ops.shape(images)
        flat = ops.reshape(images, (shape[0], -1))
        levels = ops.cast(ops.clip(ops.floor(flat * self.bins), 0, self.bins - 1), "int32")
        counts = ops.cast(ops.bincount(levels, minlength=self.bins), "float32")
        cdf = ops.cumsum(counts, axis=-1)
        n = ops.sum(counts, axis=-1, keepdims=True)
        cdf_min = ops.min(ops.where(counts > 0, cdf, n), axis=-1, keepdims=True)
        lut = ops.where(n > cdf_min, (cdf - cdf_min) / ops.maximum(n - cdf_min, 1.0), 0.0)
        out = ops.take_along_axis(lut, levels, axis=-1)
        return ops.cast(ops.reshape(out, shape), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}
