"""Border cropping: remove uniform frames (black, white or gray padding, burned-in frame
bands) around a radiograph before it is resized, so the lungs fill the model input.

Film scanners, DICOM exports and dataset conversions often pad a radiograph to a square
or a fixed size. Squashing such an image wastes input pixels on the frame and changes the
anatomy's apparent size from one image to the next. :func:`content_box` finds, from each
side, the run of lines that are uniform: at least ``min_fraction`` of their pixels within
``tolerance`` of that side's frame value (the median of its outermost line). Small text
burned into the frame (a marker, a label) covers too few pixels to stop the crop; a line
through the body is far from uniform. Frames of different kinds on different sides are
found in two passes. When the crop would keep less than ``min_keep`` of a
side, that side is left whole (an almost uniform image is not a frame).

TensorFlow ops, so :func:`cxr_keras.data.io.prepare_image` runs the very same crop at
training, evaluation and prediction time (``image.crop_borders: true`` in the recipe).

Example:
    >>> import numpy as np
    >>> image = np.zeros((100, 80, 1), np.float32)  # a black frame ...
    >>> image[10:90, 5:70] = np.random.default_rng(0).uniform(0.2, 0.9, (80, 65, 1))
    >>> [int(v) for v in content_box(image)]  # ... around the film: top, left, height, width
    [10, 5, 80, 65]
"""

from __future__ import annotations

__all__ = [
    "BORDER_MIN_FRACTION",
    "BORDER_MIN_KEEP",
    "BORDER_TOLERANCE",
    "content_box",
    "crop_borders",
]

#: How far (in [0, 1] intensity) a frame pixel may be from the frame's value (JPEG noise).
BORDER_TOLERANCE = 0.03
#: The share of a line's pixels that must be frame for the line to be frame (text allowed).
BORDER_MIN_FRACTION = 0.95
#: The least share of each side the crop keeps; a larger crop leaves that side whole.
BORDER_MIN_KEEP = 0.5


def _tf():
    import tensorflow as tf

    return tf


def _leading_frame_lines(lines, value, tolerance: float, min_fraction: float):
    """How many of ``lines`` (each a row of pixels), from the first on, are frame."""
    tf = _tf()
    close = tf.cast(tf.abs(lines - value) <= tolerance, tf.float32)
    is_frame = tf.cast(tf.reduce_mean(close, axis=1) >= min_fraction, tf.int32)
    return tf.reduce_sum(tf.math.cumprod(is_frame))


def _median(line):
    tf = _tf()
    ordered = tf.sort(line)
    return ordered[tf.shape(ordered)[0] // 2]


def content_box(
    image,
    *,
    scale: float = 1.0,
    tolerance: float = BORDER_TOLERANCE,
    min_fraction: float = BORDER_MIN_FRACTION,
    min_keep: float = BORDER_MIN_KEEP,
):
    """``(top, left, height, width)`` of the part of an (H, W, 1) image inside its uniform
    frame; the whole image when it has none. ``image * scale`` must be in [0, 1].
    """
    tf = _tf()
    x = tf.cast(tf.convert_to_tensor(image)[..., 0], tf.float32) * scale
    height, width = tf.shape(x)[0], tf.shape(x)[1]

    def frame(lines):  # lines: the image seen from one side, outermost line first
        return _leading_frame_lines(lines, _median(lines[0]), tolerance, min_fraction)

    def guard(start, end, size):  # a crop keeping under min_keep of a side is no frame
        whole = tf.cast(size - start - end, tf.float32) < min_keep * tf.cast(size, tf.float32)
        return tf.where(whole, 0, start), tf.where(whole, 0, end)

    # Frames of different kinds meet at the corners (white left, black top): the first
    # pass finds the sides whose lines run through the corners, the second the others,
    # each side now measured between the frames found across it.
    top = bottom = left = right = tf.constant(0)
    for _ in range(2):
        rows = x[:, left : width - right]
        columns = tf.transpose(x[top : height - bottom, :])
        top, bottom = guard(frame(rows), frame(tf.reverse(rows, axis=[0])), height)
        left, right = guard(frame(columns), frame(tf.reverse(columns, axis=[0])), width)
    return top, left, height - top - bottom, width - left - right


def crop_borders(image, scale: float = 1.0, **options):
    """The image without its uniform frame (see :func:`content_box`); same dtype.

    Example:
        >>> import numpy as np
        >>> film = np.random.default_rng(0).integers(60, 220, (50, 40, 1), dtype=np.uint8)
        >>> padded = np.pad(film, ((5, 5), (0, 30), (0, 0)))  # black above, below, right
        >>> tuple(crop_borders(padded, 1 / 255).shape)
        (50, 40, 1)
    """
    tf = _tf()
    top, left, height, width = content_box(image, scale=scale, **options)
    return tf.image.crop_to_bounding_box(image, top, left, height, width)
