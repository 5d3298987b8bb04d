"""Cheap checks that an input can be a chest film at all, before any model looks at it.

Four properties that no chest radiograph in a training set has, each measured where it
is cheapest:

- **near-constant**: the model input's standard deviation is below ``min_std`` (an
  all-black, all-white or grey image);
- **tiny range**: its values span less than ``min_range`` between the 0.5th and 99.5th
  percentiles (an image that uses a sliver of its bit depth: almost black, or washed out);
- **colour**: the file's pixels carry colour (mean of max - min over R, G, B above
  ``max_colour`` of the full scale, on a small thumbnail); a film saved as RGB has equal
  channels and passes;
- **aspect**: width / height outside ``aspect`` (a banner, a strip, a tall screenshot).

The limits are far outside what chest films show (measured on the Kermany and NIH packs:
input std >= 0.078, range >= 0.35, colour 0, aspect 0.84 - 3.2). The model-based detector
(:mod:`cxr_keras.artifact.ood`) catches what these miss; these give the plainer reason.

Example:
    >>> import numpy as np
    >>> checks = InputChecks()
    >>> std, spread = image_statistics(np.zeros((8, 8, 1), np.float32))
    >>> checks.reasons(std=std, spread=spread, colour=0.0, aspect=1.0)
    ['near-constant image (std 0.000 < 0.02)', 'values use a tiny part of the range (0.000 < 0.15)']
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["InputChecks", "batch_statistics", "colour_content", "image_statistics"]


@dataclass(frozen=True)
class InputChecks:
    """Limits of the input sanity checks (stored in the artifact with the detector)."""

    min_std: float = 0.02
    min_range: float = 0.15
    max_colour: float = 0.04
    aspect: tuple[float, float] = (0.5, 3.5)

    def to_dict(self) -> dict:
        return {**asdict(self), "aspect": list(self.aspect)}

    @classmethod
    def from_dict(cls, values: dict | None) -> InputChecks:
        values = dict(values or {})
        if "aspect" in values:
            values["aspect"] = tuple(float(v) for v in values["aspect"])
        return cls(**values)

    def reasons(
        self, *, std: float, spread: float, colour: float, aspect: float | None
    ) -> list[str]:
        """Why an input fails the checks (empty: it passes). ``std`` and ``spread`` of the
        image as the model gets it (:func:`image_statistics`); ``colour`` from
        :func:`colour_content`; ``aspect`` the file's width / height (None: not checked)."""
        found = []
        if not (np.isfinite(std) and np.isfinite(spread)):
            found.append("non-finite values in the image")
        if std < self.min_std:
            found.append(f"near-constant image (std {std:.3f} < {self.min_std:g})")
        if spread < self.min_range:
            found.append(f"values use a tiny part of the range ({spread:.3f} < {self.min_range:g})")
        if colour > self.max_colour:
            found.append(f"a colour image (colour content {colour:.3f} > {self.max_colour:g})")
        low, high = self.aspect
        if aspect is not None and not low <= aspect <= high:
            found.append(f"aspect ratio out of range ({aspect:.2f}, not {low:g}-{high:g})")
        return found


def image_statistics(model_input: np.ndarray) -> tuple[float, float]:
    """(standard deviation, 0.5th-99.5th percentile spread) of a model input in [0, 1]."""
    stats = batch_statistics(np.asarray(model_input)[None])
    return float(stats[0, 0]), float(stats[0, 1])


def batch_statistics(images: np.ndarray) -> np.ndarray:
    """(n, 3): :func:`image_statistics` of each image of a batch (n, H, W, C), then its
    mean intensity (what the audit log and the drift report follow)."""
    values = np.asarray(images, np.float64).reshape(len(images), -1)
    low, high = np.percentile(values, [0.5, 99.5], axis=1)
    return np.stack([values.std(axis=1), high - low, values.mean(axis=1)], axis=1)


def colour_content(path: str | os.PathLike, *, thumbnail: int = 128) -> float:
    """How much colour a picture file holds: the mean over pixels of max - min of its
    R, G, B values, as a share of the full scale (0 for grayscale files, and for RGB
    files whose channels are equal). DICOM files answer 0: colour DICOMs are refused by
    :func:`cxr_keras.data.io.decode_dicom` with their photometric interpretation.

    Example:
        >>> from cxr_keras.sample_data import sample_files
        >>> colour_content(sample_files("kermany")[0])
        0.0
    """
    from PIL import Image, UnidentifiedImageError

    from cxr_keras.data.io import is_dicom_path, sniff_format

    try:
        if is_dicom_path(path) or sniff_format(path) == "dicom":
            return 0.0
        with Image.open(path) as image:
            if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                return 0.0
            image.draft("RGB", (thumbnail, thumbnail))  # JPEG: decode at a small scale
            image = image.convert("RGB")
            image.thumbnail((thumbnail, thumbnail))
            rgb = np.asarray(image, np.float32)
    except (OSError, UnidentifiedImageError, ValueError):
        return 0.0  # not readable here: decoding reports it with the reason
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255.0)
