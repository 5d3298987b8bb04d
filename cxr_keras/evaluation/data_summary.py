"""The summary of a dataset, and a grid of its augmented training images
(``python -m cxr_keras.datasets summary``).

- :func:`summarize`: load, verify and split a config's data, and save a grid of augmented
  training images and, for several labels, the heatmap of the training split's label
  co-occurrence, under ``runs/<name>/data/``;
- :func:`summarize_dataset`: a named public dataset (kermany, nih, chexpert, rsna) as its
  provider ships it, or its label file alone, without reading images: counts, patients,
  views and co-occurrence of every row, under ``runs/datasets/<dataset>/``.

Both write ``summary.txt`` and ``summary.json`` (counts per split, patients, labels,
co-occurrence, skipped files by reason), ``manifest.csv`` and ``skipped.csv`` (every file
left out, with the reason).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.config import Config

__all__ = ["augmentation_grid", "summarize", "summarize_dataset"]

log = logging.getLogger("cxr_keras.datasets")


def summarize(cfg: Config, out_dir: Path | None = None, grid_columns: int = 8) -> dict:
    """Prepare the configured data, write the summary files, the augmentation grid and
    (several labels) the training split's co-occurrence heatmap.

    Returns the summary dict (as in ``summary.json``) plus ``out_dir`` and ``figures``.
    """
    from cxr_keras.data import manifest_labels, prepare_data, split_frame
    from cxr_keras.data.stats import co_occurrence, dataset_summary, format_summary
    from cxr_keras.evaluation.plots import co_occurrence_heatmap

    out_dir = Path(out_dir) if out_dir else cfg.run_dir / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=True)
    summary = dataset_summary(manifest)
    _write_summary(summary, format_summary(summary), manifest, out_dir)
    train = split_frame(manifest, "train")
    figures = {}
    if len(train) and grid_columns > 0:
        grid = augmentation_grid(
            cfg, train, path=out_dir / "augmentation_grid.png", columns=grid_columns
        )
        figures["augmentation_grid"] = grid
        print(f"augmentation grid: {grid}")
    labels = manifest_labels(manifest)
    if len(train) and len(labels) > 1:
        figures["co_occurrence_train"] = co_occurrence_heatmap(
            co_occurrence(train, labels),
            out_dir / "co_occurrence_train.png",
            f"Label co-occurrence, training split ({len(train)} images)",
        )
        print(f"training co-occurrence: {figures['co_occurrence_train']}")
    summary["out_dir"] = str(out_dir)
    summary["figures"] = figures
    return summary


def summarize_dataset(name: str, root: str | Path, out_dir: Path | None = None, **options) -> dict:
    """The summary of a named public dataset's labels (no image is read), written to
    ``out_dir`` (default ``runs/datasets/<name>``) as in :func:`summarize`.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> s = summarize_dataset("kermany", "sample:kermany", out)  # doctest: +ELLIPSIS
        262 images, ...
        >>> s["images"], s["patients"]
        (262, 186)
    """
    from cxr_keras.core.paths import resolve_path
    from cxr_keras.data.adapters import open_dataset
    from cxr_keras.data.stats import dataset_summary, format_summary

    manifest = open_dataset(name, resolve_path(str(root)), **options)
    out_dir = Path(out_dir) if out_dir else Path("runs") / "datasets" / name
    summary = dataset_summary(manifest)
    _write_summary(summary, format_summary(summary), manifest, out_dir)
    summary["out_dir"] = str(out_dir)
    return summary


def _write_summary(summary: dict, text: str, manifest: pd.DataFrame, out_dir: Path) -> None:
    from cxr_keras.data import skipped_files

    print(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.txt").write_text(text + "\n", encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    skipped_files(manifest).to_csv(out_dir / "skipped.csv", index=False)


def augmentation_grid(cfg: Config, train: pd.DataFrame, *, path: Path, columns: int = 8) -> str:
    """Save training images as the model sees them: the input, then two augmented draws
    (in-model augmentation and contrast preprocessing), and a MixUp/CutMix row if on."""
    import tensorflow as tf

    from cxr_keras.data.manifest import manifest_labels
    from cxr_keras.data.mixing import build_label_mixing
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.evaluation.plots import image_grid
    from cxr_keras.models.augment import build_augmentation, build_contrast_preprocessing

    labels = manifest_labels(train)
    mixing = build_label_mixing(
        mixup_alpha=cfg.augment.mixup_alpha, cutmix_alpha=cfg.augment.cutmix_alpha, seed=cfg.seed
    )
    ds = make_dataset(
        train,
        cfg.image,
        batch_size=min(columns, len(train)),
        training=True,
        seed=cfg.seed,
        cache="none",
        label_mixing=None,
    )
    x, y, _ = next(iter(ds))
    augment = build_augmentation(cfg.augment, seed=cfg.seed)
    contrast = build_contrast_preprocessing(cfg.preprocess)

    def model_view(images, training):
        if augment is not None and training:
            images = augment(images, training=True)
        if contrast is not None:
            images = contrast(images)
        return np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)

    rows = [model_view(x, training=False), model_view(x, True), model_view(x, True)]
    names = [
        "input" + (f" + {cfg.preprocess.contrast}" if contrast is not None else ""),
        "augmented",
        "augmented",
    ]
    if mixing is not None:
        mixed, _, _ = mixing(x, y, tf.ones_like(y))
        rows.append(model_view(mixed, training=False))
        names.append("MixUp/CutMix")
    titles = [
        ", ".join(lb for lb, v in zip(labels, row, strict=True) if v > 0.5) or "negative"
        for row in np.asarray(y)
    ]
    return image_grid(
        rows,
        row_titles=names,
        column_titles=titles,
        path=path,
        title=f"{cfg.name}: training images as the model sees them",
    )
