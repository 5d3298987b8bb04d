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
import numpy as np
from keras import ops

__all__ = [
    "BackboneInput",
    "HistogramEqualization",
    "LogSumExpPooling",
    "RandomGamma",
    "RandomNoise",
    "TestTimeView",
    "TrainingOnly",
]

# ImageNet statistics used by keras.applications' "torch" and "caffe" preprocessing.
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
BACKBONE_SCALINGS = ("identity", "255", "tf", "torch", "caffe")


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
        # Each image's histogram as one segment sum over (image, level) ids, not bincount:
        # the same integer counts, but LiteRT runs it with its built-in ops (bincount needs
        # the TensorFlow Flex delegate, so an export could not be served without TensorFlow).
        batch = shape[0]
        ids = levels + ops.expand_dims(ops.arange(batch, dtype="int32") * self.bins, -1)
        ones = ops.ones((batch * ops.shape(flat)[1],), "float32")
        counts = ops.segment_sum(ones, ops.reshape(ids, (-1,)), num_segments=batch * self.bins)
        counts = ops.reshape(counts, (batch, self.bins))
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


@keras.saving.register_keras_serializable(package="cxr_keras")
class BackboneInput(keras.layers.Layer):
    """Feed a grayscale image in [0, 1] to a backbone: repeat the channel and apply the
    backbone's own input scaling, inside the model (so no Lambda layer is needed and the
    saved model loads with ``safe_mode=True``).

    Scalings (as ``keras.applications`` preprocess_input modes expect them):
    ``identity`` keeps [0, 1]; ``255`` multiplies by 255 (models with their own rescaling,
    e.g. EfficientNet, MobileNetV3); ``tf`` maps to [-1, 1] (InceptionV3); ``torch``
    normalises with the ImageNet mean and std (DenseNet); ``caffe`` subtracts the ImageNet
    BGR mean from 0-255 values (ResNet50).

    Example:
        >>> import numpy as np
        >>> out = BackboneInput(channels=3, scaling="tf")(np.full((1, 2, 2, 1), 0.5, "float32"))
        >>> tuple(out.shape), float(np.asarray(out).max())
        ((1, 2, 2, 3), 0.0)
    """

    def __init__(self, channels: int = 3, scaling: str = "identity", **kwargs):
        super().__init__(**kwargs)
        if scaling not in BACKBONE_SCALINGS:
            raise ValueError(f"scaling must be one of {BACKBONE_SCALINGS}, got {scaling!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.scaling = scaling

    def call(self, images):
        x = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        if self.channels != 1:
            x = ops.repeat(x[..., :1], self.channels, axis=-1)
        if self.scaling == "255":
            return x * 255.0
        if self.scaling == "tf":
            return x * 2.0 - 1.0
        if self.scaling == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN[: self.channels], self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD[: self.channels], self.compute_dtype)
            return (x - mean) / std
        if self.scaling == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR[: self.channels], self.compute_dtype)
            return x * 255.0 - mean
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "scaling": self.scaling}


@keras.saving.register_keras_serializable(package="cxr_keras")
class LogSumExpPooling(keras.layers.Layer):
    """Log-sum-exp pooling over height and width (Wang et al., ChestX-ray8, CVPR 2017):
    ``(1 / r) * log(mean(exp(r * x)))`` per channel. Small ``r`` approaches average
    pooling, large ``r`` max pooling; computed stably by factoring out the maximum.

    Example:
        >>> import numpy as np
        >>> x = np.array([0.0, 0.0, 0.0, 4.0], "float32").reshape(1, 2, 2, 1)
        >>> [round(float(v), 3) for v in np.asarray(LogSumExpPooling(r=100.0)(x))[0]]
        [3.986]
    """

    def __init__(self, r: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        if r <= 0:
            raise ValueError(f"r must be > 0, got {r}")
        self.r = float(r)

    def call(self, features):
        x = ops.cast(features, "float32")  # exp of large values: keep float32
        peak = ops.max(x, axis=(1, 2), keepdims=True)
        pooled = ops.log(ops.mean(ops.exp(self.r * (x - peak)), axis=(1, 2))) / self.r
        return ops.cast(pooled + ops.squeeze(peak, axis=(1, 2)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "r": self.r}


@keras.saving.register_keras_serializable(package="cxr_keras")
class TestTimeView(keras.layers.Layer):
    """One deterministic view of an image batch for test-time augmentation (see
    :mod:`cxr_keras.models.tta`): the same at training and inference, shape kept.

    Kinds: ``zoom`` (``amount`` > 1 enlarges and crops the centre, < 1 shrinks and pads
    with black), ``gamma`` (values raised to ``amount``: < 1 brighter), ``shift`` (moved
    right by ``amount`` of the width, negative: left; the gap is black), ``identity``.

    Example:
        >>> import numpy as np
        >>> x = np.ones((1, 10, 10, 1), "float32")
        >>> y = np.asarray(TestTimeView("zoom", 0.8)(x))[0, :, :, 0]
        >>> y.shape, float(y[0, 0]), float(y[5, 5])
        ((10, 10), 0.0, 1.0)
    """

    KINDS = ("identity", "zoom", "gamma", "shift")

    def __init__(self, kind: str = "identity", amount: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"kind: one of {self.KINDS}, got {kind!r}")
        if kind in ("zoom", "gamma") and amount <= 0:
            raise ValueError(f"{kind} amount must be > 0, got {amount}")
        self.kind = kind
        self.amount = float(amount)

    def call(self, images):
        x = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        height, width = x.shape[1], x.shape[2]
        if self.kind == "gamma":
            return ops.power(ops.clip(x, 0.0, 1.0), self.amount)
        if self.kind == "shift":
            step = round(self.amount * width)
            if step == 0:
                return x
            if step > 0:
                return ops.pad(x[:, :, : width - step, :], ((0, 0), (0, 0), (step, 0), (0, 0)))
            return ops.pad(x[:, :, -step:, :], ((0, 0), (0, 0), (0, -step), (0, 0)))
        if self.kind == "zoom":
            new_h = max(1, round(height * self.amount))
            new_w = max(1, round(width * self.amount))
            resized = ops.image.resize(x, (new_h, new_w), interpolation="bilinear")
            if self.amount >= 1:
                top, left = (new_h - height) // 2, (new_w - width) // 2
                return resized[:, top : top + height, left : left + width, :]
            top, left = (height - new_h) // 2, (width - new_w) // 2
            return ops.pad(
                resized,
                ((0, 0), (top, height - new_h - top), (left, width - new_w - left), (0, 0)),
            )
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "amount": self.amount}


@keras.saving.register_keras_serializable(package="cxr_keras")
class RandomGamma(keras.layers.Layer):
    """Random exposure: each image's values in [0, 1] raised to a gamma drawn log-uniformly
    in ``[1 / (1 + factor), 1 + factor]`` (below 1 brighter, above darker), in training
    only. Keras has brightness and contrast layers, which shift and scale values, but none
    for gamma, the non-linear change another detector or exposure makes.

    Example:
        >>> import numpy as np
        >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
        >>> y = np.asarray(RandomGamma(0.6, seed=1)(x, training=True))
        >>> bool(np.all((y >= 0.5 ** 1.6 - 1e-6) & (y <= 0.5 ** (1 / 1.6) + 1e-6)))
        True
        >>> bool(np.array_equal(np.asarray(RandomGamma(0.6)(x)), x))  # inference: as given
        True
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if factor < 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        self.factor = float(factor)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        x = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        if not training or self.factor == 0:
            return x
        bound = float(np.log1p(self.factor))
        log_gamma = keras.random.uniform(
            (ops.shape(x)[0], 1, 1, 1), -bound, bound, seed=self.seed_generator
        )
        return ops.power(ops.clip(x, 0.0, 1.0), ops.cast(ops.exp(log_gamma), x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cxr_keras")
class RandomNoise(keras.layers.Layer):
    """Gaussian noise with a standard deviation drawn per image in ``[0, stddev]``, the
    result clipped to [0, 1], in training only. Keras' ``GaussianNoise`` adds one fixed
    standard deviation and does not keep the value range the other layers rely on.

    Example:
        >>> import numpy as np
        >>> x = np.full((8, 16, 16, 1), 0.5, "float32")
        >>> y = np.asarray(RandomNoise(0.05, seed=1)(x, training=True))
        >>> bool(y.min() >= 0 and y.max() <= 1), bool(np.std(y - x) < 0.05)
        (True, True)
    """

    def __init__(self, stddev: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if stddev < 0:
            raise ValueError(f"stddev must be >= 0, got {stddev}")
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        x = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        if not training or self.stddev == 0:
            return x
        scale = keras.random.uniform(
            (ops.shape(x)[0], 1, 1, 1), 0.0, self.stddev, seed=self.seed_generator
        )
        noise = keras.random.normal(ops.shape(x), seed=self.seed_generator)
        return ops.clip(x + ops.cast(scale * noise, x.dtype), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cxr_keras")
class TrainingOnly(keras.layers.Wrapper):
    """Run the wrapped (augmentation) layer only when ``training`` is explicitly True.

    Keras' random augmentation layers default to ``training=True`` in their own call, so
    a saved model called the plain way, ``model(x)`` (as the keras.io Grad-CAM recipe and
    most user code call it), would augment its input and, through the call context, run
    BatchNorm in training mode and overwrite its moving statistics. Here the default is
    False: ``fit`` passes True, every other call gets the image as given.

    Example:
        >>> import numpy as np
        >>> flip = TrainingOnly(keras.layers.RandomFlip("horizontal", seed=1))
        >>> x = np.arange(8, dtype="float32").reshape(1, 2, 4, 1)
        >>> bool(np.array_equal(np.asarray(flip(x)), x))
        True
    """

    def call(self, inputs, training=False):
        if training:
            return self.layer(inputs, training=True)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape
