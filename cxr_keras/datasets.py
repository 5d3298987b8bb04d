"""``python -m cxr_keras.datasets summary``: load, verify and split a configured dataset,
print its summary, and save a grid of augmented training images.

Writes to ``runs/<name>/data/``: ``summary.txt`` and ``summary.json`` (counts per split,
patients, labels, co-occurrence, skipped files by reason), ``manifest.csv`` (every usable
image with its split), ``skipped.csv`` (every file left out, with the reason) and
``augmentation_grid.png``.

Example:
    python -m cxr_keras.datasets summary --config tuner_configs/demo.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.cli import add_config_arguments, config_from_args, run_cli, setup_logging
from cxr_keras.config import Config

__all__ = ["augmentation_grid", "main", "summarize"]

log = logging.getLogger("cxr_keras.datasets")


def summarize(cfg: Config, out_dir: Path | None = None, grid_columns: int = 8) -> dict:
    """Prepare the configured data, write the summary files and the augmentation grid.

    Returns the summary dict (as in ``summary.json``) plus ``out_dir``.
    """
    from cxr_keras.data import prepare_data, skipped_files, split_frame
    from cxr_keras.data.stats import dataset_summary, format_summary

    out_dir = Path(out_dir) if out_dir else cfg.run_dir / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=True)
    summary = dataset_summary(manifest)
    text = format_summary(summary)
    print(text)
    (out_dir / "summary.txt").write_text(text + "\n", encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    skipped_files(manifest).to_csv(out_dir / "skipped.csv", index=False)
    train = split_frame(manifest, "train")
    if len(train) and grid_columns > 0:
        grid = augmentation_grid(cfg, train, out_dir / "augmentation_grid.png", grid_columns)
        print(f"augmentation grid: {grid}")
    summary["out_dir"] = str(out_dir)
    return summary


def augmentation_grid(cfg: Config, train: pd.DataFrame, path: Path, columns: int = 8) -> str:
    """Save training images as the model sees them: the input, then two augmented draws
    (in-model augmentation and contrast preprocessing), and a MixUp/CutMix row if on."""
    import tensorflow as tf

    from cxr_keras.data.augment import (
        build_augmentation,
        build_contrast_preprocessing,
        build_label_mixing,
    )
    from cxr_keras.data.manifest import manifest_labels
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.plots import image_grid

    labels = manifest_labels(train)
    mixing = build_label_mixing(cfg.augment, seed=cfg.seed)
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
        rows, names, titles, path, title=f"{cfg.name}: training images as the model sees them"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.datasets", description="Dataset tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="load, verify and split a dataset; print counts")
    add_config_arguments(summary)
    summary.add_argument("--out", type=Path, help="output folder (default runs/<name>/data)")
    summary.add_argument(
        "--grid",
        type=int,
        default=8,
        metavar="N",
        help="images per row of the augmentation grid (0: no grid)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = config_from_args(args)
    result = summarize(cfg, args.out, args.grid)
    log.info("wrote %s", result["out_dir"])
    return 0


if __name__ == "__main__":
    run_cli(main)
