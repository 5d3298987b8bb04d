"""Learning curves: validation AUC against training-set size and input size, per backbone.

Each point (backbone, input size, fraction of the training patients) trains the recipe
(``configs/kermany_full.yaml``: the whole official Kermany TRAIN set from the two
development packs, split by patient) from scratch, with ``weights: none``, for
``--epochs`` epochs through the toolkit's own ``train``, and reports the validation ROC
AUC of its best epoch, its validation accuracy at 0.5, the seconds per epoch and the
wall time. Validation is always the same patient-disjoint split; ``data.split.
train_fraction`` thins only the training patients.

Rows are appended to ``runs/learning_curve/results.csv`` as each point finishes; a point
already there is not retrained, so an interrupted sweep resumes. Prints the table.

Usage:
    python benchmarks/learning_curve.py [--points custom_cnn:160:1.0,mobilenetv3small:128:1.0]
        [--epochs 8] [--recipe configs/kermany_full.yaml]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from resumable_results import append_row, read_rows  # noqa: E402

DEFAULT_POINTS = (
    "custom_cnn:128:1.0,custom_cnn:160:1.0,custom_cnn:224:1.0,"
    "custom_cnn:160:0.25,custom_cnn:160:0.5,"
    "mobilenetv3small:128:1.0,mobilenetv3small:160:1.0,efficientnetb0:128:1.0"
)
FIELDS = ["backbone", "size", "fraction", "epochs", "train_images", "val_auc", "val_accuracy"]
FIELDS += ["best_epoch", "seconds_per_epoch", "wall_s"]


def run_point(recipe: Path, backbone: str, size: int, fraction: float, epochs: int) -> dict:
    """Train one point and return its row."""
    from cxr_keras.config import load_config
    from cxr_keras.training.train import train

    name = f"lc_{backbone}_{size}_{fraction:g}_{epochs}e"
    overrides = [
        f"name={name}",
        f"model.backbone={backbone}",
        "model.weights=none",
        f"image.size={size}",
        f"data.split.train_fraction={fraction}",
        f"training.epochs={epochs}",
        "training.early_stopping_patience=0",
        "training.tensorboard=false",
    ]
    cfg = load_config(recipe, overrides)
    start = time.perf_counter()
    artifact = train(cfg, run_dir=REPO / "runs" / "learning_curve" / name, progress=False)
    wall = time.perf_counter() - start
    history = artifact.meta["training"]["history"]  # one dict per epoch
    best = max(history, key=lambda row: row["val_auc"])
    summary = artifact.meta["data"]["summary"]
    return {
        "backbone": backbone,
        "size": size,
        "fraction": fraction,
        "epochs": epochs,
        "train_images": summary["splits"]["train"]["images"],
        "val_auc": round(best["val_auc"], 4),
        "val_accuracy": round(best["val_binary_accuracy"], 4),
        "best_epoch": int(best["epoch"]) + 1,
        "seconds_per_epoch": round(wall / max(1, len(history)), 1),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=DEFAULT_POINTS, help="backbone:size:fraction,...")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "kermany_full.yaml")
    args = parser.parse_args()

    out = REPO / "runs" / "learning_curve" / "results.csv"
    done = read_rows(out)
    for point in args.points.split(","):
        backbone, size, fraction = point.split(":")
        key = (backbone, size, f"{float(fraction):g}", str(args.epochs))
        if any(
            (r["backbone"], r["size"], f"{float(r['fraction']):g}", r["epochs"]) == key
            for r in done
        ):
            continue
        row = run_point(args.recipe, backbone, int(size), float(fraction), args.epochs)
        done.append(append_row(out, row, fields=FIELDS))
        print(f"done: {row}", flush=True)
    print(
        f"{'backbone':<18}{'size':>5}{'frac':>6}{'train':>7}{'val AUC':>9}{'val acc':>9}"
        f"{'best':>6}{'s/epoch':>9}"
    )
    for r in done:
        print(
            f"{r['backbone']:<18}{r['size']:>5}{float(r['fraction']):>6.2f}{r['train_images']:>7}"
            f"{float(r['val_auc']):>9.4f}{float(r['val_accuracy']):>9.4f}{r['best_epoch']:>6}"
            f"{float(r['seconds_per_epoch']):>9.1f}"
        )


if __name__ == "__main__":
    main()
