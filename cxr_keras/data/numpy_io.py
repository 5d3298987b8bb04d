"""The model input without TensorFlow: :func:`load_image` of :mod:`cxr_keras.data.io`
rewritten in NumPy, Pillow and pydicom, for the lightweight serving path (an exported
model run by onnxruntime, where importing TensorFlow would cost seconds per call).

It keeps every rule of the TensorFlow path, so a film gives the very same model input on
both (``tests/test_light_serving.py`` compares them on real films and DICOMs). One
exception: a colourful PNG's gray may be one level apart (libpng's luma and Pillow's round
differently); such an image is flagged out of distribution by the colour check anyway.

- PNG read as 16 bit (an 8-bit file widened exactly, x 257), a 16-bit file scaled by the
  range its values use (2**bits - 1 for the fewest bits, 8 to 16, that hold its peak);
  JPEG decoded straight to gray by libjpeg-turbo with TensorFlow's fast integer DCT
  (simplejpeg); BMP and GIF as RGB then ITU-R 601 luma; DICOM through the same
  :func:`~cxr_keras.data.io.decode_dicom`;
- the same border crop (:func:`content_box`, the TensorFlow one line for line), square
  crop or padding, and resize plan: halvings by bilinear interpolation at a factor of 2,
  then one bilinear step. The bilinear resize is TensorFlow's (half-pixel centres, no
  antialiasing), written out because neither Pillow nor OpenCV computes that one.

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> from cxr_keras.sample_data import sample_files
    >>> x = load_image_numpy(sample_files("kermany")[0], ImageSpec(size=128))
    >>> x.shape, x.dtype.name
    ((128, 128, 1), 'float32')
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cxr_keras.core.image_spec import (
    ImageSpec,
    NumpyOps,
    max_resize_steps,
    resize_steps,
    resize_target,
)
from cxr_keras.data.borders import BORDER_MIN_FRACTION, BORDER_MIN_KEEP, BORDER_TOLERANCE
from cxr_keras.data.io import ImageDecodeError, decode_dicom, decoder_kind, read_header

__all__ = [
    "area_resize",
    "bilinear_resize",
    "content_box",
    "decode_file",
    "load_image_numpy",
    "prepare_image",
]

# ITU-R 601 luma, the weights of tf.image.rgb_to_grayscale
_LUMA = np.array([0.2989, 0.587, 0.114], np.float32)
_PNG_LEVELS = [2**bits - 1 for bits in range(8, 17)]


def _axis_weights(in_size: int, out_size: int):
    """TensorFlow's bilinear sampling along one axis (half-pixel centres), in float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    where = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(where)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(where), in_size - 1).astype(np.int64)
    return lower, upper, (where - floor).astype(np.float32)


def bilinear_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(image, (height, width), "bilinear")`` of an (H, W, 1) image, in
    float32 with TensorFlow's order of operations.

    Example:
        >>> x = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
        >>> bilinear_resize(x, 2, 2)[..., 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    x = np.asarray(image, np.float32)[..., 0]
    y0, y1, y_lerp = _axis_weights(x.shape[0], height)
    x0, x1, x_lerp = _axis_weights(x.shape[1], width)
    top_left, top_right = x[y0][:, x0], x[y0][:, x1]
    bottom_left, bottom_right = x[y1][:, x0], x[y1][:, x1]
    top = top_left + (top_right - top_left) * x_lerp
    bottom = bottom_left + (bottom_right - bottom_left) * x_lerp
    return (top + (bottom - top) * y_lerp[:, None])[..., None]


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W) float image shrunk to (height, width), each output pixel the mean of the
    input area it covers, partly covered pixels weighted by the part (OpenCV's
    ``INTER_AREA`` when shrinking; Pillow's BOX filter counts a pixel whole or not at all).
    The display previews and the stress shifts use it.

    Example:
        >>> x = np.arange(36, dtype=np.float32).reshape(6, 6)
        >>> [round(float(v), 3) for v in area_resize(x, 4, 4)[0]]
        [2.333, 3.667, 5.333, 6.667]
    """
    x = np.asarray(image, np.float64)
    rows = _area_weights(x.shape[0], height)
    cols = _area_weights(x.shape[1], width)
    return (rows @ x @ cols.T).astype(np.float32)


def _area_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in): the share of each output pixel's span that each input pixel covers."""
    scale = in_size / out_size
    edges = np.arange(out_size + 1) * scale  # output pixel i spans [edges[i], edges[i + 1]]
    starts = np.arange(in_size)
    overlap = np.minimum(edges[1:, None], starts + 1) - np.maximum(edges[:-1, None], starts)
    return np.clip(overlap, 0, None) / scale


def _resize(image: np.ndarray, height: int, width: int, steps: int) -> np.ndarray:
    """The resize plan of :func:`cxr_keras.data.io.prepare_image`: halvings, then one step."""
    if steps == -1:
        return np.asarray(image, np.float32)
    for _ in range(steps):
        h, w = image.shape[:2]
        halved_h = (h + 1) // 2 if h >= 2 * height else h
        halved_w = (w + 1) // 2 if w >= 2 * width else w
        image = bilinear_resize(image, halved_h, halved_w)
    return bilinear_resize(image, height, width)


def _leading_frame_lines(lines: np.ndarray, value, tolerance: float, min_fraction: float) -> int:
    close = (np.abs(lines - value) <= tolerance).astype(np.float32)
    is_frame = (close.mean(axis=1) >= min_fraction).astype(np.int32)
    return int(np.cumprod(is_frame).sum())


def content_box(
    image: np.ndarray,
    *,
    scale: float = 1.0,
    tolerance: float = BORDER_TOLERANCE,
    min_fraction: float = BORDER_MIN_FRACTION,
    min_keep: float = BORDER_MIN_KEEP,
) -> tuple[int, int, int, int]:
    """:func:`cxr_keras.data.borders.content_box` in NumPy: ``(top, left, height, width)``."""
    x = np.asarray(image, np.float32)[..., 0] * np.float32(scale)
    height, width = x.shape

    def frame(lines):
        return _leading_frame_lines(
            lines, np.sort(lines[0])[len(lines[0]) // 2], tolerance, min_fraction
        )

    def guard(start, end, size):
        whole = np.float32(size - start - end) < np.float32(min_keep) * np.float32(size)
        return (0, 0) if whole else (start, end)

    top = bottom = left = right = 0
    for _ in range(2):
        rows = x[:, left : width - right]
        columns = x[top : height - bottom, :].T
        top, bottom = guard(frame(rows), frame(rows[::-1]), height)
        left, right = guard(frame(columns), frame(columns[::-1]), width)
    return top, left, height - top - bottom, width - left - right


def prepare_image(image: np.ndarray, spec: ImageSpec, *, scale: float = 1.0, steps=None):
    """:func:`cxr_keras.data.io.prepare_image` in NumPy: (H, W, 1) -> the model input."""
    target_h, target_w = spec.size
    steps = max_resize_steps(spec) if steps is None else steps
    if spec.crop_borders:
        top, left, height, width = content_box(image, scale=scale)
        image = image[top : top + height, left : left + width]
        steps = max(steps, 0)
    if spec.resize == "crop":
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        image = image[top : top + side, left : left + side]
    if spec.resize == "pad":
        _, _, new_h, new_w = (
            int(v) for v in resize_target(image.shape[0], image.shape[1], spec=spec, xp=NumpyOps)
        )
        inner = _resize(image, new_h, new_w, steps)
        out = np.zeros((target_h, target_w, 1), np.float32)
        top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
        out[top : top + new_h, left : left + new_w] = inner
        image = out
    else:
        image = _resize(image, target_h, target_w, steps)
    if scale != 1.0:
        image = image * np.float32(scale)
    return image.astype(np.float32)


def decode_file(path: str | os.PathLike, spec: ImageSpec, fmt: str) -> tuple[np.ndarray, float]:
    """``(image (H, W, 1), scale)`` of a file as the TensorFlow decoders give it: its own
    integer type where it has one, ``image * scale`` in [0, 1]."""
    from PIL import Image

    kind = decoder_kind(fmt)
    if kind == "dicom":
        return decode_dicom(path, spec)[..., None], 1.0
    with Image.open(path) as opened:
        if kind == "jpeg":
            return _jpeg(path, opened), 1.0 / 255.0
        if kind == "png":
            return _png(opened)
        rgb = np.asarray(opened.convert("RGB"), np.float32) / np.float32(255.0)
        return (rgb @ _LUMA)[..., None], 1.0


def _jpeg(path, opened) -> np.ndarray:
    """A JPEG as TensorFlow's ``decode_jpeg(channels=1)`` reads it: libjpeg-turbo's fast
    integer DCT (TensorFlow's default; Pillow has only the accurate one, up to 5 gray
    levels apart) writing gray itself. simplejpeg exposes that decoder; without it, or
    for a JPEG it cannot read (CMYK), Pillow's is within a few gray levels."""
    try:
        import simplejpeg

        gray = simplejpeg.decode_jpeg(Path(path).read_bytes(), colorspace="GRAY", fastdct=True)
        return np.asarray(gray, np.uint8).reshape(gray.shape[0], gray.shape[1], 1)
    except (ImportError, ValueError):
        if opened.mode != "L":
            opened.draft("L", opened.size)  # libjpeg writes gray itself
        return np.asarray(opened.convert("L"), np.uint8)[..., None]


def _png(opened) -> tuple[np.ndarray, float]:
    """A PNG as TensorFlow's ``decode_png(channels=1, dtype=uint16)`` reads it, and its scale."""
    if opened.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit gray
        pixels = np.asarray(opened, np.int64).astype(np.uint16)
        peak = int(pixels.max())
        levels = next((lv for lv in _PNG_LEVELS if lv >= peak), 65535)
        return pixels[..., None], float(np.float32(1.0) / np.float32(levels))
    gray = opened.convert("L") if opened.mode != "L" else opened
    pixels = np.asarray(gray, np.uint16) * np.uint16(257)  # 8 bit widened exactly
    return pixels[..., None], 1.0 / 65535.0


def load_image_numpy(path: str | os.PathLike, spec: ImageSpec | None = None) -> np.ndarray:
    """:func:`cxr_keras.data.io.load_image` without TensorFlow: float32 (h, w, 1) in [0, 1].
    Raises :class:`~cxr_keras.data.io.ImageDecodeError` naming the file."""
    spec = spec or ImageSpec()
    header = read_header(path, spec)
    steps = resize_steps(header.height, header.width, spec)
    try:
        image, scale = decode_file(path, spec, header.format)
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's decoders
        raise ImageDecodeError(
            Path(path), f"cannot decode {header.format.upper()} ({exc})", "decode_failed"
        ) from None
    return prepare_image(image, spec, scale=scale, steps=steps)
