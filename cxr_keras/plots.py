"""Figures (matplotlib, PNG, no display needed).

Example:
    >>> import numpy as np, tempfile, os
    >>> rows = [np.zeros((2, 32, 32, 1)), np.ones((2, 32, 32, 1))]
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> image_grid(rows, ["original", "augmented"], ["a", "b"], path).endswith("grid.png")
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["image_grid"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def image_grid(
    rows: Sequence[np.ndarray],
    row_titles: Sequence[str],
    column_titles: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> str:
    """Save rows of grayscale images (each an array (n, H, W, 1) in [0, 1]) as one PNG."""
    plt = _pyplot()
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
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
