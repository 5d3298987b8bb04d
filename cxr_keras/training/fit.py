"""What one ``model.fit`` is built, compiled and fed with: shared by training and by every
tuning trial, so the two cannot drift apart.

The network and its loss, optimizer, learning-rate schedule and class weights; the
callbacks that schedule the learning rate and stop early (:func:`schedule_callbacks`);
and the datasets ``fit`` reads.

Example:
    >>> from cxr_keras.config import config_from_dict
    >>> cfg = config_from_dict({"name": "x", "data": {"source": "folder", "root": "x"},
    ...     "training": {"lr_schedule": "cosine", "reduce_lr_patience": 2}})
    >>> [type(c).__name__ for c in schedule_callbacks(cfg, monitor="val_auc")]
    ['ResumableEarlyStopping']
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from cxr_keras.config import Config
from cxr_keras.data.mixing import build_label_mixing
from cxr_keras.data.pipeline import make_dataset
from cxr_keras.data.stats import class_weight_table, positive_weights
from cxr_keras.models.build import build_model
from cxr_keras.models.losses import MaskedBinaryLoss, training_metrics
from cxr_keras.training.callbacks import (
    ResumableEarlyStopping,
    ResumableReduceLROnPlateau,
    monitor_mode,
)

__all__ = [
    "build_for",
    "class_weights_for",
    "compile_for",
    "fit_datasets",
    "learning_rate_for",
    "make_loss",
    "make_optimizer",
    "progress_bars",
    "quiet_dataset_notes",
    "schedule_callbacks",
    "steps_per_epoch",
    "use_mixed_precision",
]


def progress_bars(progress: bool | None) -> bool:
    """Whether Keras draws its progress bar: ``None`` means on a terminal only, so a log
    file gets one line per epoch instead of a bar redrawn thousands of times.

    Example:
        >>> progress_bars(True), progress_bars(False)
        (True, False)
    """
    return sys.stdout.isatty() if progress is None else bool(progress)


def use_mixed_precision(setting: str) -> bool:
    """``training.mixed_precision``: ``on``, or ``auto`` where a GPU is present."""
    import tensorflow as tf

    if setting == "on":
        return True
    return setting == "auto" and bool(tf.config.list_physical_devices("GPU"))


def learning_rate_for(cfg: Config, learning_rate: float, *, epochs: int, steps_per_epoch: int):
    """The optimizer's learning rate: a number (``plateau``), or Keras' CosineDecay over
    ``epochs`` epochs with the configured warm-up (``cosine``).

    Example:
        >>> from cxr_keras.config import config_from_dict
        >>> cfg = config_from_dict({"name": "x", "data": {"source": "folder", "root": "x"},
        ...     "training": {"lr_schedule": "cosine", "warmup_epochs": 1, "epochs": 5}})
        >>> schedule = learning_rate_for(cfg, 0.001, epochs=5, steps_per_epoch=10)
        >>> [round(float(schedule(step)), 6) for step in (0, 10, 50)]
        [0.0001, 0.001, 1e-06]
    """
    import keras

    training = cfg.training
    if training.lr_schedule != "cosine":
        return learning_rate
    warmup = training.warmup_epochs * steps_per_epoch
    decay = max(1, epochs * steps_per_epoch - warmup)
    floor = min(1.0, training.min_learning_rate / learning_rate)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay, alpha=floor)
    return keras.optimizers.schedules.CosineDecay(
        learning_rate / 10, decay, alpha=floor, warmup_target=learning_rate, warmup_steps=warmup
    )


def make_optimizer(cfg: Config, learning_rate):
    """Adam or AdamW at ``learning_rate`` (a number or a schedule)."""
    import keras

    if cfg.training.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.training.weight_decay)
    return keras.optimizers.Adam(learning_rate)


def class_weights_for(cfg: Config, train_df) -> np.ndarray | None:
    """The (labels, 2) class-weight table ``training.class_weights`` asks for, or None."""

    mode = cfg.training.class_weights
    if mode == "balanced":
        return class_weight_table(train_df)
    if mode == "positive":
        pos = positive_weights(train_df)
        return np.stack([np.ones_like(pos), pos], axis=1)
    return None


def steps_per_epoch(cfg: Config, train_images: int) -> int:
    """Batches per epoch as ``fit`` is fed (the last batch may be short)."""
    return math.ceil(train_images / cfg.data.batch_size)


def make_loss(cfg: Config, weights):
    """The masked binary loss of the config, with the class-weight table (or None)."""
    return MaskedBinaryLoss(
        cfg.training.loss,
        cfg.training.focal_gamma,
        cfg.training.label_smoothing,
        class_weights=None if weights is None else weights.tolist(),
    )


def build_for(cfg: Config, labels: list[str], *, mixed_precision: bool):
    """The configured network for ``labels`` (a :class:`~cxr_keras.models.build.BuiltModel`)."""
    return build_model(
        cfg.model,
        spec=cfg.image,
        labels=labels,
        augment=cfg.augment,
        preprocess=cfg.preprocess,
        seed=cfg.seed,
        mixed_precision=mixed_precision,
    )


def quiet_dataset_notes() -> None:
    """Silence two Keras notes that are noise for the pipeline's datasets: "shuffle=True was
    passed" (the pipeline shuffles) and "Your input ran out of data", which Keras 3 emits
    whenever a pass over a dataset of unknown length ends: every validation pass here, as
    the pipeline's length is unknown once unreadable files may be dropped (training itself
    draws from an endless dataset)."""
    warnings.filterwarnings("ignore", message=".*shuffle=True. was passed.*")
    warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")


def fit_datasets(cfg: Config, train_df, val_df) -> tuple:
    """(training dataset, endless and shuffled with label mixing; validation dataset;
    steps per epoch), as training and every tuning trial feed ``fit``."""
    train_ds = make_dataset(
        train_df,
        cfg.image,
        batch_size=cfg.data.batch_size,
        training=True,
        seed=cfg.seed,
        cache=cfg.data.cache,
        shuffle_buffer=cfg.data.shuffle_buffer,
        label_mixing=build_label_mixing(
            mixup_alpha=cfg.augment.mixup_alpha,
            cutmix_alpha=cfg.augment.cutmix_alpha,
            seed=cfg.seed,
        ),
        repeat=True,
    )
    val_ds = make_dataset(val_df, cfg.image, batch_size=cfg.data.batch_size, cache=cfg.data.cache)
    return train_ds, val_ds, steps_per_epoch(cfg, len(train_df))


def compile_for(model, cfg: Config, *, labels: list[str], loss, learning_rate=None) -> None:
    """Compile ``model`` as training and tuning do: the masked loss, the per-label
    metrics weighted by the label mask, and Adam/AdamW at ``learning_rate`` (a number or a
    schedule; None: no optimizer, for evaluating)."""
    model.compile(
        optimizer=None if learning_rate is None else make_optimizer(cfg, learning_rate),
        loss=loss,
        weighted_metrics=training_metrics(labels),
        run_eagerly=cfg.training.run_eagerly,
    )


def schedule_callbacks(
    cfg: Config,
    *,
    monitor: str,
    mode: str | None = None,
    history: Sequence[float] = (),
    rates: Sequence[float] = (),
) -> list:
    """The learning-rate drops and early stopping of ``cfg.training`` on ``monitor``:
    ReduceLROnPlateau only for ``lr_schedule: plateau`` (Keras cannot set the rate of a
    schedule such as cosine), EarlyStopping when its patience is set. ``history`` and
    ``rates`` are the phase's logged values so far, for a resumed run; a tuning trial
    starts empty. Training and every tuning trial take their callbacks from here."""
    training = cfg.training
    mode = mode or monitor_mode(monitor)
    callbacks = []
    if training.reduce_lr_patience > 0 and training.lr_schedule == "plateau":
        callbacks.append(
            ResumableReduceLROnPlateau(
                history,
                rates,
                monitor=monitor,
                mode=mode,
                factor=training.reduce_lr_factor,
                patience=training.reduce_lr_patience,
                min_lr=training.min_learning_rate,
            )
        )
    if training.early_stopping_patience > 0:
        callbacks.append(
            ResumableEarlyStopping(
                history, monitor=monitor, mode=mode, patience=training.early_stopping_patience
            )
        )
    return callbacks
