"""What replaced OpenCV (a 72 MB dependency for four calls) gives OpenCV's images, on real
films: the stress shifts' blur, shrink-and-enlarge, border and rotation, the saliency
check's blur, and the app's previews. OpenCV stays a test-only dependency ([dev]) for this
comparison."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_keras.config import ImageSpec
from cxr_keras.data.numpy_io import area_resize, bilinear_resize, load_image_numpy
from cxr_keras.evaluation.stress import apply_shift
from cxr_keras.explanation.saliency_checks import blurred_baseline
from cxr_keras.sample_data import sample_files

cv2 = pytest.importorskip("cv2", reason="the [dev] extra (opencv-python-headless) is missing")


@pytest.fixture(scope="module")
def films() -> list[np.ndarray]:
    """Bundled films at two model sizes, one of them not square."""
    files = sample_files("kermany")[::40] + sample_files("nih")[::10]
    return [
        load_image_numpy(f, ImageSpec(size=size))[..., 0]
        for f in files
        for size in ((224, 224), (160, 96))
    ]


def _opencv_shift(image: np.ndarray, shift: str, severity: int) -> np.ndarray:
    """The shifts as they were written with OpenCV."""
    h, w = image.shape
    if shift == "blur":
        return cv2.GaussianBlur(image, (0, 0), (1.0, 2.0)[severity])
    if shift == "downscale-upscale":
        factor = (2, 4)[severity]
        small = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if shift == "black border":
        margin = (0.08, 0.15)[severity]
        inner = (max(1, round(w * (1 - 2 * margin))), max(1, round(h * (1 - 2 * margin))))
        out = np.zeros_like(image)
        top, left = (h - inner[1]) // 2, (w - inner[0]) // 2
        out[top : top + inner[1], left : left + inner[0]] = cv2.resize(
            image, inner, interpolation=cv2.INTER_AREA
        )
        return out
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), (5.0, 10.0)[severity], 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


# (shift, largest pixel difference, largest mean difference) on [0, 1] films; measured:
# at most 2.4e-7 (blur, shrink-and-enlarge, border) and 2.2e-5 (rotation), float32 rounding
TOLERANCES = [
    ("blur", 1e-6, 1e-7),
    ("downscale-upscale", 1e-6, 1e-7),
    ("black border", 1e-6, 1e-7),
    ("rotation", 1e-4, 1e-6),
]


@pytest.mark.parametrize(("shift", "largest", "mean"), TOLERANCES)
def test_the_stress_shifts_are_opencvs(films, shift, largest, mean):
    for image in films:
        for severity in (0, 1):
            ours = apply_shift(image[None, ..., None], shift=shift, severity=severity)[0, ..., 0]
            theirs = np.clip(_opencv_shift(image, shift, severity), 0, 1)
            difference = np.abs(ours - theirs)
            assert ours.shape == theirs.shape and ours.dtype == np.float32
            assert difference.max() < largest and difference.mean() < mean, (shift, severity)


def test_the_saliency_blur_and_the_resizes_are_opencvs(films):
    for image in films:
        side = max(3, (min(image.shape) // 8) | 1)
        expected = cv2.GaussianBlur(image, (side, side), 0)
        np.testing.assert_allclose(blurred_baseline(image[..., None])[..., 0], expected, atol=1e-5)
        h, w = image.shape
        shrunk = cv2.resize(image, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(area_resize(image, h // 3, w // 3), shrunk, atol=1e-5)
        grown = cv2.resize(image, (w * 2 + 1, h * 3), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(
            bilinear_resize(image[..., None], h * 3, w * 2 + 1)[..., 0], grown, atol=1e-5
        )
