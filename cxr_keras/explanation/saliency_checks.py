"""Checks that say whether heatmaps can be trusted.

- Model randomisation (Adebayo et al. 2018): re-draw the trainable weights from the top
  layer down, stage by stage, and compare the heatmaps with the trained model's by
  Spearman rank correlation. A method that explains the model must change (correlation
  falls); one that only reflects the image (an edge detector) does not.
- Faithfulness (Petsiuk et al. 2018, RISE): deletion sets the most salient pixels to 0
  first and tracks the probability (a faithful map makes it fall fast: low AUC);
  insertion starts from a blurred copy of the image and restores them (rises fast: high
  AUC). Curves over ``steps`` equal fractions of the pixels; AUC over [0, 1].
- Localisation against boxes: the pointing game (the map's maximum falls in the box,
  with a tolerance in pixels, as Zhang et al. 2018) and IoU of the map thresholded at a
  fraction of its maximum with the box.

Example:
    >>> heat = np.zeros((10, 10)); heat[2, 7] = 1.0
    >>> pointing_game(heat, (6, 1, 3, 3)), pointing_game(heat, (0, 5, 3, 3))
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "blurred_baseline",
    "box_iou",
    "deletion_insertion",
    "pointing_game",
    "randomization_check",
]


def pointing_game(heatmap: np.ndarray, box: Sequence[float], tolerance: int = 0) -> bool:
    """True when the heatmap's maximum lies within ``tolerance`` px of the box
    ``(x, y, width, height)`` (pixels of the heatmap's image)."""
    if not np.any(np.asarray(heatmap) > 0):  # an empty map points nowhere
        return False
    row, col = np.unravel_index(int(np.argmax(heatmap)), np.shape(heatmap))
    x, y, w, h = box
    return bool(
        x - tolerance <= col < x + w + tolerance and y - tolerance <= row < y + h + tolerance
    )


def box_iou(heatmap: np.ndarray, box: Sequence[float], threshold: float = 0.5) -> float:
    """IoU of {heatmap >= threshold * max} with the box ``(x, y, width, height)``."""
    heatmap = np.asarray(heatmap, np.float64)
    peak = heatmap.max()
    predicted = heatmap >= threshold * peak if peak > 0 else np.zeros(heatmap.shape, bool)
    x, y, w, h = (int(np.round(v)) for v in box)
    truth = np.zeros(heatmap.shape, bool)
    truth[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = True
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 0.0


def blurred_baseline(image: np.ndarray) -> np.ndarray:
    """The (H, W, 1) film under a Gaussian blur an eighth of its side wide, the baseline
    that insertion starts from: the sigma OpenCV derives from that kernel size, truncated at
    the kernel's edge, edges reflected.

    Example:
        >>> flat = np.full((16, 16, 1), 0.5, np.float32)
        >>> bool(np.allclose(blurred_baseline(flat), 0.5))
        True
    """
    from scipy.ndimage import gaussian_filter

    side = max(3, (min(image.shape[:2]) // 8) | 1)  # odd kernel, an eighth of the image
    sigma = 0.3 * ((side - 1) * 0.5 - 1) + 0.8
    blurred = gaussian_filter(
        np.asarray(image[..., 0], np.float32), sigma, mode="mirror", radius=(side - 1) // 2
    )
    return blurred[..., None]


def deletion_insertion(
    predict, image: np.ndarray, heatmap: np.ndarray, *, label_index: int, steps: int = 20
) -> dict:
    """Deletion and insertion curves of one model input (H, W, 1) and its heatmap (H, W).

    ``predict(images) -> probabilities (n, labels)``. Returns the curves, the fractions of
    pixels changed, and their AUCs.
    """
    from sklearn.metrics import auc

    order = np.argsort(-np.asarray(heatmap).ravel(), kind="stable")  # most salient first
    blurred = blurred_baseline(image)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deleted, inserted = [], []
    for fraction in fractions:
        chosen = np.zeros(order.size, bool)
        chosen[order[: int(np.round(fraction * order.size))]] = True
        chosen = chosen.reshape(image.shape[:2])[..., None]
        deleted.append(np.where(chosen, 0.0, image))
        inserted.append(np.where(chosen, image, blurred))
    p = np.asarray(predict(np.stack(deleted + inserted).astype(np.float32)))[:, label_index]
    deletion, insertion = p[: len(fractions)], p[len(fractions) :]
    return {
        "fractions": fractions.tolist(),
        "deletion": deletion.tolist(),
        "insertion": insertion.tolist(),
        "deletion_auc": float(auc(fractions, deletion)),
        "insertion_auc": float(auc(fractions, insertion)),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; NaN when one is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _learned(layer) -> list:
    """A layer's learned weights, trainable or frozen (not BatchNorm's moving statistics,
    which are measured, not learned)."""
    return [w for w in layer.weights if not w.name.split("/")[-1].startswith("moving_")]


def _reinitialized(layer, weight, rng) -> np.ndarray:
    """Fresh values for a weight from its layer's own initializer (a kernel from
    ``kernel_initializer``, BatchNorm's gamma from ones, ...), as Adebayo et al. re-draw
    them; a normal of the weight's spread where the layer names no initializer."""
    name = weight.name.split("/")[-1]
    for attribute in (f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer"):
        initializer = getattr(layer, attribute, None)
        if initializer is not None:
            return np.asarray(initializer(tuple(weight.shape), dtype=weight.dtype))
    values = np.asarray(weight)
    return rng.normal(0.0, values.std() or 0.05, values.shape).astype(values.dtype)


def randomization_check(
    model,
    images: np.ndarray,
    *,
    layer: str,
    label_index: int,
    method: str = "gradcam",
    stages: int = 4,
    seed: int = 0,
) -> list[dict]:
    """Cascading randomisation, top down, in ``stages`` cumulative steps over the layers
    with learned weights, frozen ones included (the first step re-initialises the logits
    layer alone). Each entry:
    which layers are randomised so far and the mean Spearman correlation between the
    trained and the randomised model's maps (1.0 = unchanged). The model is not modified.
    """
    import keras

    from cxr_keras.explanation.gradcam import GradCam
    from cxr_keras.explanation.graph import walk_layers

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    _, reference = GradCam(model, [layer], method)(images, [label_index])
    layers = [lay for lay in walk_layers(clone) if _learned(lay)][::-1]  # top first, frozen too
    if not layers:
        raise ValueError(f"model {model.name!r} has no weights to randomise")
    cuts = sorted({1, *np.linspace(1, len(layers), stages).round().astype(int).tolist()})
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    randomized = GradCam(clone, [layer], method)  # traced once; reads the weights as they change
    results, done = [], 0
    for cut in cuts:
        for lay in layers[done:cut]:
            for weight in _learned(lay):
                weight.assign(_reinitialized(lay, weight, rng))
        done = cut
        _, maps = randomized(images, [label_index])
        correlations = np.array(
            [_spearman(reference[layer][i, 0], maps[layer][i, 0]) for i in range(len(images))]
        )
        defined = correlations[~np.isnan(correlations)]
        results.append(
            {
                "randomized_layers": cut,
                "down_to": layers[cut - 1].name,
                "spearman": float(defined.mean()) if len(defined) else None,
                "images_compared": len(defined),
            }
        )
    return results
