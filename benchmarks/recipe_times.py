"""How long each shipped recipe (cxr_keras/recipes/) takes at its full settings, on this machine.

For each recipe, its model is built at full size (backbone, image size, head, in-model
contrast preprocessing and augmentation, mixed precision as the recipe sets it: ``auto``
means on where there is a GPU), with ``weights: none`` (the same arithmetic as ImageNet
weights, and no download). A batch of real bundled films at the recipe's size and batch
size is trained on with ``train_on_batch`` and predicted with ``predict_on_batch``; the
median of the timed steps after warm-up gives images/s. With the number of images in the
public release (training split after the recipe's own filters and split, and its
validation split, evaluated once per epoch) and the recipe's epochs (plus its fine-tune
epochs and its search's trials x epochs), that gives the run time the recipe implies.
A phase or a search in which only the head trains (``training.feature_cache``) costs one
pass of the frozen part over the films (at the prediction speed) and then the head's
epochs on the stored features (at the head's own measured speed), the way it now runs:
an upper bound, as early stopping usually ends sooner, and a lower one in that decoding
files (JPEG, DICOM) is not counted (see benchmarks/input_pipeline.py for that).

The models use only Keras, so the same script runs under any Keras 3 backend
(``KERAS_BACKEND=jax`` where TensorFlow has no GPU build); the backend is printed.

Usage:
    python benchmarks/recipe_times.py [--steps 5] [--warmup 2] [--recipes a,b]
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

#: training / validation images per recipe in the public release, after its filters and
#: split (counts of the official label files: RSNA stage 2 26,684 films; CheXpert-small
#: train.csv 223,414 rows, 191,027 frontal; Kermany train 5,232 incl. its val folder;
#: NIH 112,120 films, 86,524 in train_val_list.txt)
DATASET_IMAGES = {
    "rsna_resnet50_binary": (18_679, 2_668),  # 70 / 10 / 20 of 26,684
    "chexpert_densenet121_focal": (181_476, 9_551),  # frontal, 5 % of patients to val
    "kermany_resnet50_tuned": (4_447, 785),  # 85 / 15 of the official train
    "nih14_resnet50_lse": (77_872, 8_652),  # train_val_list, 10 % of patients to val
    "kermany_customcnn_vs_resnet": (4_447, 785),
    "kermany_customcnn_baseline": (4_447, 785),
}


def _films(size: tuple[int, int], n: int) -> np.ndarray:
    """``n`` bundled films (cycled) as float32 (n, H, W, 1) in [0, 1]."""
    from PIL import Image

    from cxr_keras.sample_data import sample_files

    files = sample_files("kermany") + sample_files("nih")
    out = []
    for k in range(n):
        with Image.open(files[k % len(files)]) as image:
            film = image.convert("L").resize((size[1], size[0]), Image.BILINEAR)
        out.append(np.asarray(film, np.float32)[..., None] / 255.0)
    return np.stack(out)


def _median_seconds(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _gpu() -> bool:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def measure(recipe: Path, steps: int, warmup: int, overrides: list[str]) -> dict:
    """images/s of training (each phase: the frozen first phase and the fine-tuning one
    train different layers) and of prediction, for one recipe's full-size model."""
    import keras

    from cxr_keras.config import load_config
    from cxr_keras.models.build import set_trainable
    from cxr_keras.models.losses import MaskedBinaryLoss
    from cxr_keras.training.feature_cache import split_at_head
    from cxr_keras.training.fit import build_for

    # no data is read: the model is fed random batches of the recipe's shape
    cfg = load_config(recipe, ["data.root=unread", "model.weights=none", *overrides])
    # _gpu, not training.fit.use_mixed_precision: under JAX, TensorFlow sees no GPU
    mixed = cfg.training.mixed_precision == "on" or (
        cfg.training.mixed_precision == "auto" and _gpu()
    )
    labels = cfg.data.labels if isinstance(cfg.data.labels, list) else ["PNEUMONIA"]
    labels = [*cfg.data.label_map] or labels
    built = build_for(cfg, labels, mixed_precision=mixed)
    model = built.model
    batch = cfg.data.batch_size
    x = _films(cfg.image.size, batch)
    y = (np.arange(batch * len(labels)).reshape(batch, len(labels)) % 3 == 0).astype("float32")
    weights = np.ones_like(y)

    def train_speed() -> float:
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=MaskedBinaryLoss())
        step = lambda: model.train_on_batch(x, y, sample_weight=weights)  # noqa: E731
        return batch / _median_seconds(step, steps, warmup)

    speed = {"mixed": mixed, "train_ips": train_speed()}
    speed["predict_ips"] = batch / _median_seconds(lambda: model.predict_on_batch(x), steps, warmup)
    if cfg.model.freeze == "backbone":  # a head-only phase trains on cached features
        body, head = split_at_head(model)
        features = np.asarray(body.predict_on_batch(x))
        head.compile(optimizer=keras.optimizers.Adam(1e-4), loss=MaskedBinaryLoss())
        step = lambda: head.train_on_batch(features, y, sample_weight=weights)  # noqa: E731
        speed["head_ips"] = batch / _median_seconds(step, steps, warmup)
    if cfg.training.fine_tune.epochs:
        set_trainable(built, cfg.training.fine_tune.unfreeze_from, cfg.model.freeze_batchnorm)
        speed["fine_tune_ips"] = train_speed()
    keras.backend.clear_session()
    return speed


def implied_hours(cfg, name: str, speed: dict, *, feature_cache: bool = True) -> tuple[int, float]:
    """(epochs counted, hours) of recipe ``name`` (its config ``cfg``) at the measured
    speed; ``feature_cache`` False: as if every phase ran the whole model."""
    from cxr_keras.training.feature_cache import cache_applies

    train_images, val_images = DATASET_IMAGES[name]
    search = cfg.search.max_trials * cfg.search.epochs if cfg.search else 0
    validate = val_images / speed["predict_ips"]
    full_epoch = train_images / speed["train_ips"] + validate
    if "head_ips" in speed:  # the frozen part once per film, then epochs of the head
        extract = (train_images + val_images) / speed["predict_ips"]
        head_epoch = (train_images + val_images) / speed["head_ips"]
    seconds = 0.0
    for epochs, space in ((cfg.training.epochs, None), (search, cfg.search and cfg.search.space)):
        if not epochs:
            continue
        cached = feature_cache and "head_ips" in speed and cache_applies(cfg, space=space)[0]
        seconds += extract + epochs * head_epoch if cached else epochs * full_epoch
    fine_tune = cfg.training.fine_tune.epochs
    if fine_tune:
        seconds += fine_tune * (train_images / speed["fine_tune_ips"] + validate)
    return cfg.training.epochs + fine_tune + search, seconds / 3600


def main() -> None:
    from cxr_keras.cli import add_override_argument
    from cxr_keras.config import load_config
    from cxr_keras.recipes import find_recipe

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--recipes", help="comma-separated recipe names (default: all)")
    add_override_argument(
        parser,
        help="a setting changed in every recipe (e.g. preprocess.contrast=none where the "
        "backend lacks an op)",
    )
    args = parser.parse_args()
    import keras

    names = args.recipes.split(",") if args.recipes else list(DATASET_IMAGES)
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}, GPU: {_gpu()}")
    if args.overrides:
        print(f"settings changed in every recipe: {', '.join(args.overrides)}")
    print(
        f"{'recipe':30s} {'size':>5s} {'batch':>5s} {'mixed':>5s} {'train img/s':>11s} "
        f"{'fine-tune':>9s} {'predict img/s':>13s} {'epochs':>6s} {'hours':>8s} "
        f"{'no cache':>8s}"
    )
    for name in names:
        recipe = find_recipe(name)
        speed = measure(recipe, args.steps, args.warmup, args.overrides)
        cfg = load_config(recipe, ["data.root=unread"])
        epochs, hours = implied_hours(cfg, name, speed)
        _, uncached = implied_hours(cfg, name, speed, feature_cache=False)
        print(
            f"{name:30s} {cfg.image.size[0]:5d} {cfg.data.batch_size:5d} "
            f"{'yes' if speed['mixed'] else 'no':>5s} {speed['train_ips']:11.1f} "
            f"{speed.get('fine_tune_ips', float('nan')):9.1f} "
            f"{speed['predict_ips']:13.1f} {epochs:6d} {hours:8.2f} {uncached:8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
