"""Heatmaps on the original X-ray: undo the model-input resize, then draw.

A heatmap is computed at the model input size; the input was made from the original
image by the artifact's resize mode (squash, pad or crop), so mapping the heatmap back
inverts that mode: squash stretches it back, pad drops the padding first, crop puts it
back on the central square (zero outside, where the model saw nothing).

Example:
    >>> from cxr_keras.config import ImageSpec
    >>> to_original(np.ones((64, 64)), ImageSpec(size=64, resize="crop"), height=100,
    ...             width=80).shape
    (100, 80)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cxr_keras.core.figures import pyplot, save_figure
from cxr_keras.core.image_spec import ImageSpec

__all__ = ["blend", "save_overlay", "to_original"]

MAX_DISPLAY = 1024  # the PNG's longest side; the .npy heatmap keeps the full size


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear, half-pixel centres (as the model input was resized)."""
    from cxr_keras.data.numpy_io import bilinear_resize

    return bilinear_resize(np.asarray(array, np.float32)[..., None], height, width)[..., 0]


def to_original(heatmap: np.ndarray, spec: ImageSpec, *, height: int, width: int) -> np.ndarray:
    """A model-input-size heatmap (h, w) as a map over the original (height, width)."""
    from cxr_keras.core.image_spec import NumpyOps, resize_target

    heatmap = np.asarray(heatmap, np.float32)
    target_h, target_w = spec.size
    if spec.resize == "pad":
        _, _, new_h, new_w = (int(v) for v in resize_target(height, width, spec=spec, xp=NumpyOps))
        top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
        return np.clip(
            _resize(heatmap[top : top + new_h, left : left + new_w], height, width), 0, 1
        )
    if spec.resize == "crop":
        side = min(height, width)
        out = np.zeros((height, width), np.float32)
        top, left = (height - side) // 2, (width - side) // 2
        out[top : top + side, left : left + side] = _resize(heatmap, side, side)
        return np.clip(out, 0, 1)
    return np.clip(_resize(heatmap, height, width), 0, 1)


def save_overlay(
    original: np.ndarray,
    heatmaps: Sequence[np.ndarray],
    *,
    titles: Sequence[str],
    path: str | os.PathLike,
    suptitle: str,
    alpha: float = 0.45,
    colormap: str = "jet",
) -> str:
    """The X-ray, then one panel per heatmap blended over it (each map over the original's
    full size; the figure is drawn at most :data:`MAX_DISPLAY` px per panel)."""
    plt = pyplot()
    image = np.asarray(original, np.float32)[..., 0]
    height, width = image.shape
    scale = min(1.0, MAX_DISPLAY / max(height, width))
    if scale < 1.0:  # draw a downsampled copy: a 3000 px film in a figure is only slower
        shown_h, shown_w = max(1, round(height * scale)), max(1, round(width * scale))
        image = _resize(image, shown_h, shown_w)
        heatmaps = [_resize(h, shown_h, shown_w) for h in heatmaps]
    panels = 1 + len(heatmaps)
    inch = 3.2
    fig, axes = plt.subplots(
        1, panels, figsize=(inch * panels * image.shape[1] / image.shape[0] + 0.2, inch + 0.6)
    )
    axes = np.atleast_1d(axes)
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("X-ray", fontsize=8)
    for ax, heat, title in zip(axes[1:], heatmaps, titles, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(heat, cmap=colormap, vmin=0, vmax=1, alpha=alpha)
        ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=9)
    return save_figure(fig, path, dpi=110)


def blend(
    original: np.ndarray,
    heatmap: np.ndarray,
    *,
    alpha: float = 0.45,
    colormap: str = "jet",
    max_side: int = MAX_DISPLAY,
) -> np.ndarray:
    """A heatmap over the original's full size, coloured and blended over the X-ray, as an
    RGB uint8 image at most ``max_side`` px on its longer side (for the app: no figure).

    Example:
        >>> blend(np.zeros((40, 20, 1)), np.ones((40, 20)), max_side=10).shape
        (10, 5, 3)
    """
    from matplotlib import colormaps

    image = np.asarray(original, np.float32)[..., 0]
    heat = np.asarray(heatmap, np.float32)
    height, width = image.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        shown_h, shown_w = max(1, round(height * scale)), max(1, round(width * scale))
        image, heat = _resize(image, shown_h, shown_w), _resize(heat, shown_h, shown_w)
    colour = colormaps[colormap](np.clip(heat, 0, 1))[..., :3]
    grey = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1)
    return np.round(255 * ((1 - alpha) * grey + alpha * colour)).astype(np.uint8)
