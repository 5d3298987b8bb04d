"""Training throughput: does the tf.data pipeline keep the model fed?

For a few backbones that are practical on a CPU, at 128 and 224 px, the same model is
trained on the same real chest X-rays in two ways: fed by cxr-keras' pipeline
(``make_dataset``: decode, memory cache, seeded shuffle, batch, prefetch, repeated as
``cxr_keras.train`` uses it) and fed by in-memory tensors (the decoded images as one numpy
array, Keras' own fastest path). The two models train epoch by epoch in alternation:
this machine's speed jumps between two levels for seconds at a time, so many short,
interleaved epochs and medians are used. The first epoch of each is left out (graph
tracing, and the pipeline's one-time decode).

Prints a table and a last line ``ratio: X`` = pipeline-fed over in-memory images/s for the
worst-fed combination (goal >= 0.9).

Usage:
    python benchmarks/train_throughput.py [--images 128] [--epochs 12]
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

COMBINATIONS = [
    ("custom_cnn", 128),
    ("custom_cnn", 224),
    ("mobilenetv3small", 128),
    ("mobilenetv3small", 224),
    ("efficientnetb0", 128),
]
BATCH = 32


class EpochTimer:
    """Keras callback recording each epoch's wall time."""

    def __init__(self):
        import keras

        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.callback = _Callback()


def _model(backbone: str, size: int, seed: int):
    import keras

    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.models import MaskedBinaryLoss, build_model, training_metrics
    from cxr_keras.models.settings import AugmentConfig, ModelConfig

    keras.utils.set_random_seed(seed)
    filters = [16, 32, 64, 128] if backbone == "custom_cnn" else [32]
    built = build_model(
        ModelConfig(backbone=backbone, filters=filters),
        spec=ImageSpec(size=size),
        labels=["PNEUMONIA"],
        augment=AugmentConfig(rotation=5, zoom=0.05),
        seed=seed,
    )
    built.model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=MaskedBinaryLoss(),
        weighted_metrics=training_metrics(["PNEUMONIA"]),
    )
    return built.model


def measure(backbone: str, size: int, manifest, epochs: int) -> tuple[float, float]:
    """(pipeline-fed, in-memory) training images/s: two models trained epoch by epoch in
    alternation (A B, B A, ...), so both meet the same machine conditions; the first epoch
    of each (graph tracing, the pipeline's one-time decode) is left out; medians."""
    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.data.io import load_image
    from cxr_keras.data.pipeline import make_dataset

    spec = ImageSpec(size=size)
    n = len(manifest)
    images = np.stack([load_image(p, spec) for p in manifest["path"]])
    y, w = label_arrays(manifest)
    dataset = make_dataset(
        manifest, spec, batch_size=BATCH, training=True, seed=0, cache="memory", repeat=True
    )  # as cxr_keras.train feeds a model
    pipeline_model, memory_model = _model(backbone, size, 0), _model(backbone, size, 0)
    timer = EpochTimer()

    def pipeline_epoch():
        pipeline_model.fit(
            dataset, epochs=1, steps_per_epoch=-(-n // BATCH), verbose=0, callbacks=[timer.callback]
        )
        return timer.times[-1]

    def memory_epoch():  # as Keras is fed numpy arrays
        memory_model.fit(
            images,
            y,
            sample_weight=w,
            batch_size=BATCH,
            epochs=1,
            shuffle=True,
            verbose=0,
            callbacks=[timer.callback],
        )
        return timer.times[-1]

    pipeline_times, memory_times = [], []
    for epoch in range(epochs):
        order = (pipeline_epoch, memory_epoch) if epoch % 2 == 0 else (memory_epoch, pipeline_epoch)
        for run in order:
            seconds = run()
            if epoch > 0:
                (pipeline_times if run is pipeline_epoch else memory_times).append(seconds)
    return n / statistics.median(pipeline_times), n / statistics.median(memory_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "kermany_pneumonia"
    )
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    import tensorflow as tf

    from cxr_keras.data.sources import folder_source
    from cxr_keras.data.verify import verify_files

    manifest = folder_source(args.data)
    manifest = verify_files(manifest.sample(n=min(args.images, len(manifest)), random_state=0))
    print(
        f"{len(manifest)} real images from {args.data.name}, batch {BATCH}, epochs 2-"
        f"{args.epochs} timed; TF {tf.__version__}, {os.cpu_count()} CPU cores"
    )
    print(f"{'backbone':<18}{'size':>6}{'pipeline img/s':>16}{'in-memory img/s':>17}{'ratio':>8}")
    ratios = []
    for backbone, size in COMBINATIONS:
        pipeline, memory = measure(backbone, size, manifest, args.epochs)
        ratios.append(pipeline / memory)
        print(
            f"{backbone:<18}{size:>6}{pipeline:>16.1f}{memory:>17.1f}{ratios[-1]:>8.2f}", flush=True
        )
    print(f"ratio: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
