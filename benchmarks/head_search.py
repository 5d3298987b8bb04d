"""A head-only search with and without the feature cache, side by side.

The ``kermany_resnet50_tuned`` search (``cxr_keras/recipes/kermany_resnet50_tuned.yaml``: a
frozen ResNet50 at 224 px, a RandomSearch over the head's dense units and dropout and the
learning rate) on real Kermany films (``--films``, at least 500: the pack's validation
films and as many of its training films as make up the rest), ``--trials`` trials of
``--epochs`` epochs. ImageNet weights where Keras has them (``--weights imagenet``; this
machine cannot download them), else random weights: the cost does not depend on them.
Augmentation is off on both sides, so both compute the same thing.

Runs the search with ``training.feature_cache: off`` (every step runs the ResNet50; trials
in their own processes, as configured), then with ``auto`` (the ResNet50's pooled output
computed once, its extraction counted on this side; trials in-process), and prints each
side's wall time, each trial's validation AUC on both sides (they must agree within 0.005)
and ``ratio:`` (uncached wall time / cached; target >= 10).

Usage:
    python benchmarks/head_search.py [--films 600] [--trials 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import yaml

    from cxr_keras.config import config_from_dict, with_values
    from cxr_keras.recipes import RECIPES_FOLDER
    from cxr_keras.training.tune import tune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "head_search")
    parser.add_argument("--films", type=int, default=600)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--weights", default="none", help="none (random) or imagenet")
    args = parser.parse_args()
    if args.films < 500:
        sys.exit("--films: at least 500 real films")

    pack = args.data / "kermany_pneumonia"
    val_films = len(list((pack / "val").glob("*/*.jpeg")))
    train_films = len(list((pack / "train").glob("*/*.jpeg")))
    fraction = min(1.0, max(args.films - val_films, 1) / train_films)
    raw = yaml.safe_load((RECIPES_FOLDER / "kermany_resnet50_tuned.yaml").read_text())
    raw.pop("recipe", None)
    raw["data"] = {
        "source": "folder",
        "root": str(pack),
        "labels": ["PNEUMONIA"],
        "negative_classes": ["NORMAL"],
        "split": {"method": "auto", "train_fraction": fraction},
        "batch_size": 32,
        "cache": "memory",
    }
    raw["augment"] = {}  # off on both sides: the same computation
    raw["model"]["weights"] = args.weights
    raw["search"].update(max_trials=args.trials, epochs=args.epochs)
    seconds, rows = {}, {}
    for side, cache in (("uncached", "off"), ("cached", "auto")):
        cfg = config_from_dict({**raw, "name": f"head_search_{side}"})
        cfg = with_values(cfg, {"training.feature_cache": cache})
        start = time.perf_counter()
        result = tune(cfg, overwrite=True, progress=False, run_dir=args.out / side)
        seconds[side] = time.perf_counter() - start
        with open(args.out / side / "tune" / "trials.csv", newline="") as fh:
            rows[side] = {r["trial_id"]: r for r in csv.DictReader(fh)}
        print(
            f"{side}: {seconds[side]:.1f} s for {len(rows[side])} trials x {args.epochs} epochs; "
            f"best {result['objective']}"
        )
    worst = 0.0
    for trial_id, row in sorted(rows["uncached"].items()):
        twin = rows["cached"].get(trial_id)
        values = {k: row[k] for k in raw["search"]["space"]}
        a, b = float(row["objective"]), float(twin["objective"]) if twin else float("nan")
        worst = max(worst, abs(a - b))
        print(f"trial {trial_id} {values}: val AUC uncached {a:.4f}, cached {b:.4f}")
    films = round(fraction * train_films) + val_films
    print(
        f"films: about {films} ({val_films} validation); weights {args.weights}; "
        f"{os.cpu_count()} CPU cores"
    )
    print(f"largest AUC difference: {worst:.4f} (must be <= 0.005)")
    print(f"ratio: {seconds['uncached'] / seconds['cached']:.2f} (uncached / cached wall time)")


if __name__ == "__main__":
    main()
