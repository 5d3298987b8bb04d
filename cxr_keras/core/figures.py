"""Figure plumbing shared by every layer that draws: matplotlib without a display."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 90) -> str:
    """Lay out, write (creating the folder) and close a figure; returns the path."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return str(path)
