"""Figures (matplotlib, PNG, no display needed): image grids, and the evaluation
report's curves, confusion matrices, reliability diagram and training curves. Each
function draws one figure and returns the file it wrote.

Example:
    >>> import numpy as np, tempfile, os
    >>> rows = [np.zeros((2, 32, 32, 1)), np.ones((2, 32, 32, 1))]
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> titles = {"row_titles": ["original", "augmented"], "column_titles": ["a", "b"]}
    >>> image_grid(rows, **titles, path=path).endswith("grid.png")
    True
    >>> y = np.array([[0], [1], [1], [0]]); p = np.array([[0.2], [0.7], [0.9], [0.4]])
    >>> out = os.path.join(tempfile.mkdtemp(), "roc.png")
    >>> roc_pr_curves(
    ...     y, p, mask=np.ones_like(y), labels=["A"], thresholds={"youden": [0.7]}, path=out
    ... ).endswith(".png")
    True
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence

import numpy as np

from cxr_keras.artifact.calibration import reliability_bins
from cxr_keras.core.figures import pyplot, save_figure

__all__ = [
    "captioned_grid",
    "co_occurrence_heatmap",
    "confident_errors",
    "confusion_matrices",
    "image_grid",
    "reliability_diagram",
    "roc_comparison",
    "roc_pr_curves",
    "training_curves",
]


def image_grid(
    rows: Sequence[np.ndarray],
    *,
    row_titles: Sequence[str],
    column_titles: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> str:
    """Save rows of grayscale images (each an array (n, H, W, 1) in [0, 1]) as one PNG."""
    plt = pyplot()
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.9 * n_cols, 2.0 * n_rows + 0.4), squeeze=False
    )
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(np.asarray(images[c])[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_titles[r], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


_MARKERS = ("o", "s", "^", "D", "v")


def _grid(n: int, max_columns: int = 4) -> tuple[int, int]:
    columns = min(n, max_columns)
    return math.ceil(n / columns), columns


def roc_pr_curves(
    y: np.ndarray,
    p: np.ndarray,
    *,
    mask: np.ndarray,
    labels: Sequence[str],
    thresholds: dict[str, Sequence[float]],
    path: str | os.PathLike,
) -> str:
    """ROC and PR curves per label (two panels each) with each rule's operating point."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = pyplot()
    rows, columns = _grid(len(labels), 2)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(5.2 * columns, 2.7 * rows), squeeze=False)
    for j, label in enumerate(labels):
        ax_roc, ax_pr = (
            axes[j // columns][2 * (j % columns)],
            axes[j // columns][2 * (j % columns) + 1],
        )
        known = mask[:, j] > 0
        yj, pj = y[known, j], p[known, j]
        ax_roc.set_title(f"{label}: ROC", fontsize=9)
        ax_pr.set_title(f"{label}: precision-recall", fontsize=9)
        ax_roc.plot([0, 1], [0, 1], color="0.8", lw=0.8)
        if len(yj) and yj.min() != yj.max():
            fpr, tpr, _ = roc_curve(yj, pj)
            precision, recall, _ = precision_recall_curve(yj, pj)
            ax_roc.plot(fpr, tpr, lw=1.4)
            ax_pr.plot(recall, precision, lw=1.4)
            ax_pr.axhline(yj.mean(), color="0.8", lw=0.8)  # a random classifier's precision
            for k, (rule, values) in enumerate(thresholds.items()):
                predicted = pj >= values[j]
                sens = predicted[yj == 1].mean()
                fpr_point = predicted[yj == 0].mean()
                prec = yj[predicted].mean() if predicted.any() else 1.0
                style = {"marker": _MARKERS[k % len(_MARKERS)], "ls": "", "ms": 6}
                ax_roc.plot(fpr_point, sens, label=f"{rule} ({values[j]:.2f})", **style)
                ax_pr.plot(sens, prec, **style)
            ax_roc.legend(fontsize=6, loc="lower right")
        else:
            ax_roc.text(0.5, 0.5, "undefined: one class", ha="center", fontsize=8)
        ax_roc.set_xlabel("1 - specificity", fontsize=8)
        ax_roc.set_ylabel("sensitivity", fontsize=8)
        ax_pr.set_xlabel("recall", fontsize=8)
        ax_pr.set_ylabel("precision", fontsize=8)
        for ax in (ax_roc, ax_pr):
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.tick_params(labelsize=7)
    for k in range(len(labels), rows * columns):
        axes[k // columns][2 * (k % columns)].axis("off")
        axes[k // columns][2 * (k % columns) + 1].axis("off")
    return save_figure(fig, path)


def roc_comparison(
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    *,
    mask: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
) -> str:
    """ROC curves of several models on the same images, one panel per label, each
    model's AUC in the legend (``probabilities``: model name -> (n, labels) array)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    rows, columns = _grid(len(labels), 3)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for j, label in enumerate(labels):
        ax = axes[j // columns][j % columns]
        known = mask[:, j] > 0
        yj = y[known, j]
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
        if len(yj) and yj.min() != yj.max():
            for name, p in probabilities.items():
                fpr, tpr, _ = roc_curve(yj, p[known, j])
                ax.plot(fpr, tpr, lw=1.4, label=f"{name} ({roc_auc_score(yj, p[known, j]):.3f})")
            ax.legend(fontsize=6, loc="lower right")
        else:
            ax.text(0.5, 0.5, "undefined: one class", ha="center", fontsize=8)
        ax.set_title(f"{label}: ROC", fontsize=9)
        ax.set_xlabel("1 - specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
        ax.tick_params(labelsize=7)
    for k in range(len(labels), rows * columns):
        axes[k // columns][k % columns].axis("off")
    return save_figure(fig, path)


def confusion_matrices(matrices: dict[str, dict], rule: str, path: str | os.PathLike) -> str:
    """Confusion matrices per label at one rule's thresholds (``{label: metrics}`` as
    :func:`~cxr_keras.evaluation.metrics.threshold_metrics` returns them)."""
    plt = pyplot()
    rows, columns = _grid(len(matrices))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), squeeze=False)
    for k, (label, m) in enumerate(matrices.items()):
        ax = axes[k // columns][k % columns]
        grid = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        ax.imshow(grid, cmap="Blues")
        for (r, c), value in np.ndenumerate(grid):
            color = "white" if value > grid.max() / 2 else "black"
            ax.text(c, r, str(value), ha="center", va="center", color=color, fontsize=10)
        ax.set_xticks([0, 1], ["pred. neg", "pred. pos"], fontsize=7)
        ax.set_yticks([0, 1], ["negative", "positive"], fontsize=7)
        ax.set_title(textwrap.fill(f"{label} @ {m['threshold']:.2f}", 34), fontsize=8)
    for k in range(len(matrices), rows * columns):
        axes[k // columns][k % columns].axis("off")
    fig.suptitle(f"confusion matrices at the {rule} thresholds", fontsize=9)
    return save_figure(fig, path)


def reliability_diagram(
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    *,
    mask: np.ndarray,
    path: str | os.PathLike,
    bins: int = 15,
) -> str:
    """Observed frequency against mean predicted probability per bin, pooled over the
    known entries of all labels, for each set of probabilities (e.g. before/after
    temperature scaling); marker area shows the bin's size."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, label="perfect calibration")
    known = mask > 0
    for name, p in probabilities.items():
        table = reliability_bins(y[known], p[known], bins)
        counts = np.array([b["count"] for b in table])
        ax.plot([b["mean_probability"] for b in table], [b["observed"] for b in table], lw=1.0)
        ax.scatter(
            [b["mean_probability"] for b in table],
            [b["observed"] for b in table],
            s=10 + 200 * counts / counts.max(),
            label=name,
            alpha=0.7,
        )
    ax.set_xlabel(f"mean predicted probability ({bins} bins)", fontsize=8)
    ax.set_ylabel("observed frequency", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


def training_curves(history: Sequence[dict], monitor: str, path: str | os.PathLike) -> str:
    """Loss, the monitored metric and (when logged) the accuracy at probability 0.5 per
    epoch, training and validation."""
    plt = pyplot()
    metric = monitor.removeprefix("val_")
    names = ["loss", metric]
    if metric != "binary_accuracy" and any("binary_accuracy" in row for row in history):
        names.append("binary_accuracy")
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3))
    epochs = [int(row.get("epoch", i)) + 1 for i, row in enumerate(history)]
    for ax, name in zip(axes, names, strict=True):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=key)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    return save_figure(fig, path)


def captioned_grid(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    *,
    path: str | os.PathLike,
    colors: Sequence[str] | None = None,
    empty: str = "no images",
    columns: int = 6,
) -> str:
    """A grid of images (H, W, 1) in [0, 1], each with its caption (in ``colors[k]`` when
    given, e.g. green for a right decision and red for a wrong one)."""
    plt = pyplot()
    rows, columns = _grid(max(1, len(images)), columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.6 * rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < len(images):
            ax.imshow(np.asarray(images[k])[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(captions[k], fontsize=6, color=colors[k] if colors else "black")
    if not images:
        axes[0][0].text(0.5, 0.5, empty, ha="center")
    return save_figure(fig, path)


def confident_errors(
    images: Sequence[np.ndarray], captions: Sequence[str], path: str | os.PathLike
) -> str:
    """A grid of images (H, W, 1) in [0, 1], each with its caption."""
    return captioned_grid(images, captions, path=path, empty="no errors")


def co_occurrence_heatmap(matrix, path: str | os.PathLike, title: str) -> str:
    """A label co-occurrence matrix (a square DataFrame of image counts, as
    :func:`cxr_keras.data.stats.co_occurrence` returns) as a heatmap with the counts
    written in, coloured on a log scale so rare pairs stay visible."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    names = [str(c) for c in matrix.columns]
    side = max(4.0, 0.45 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(np.log1p(counts), cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    light = np.log1p(counts.max()) / 2 if counts.size else 0
    for (r, c), value in np.ndenumerate(counts):
        ax.text(
            c,
            r,
            f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=6,
            color="black" if np.log1p(value) > light else "white",
        )
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="log(1 + images)")
    return save_figure(fig, path)
