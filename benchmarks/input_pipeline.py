"""Input pipeline throughput: cxr-keras' tf.data pipeline vs. a plain per-image Python loop.

Both read the same real chest X-rays (default: 1000 images of the Kermany pack, JPEGs up to
512 px) and produce the same 224x224 float32 batches of 32 for 3 epochs, shuffled each
epoch. The loop decodes every image every epoch with PIL and numpy, the way notebooks and
``keras.utils.Sequence`` loaders feed Keras; the pipeline decodes in parallel with tf.io
and caches the decoded images in memory after the first epoch, as a user would configure
it (``data.cache: memory``), and is read the way ``python -m cxr_keras.train`` feeds
``fit``: one endless, reshuffled iterator (``repeat=True``). The two alternate for
``--repeats`` rounds and the medians are reported.

This shared machine is noisy, and its two virtual cores are not always both there: for
stretches the host gives the VM about one core's worth (two parallel decodes then run no
faster than one), which halves what any parallel pipeline gains: the ratio then falls
well below 5, and the first-epoch ratio towards 1.

Prints images/s per epoch for each, the first-epoch (uncached) ratio, and a last line
``ratio: X`` = tf.data images/s over loop images/s across the 3 epochs.

Usage:
    python benchmarks/input_pipeline.py [--data ../shared/data/kermany_pneumonia]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZE = 224
BATCH = 32


def python_loop(paths: list[str], epochs: int, seed: int) -> list[float]:
    """Seconds per epoch of a PIL/numpy loop building shuffled (32, 224, 224, 1) batches."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(paths))
        for b in range(0, len(order), BATCH):
            batch = []
            for i in order[b : b + BATCH]:
                with Image.open(paths[i]) as im:
                    im = im.convert("L").resize((SIZE, SIZE), Image.BILINEAR)
                    batch.append(np.asarray(im, dtype=np.float32)[..., None] / 255.0)
            np.stack(batch)
        times.append(time.perf_counter() - start)
    return times


def tf_pipeline(manifest, epochs: int, seed: int) -> list[float]:
    """Seconds per epoch of cxr_keras' training pipeline (memory cache, shuffled), drawn as
    training draws it: from one endless iterator, whose batches run across passes. Epoch
    e ends with the batch that brings the images drawn to e * n, so E epochs together
    take the time of the first E * n images (plus under one batch, never subtracted)."""
    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data.pipeline import make_dataset

    ds = make_dataset(
        manifest,
        ImageSpec(size=SIZE),
        batch_size=BATCH,
        training=True,
        seed=seed,
        cache="memory",
        repeat=True,
    )
    times = []
    batches = iter(ds)
    drawn = 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        while drawn < epoch * len(manifest):
            drawn += int(next(batches)[0].shape[0])
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "kermany_pneumonia",
        help="a class-per-folder dataset of real images",
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from cxr_keras.data.sources import folder_source
    from cxr_keras.data.verify import verify_files

    manifest = folder_source(args.data)
    manifest = manifest.sample(n=min(args.images, len(manifest)), random_state=0)
    manifest = verify_files(manifest.sort_values("path"))
    paths = manifest["path"].tolist()
    n = len(paths)
    print(
        f"{n} real images from {args.data.name}, {SIZE}x{SIZE}, batch {BATCH}, "
        f"{args.epochs} epochs, {args.repeats} alternating rounds; "
        f"TF {tf.__version__}, {os.cpu_count()} CPU cores"
    )
    loop_runs, tf_runs = [], []
    for r in range(args.repeats):
        loop_runs.append(python_loop(paths, args.epochs, seed=r))
        tf_runs.append(tf_pipeline(manifest, args.epochs, seed=r))
        loop_s, tf_s = sum(loop_runs[-1]), sum(tf_runs[-1])
        print(
            f"round {r + 1}: loop {loop_s:.2f} s, tf.data {tf_s:.2f} s, ratio {loop_s / tf_s:.2f}"
        )

    def median_epochs(runs):
        return [statistics.median(run[e] for run in runs) for e in range(args.epochs)]

    loop_epochs, tf_epochs = median_epochs(loop_runs), median_epochs(tf_runs)
    print(f"\n{'epoch':<8}{'python loop img/s':>20}{'tf.data img/s':>16}")
    for e in range(args.epochs):
        print(f"{e + 1:<8}{n / loop_epochs[e]:>20.0f}{n / tf_epochs[e]:>16.0f}")
    loop_total = statistics.median(sum(run) for run in loop_runs)
    tf_total = statistics.median(sum(run) for run in tf_runs)
    print(f"{'all':<8}{args.epochs * n / loop_total:>20.0f}{args.epochs * n / tf_total:>16.0f}")
    print(f"first epoch (uncached) ratio: {loop_epochs[0] / tf_epochs[0]:.2f}")
    print(f"ratio: {loop_total / tf_total:.2f}")


if __name__ == "__main__":
    main()
