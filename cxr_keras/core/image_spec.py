"""How a file on disk becomes the model input (:class:`ImageSpec`), and the geometry of its
one resize, in numpy or TensorFlow with the same arithmetic.

Example:
    >>> spec = ImageSpec(size=224)
    >>> spec.size, resize_steps(512, 362, spec)
    ((224, 224), 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cxr_keras.core.errors import ConfigError

__all__ = ["ImageSpec", "NumpyOps", "max_resize_steps", "resize_steps", "resize_target"]


@dataclass
class ImageSpec:
    """How a file on disk becomes the model input (stored in every model artifact).

    Attributes:
        size: model input (height, width); an int means a square.
        resize: ``squash`` stretches the whole image to the size (as the public Kermany
            and NIH benchmarks do); ``pad`` keeps the aspect ratio and pads with black;
            ``crop`` takes the central square, then resizes (TorchXRayVision's
            ``XRayCenterCrop``).
        crop_borders: first remove uniform frames (black, white or gray padding, burned-in
            frame bands) around the radiograph (:mod:`cxr_keras.data.borders`).
        dicom_window: ``auto`` (VOI LUT or window from the header, else min-max),
            ``header`` (require the header's VOI LUT/window), ``minmax``, or
            ``[center, width]`` in modality units.
        max_pixels: refuse source images with more pixels than this (decompression bombs).
        min_side: refuse images whose shorter side is below this many pixels.
        max_aspect: refuse images whose longer/shorter side ratio exceeds this.
    """

    size: tuple[int, int] = (224, 224)
    resize: Literal["squash", "pad", "crop"] = "squash"
    crop_borders: bool = False
    dicom_window: Literal["auto", "header", "minmax"] | tuple[float, float] = "auto"
    max_pixels: int = 60_000_000
    min_side: int = 32
    max_aspect: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 8:
            raise ConfigError(
                f"image.size: expected an int or [height, width] >= 8, got {self.size}"
            )
        if self.max_pixels <= 0 or self.min_side < 1 or self.max_aspect < 1:
            raise ConfigError("image.max_pixels, min_side and max_aspect must be positive")
        if isinstance(self.dicom_window, (tuple, list)) and self.dicom_window[1] <= 0:
            raise ConfigError(f"image.dicom_window: the width must be > 0, got {self.dicom_window}")


def resize_target(height, width, *, spec: ImageSpec, xp):
    """(source h, w, target h, w) of the one resize ``spec`` makes, in numpy or TF
    (``xp``) with the same float32 arithmetic, so both give the same sizes."""
    target_h, target_w = spec.size
    if spec.resize == "crop":
        height = width = xp.minimum(height, width)
    if spec.resize == "pad":
        h, w = xp.cast(height, "float32"), xp.cast(width, "float32")
        factor = xp.minimum(xp.cast(target_h, "float32") / h, xp.cast(target_w, "float32") / w)
        target_h = xp.maximum(1, xp.cast(xp.round(h * factor), "int32"))
        target_w = xp.maximum(1, xp.cast(xp.round(w * factor), "int32"))
    return height, width, target_h, target_w


class NumpyOps:  # the few numpy operations resize_target needs, TF-style
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    round = staticmethod(np.round)

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x).astype(dtype)


def max_resize_steps(spec: ImageSpec) -> int:
    """Halvings enough for any image the spec accepts (``max_pixels``, ``max_aspect``): the
    plan used when sizes are unknown. Steps an image does not need change nothing."""
    longest = math.sqrt(spec.max_pixels * spec.max_aspect)
    smallest_target = min(spec.size) / (spec.max_aspect if spec.resize == "pad" else 1.0)
    return max(0, math.ceil(math.log2(max(longest / max(smallest_target, 1.0), 1.0)))) + 1


def resize_steps(height: int, width: int, spec: ImageSpec) -> int:
    """The resize plan of an image of this size: -1 when it already has the target size (a
    plain copy), else the number of pyramid halvings before the final bilinear step.

    Example:
        >>> resize_steps(512, 362, ImageSpec(size=224)), resize_steps(224, 224, ImageSpec())
        (1, -1)
        >>> resize_steps(2048, 2048, ImageSpec(size=224)), resize_steps(100, 80, ImageSpec())
        (3, 0)
    """
    h, w, th, tw = (int(v) for v in resize_target(height, width, spec=spec, xp=NumpyOps))
    if (h, w) == (th, tw):
        return -1
    steps = 0
    while h >= 2 * th or w >= 2 * tw:
        h = (h + 1) // 2 if h >= 2 * th else h
        w = (w + 1) // 2 if w >= 2 * tw else w
        steps += 1
    return steps
