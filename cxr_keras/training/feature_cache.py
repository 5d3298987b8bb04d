"""The backbone's output computed once: a frozen backbone's features for each image, so a
head trains at the speed of the head (``training.feature_cache: auto``).

While the backbone is frozen its output for an image never changes, yet a plain ``fit``
runs the whole backbone forward for every image of every epoch of every trial. The Keras
transfer-learning guide's remedy (run the base once, train the head on its output) is
built in here, keeping what writing it by hand loses:

- the model is split where the head starts: after its pooling layer (no weights, so the
  cached vectors are exactly what the head reads), or before its transition convolution
  when it has one; the head is a sub-model sharing the full model's layers, so training it
  trains the full model and every later stage is unchanged;
- the features are kept on disk (``runs/<name>/{train,tune}/feature_cache/<key>.npz``: a
  resumed run or a later trial reads them), keyed by the backbone,
  the hash of the frozen part's weights, the image spec, the contrast preprocessing and
  the films: a changed setting never reads stale features;
- the head's batches come in the very order the image pipeline would give them (the same
  indices through the same shuffle, :func:`~cxr_keras.data.batching.labelled_batches`),
  with the same labels, masks and class weights;
- augmentation is off for a cached phase (the frozen part sees each film once, as it is):
  the run log, ``best_hparams.json`` and the model card say so.

``train`` uses it for a phase that trains only the head (its best weights and export are
the full model's); ``tune`` for a search whose trials do, each trial then in-process.

It applies when only the head trains (``model.freeze: backbone``), no label mixing is
set (MixUp and CutMix mix images, not features) and, for a search, every searched setting
belongs to the head or the optimiser (:func:`head_only_space`).

Example:
    >>> head_only_space({"model.dropout": {}, "training.learning_rate": {}})
    True
    >>> head_only_space({"image.size": {}})
    False
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from cxr_keras.artifact.audit_log import weights_digest
from cxr_keras.config import Config
from cxr_keras.core.serialize import config_to_dict

__all__ = [
    "HEAD_SETTINGS",
    "CachedFeatures",
    "cache_applies",
    "feature_datasets",
    "head_only_space",
    "split_at_head",
]

log = logging.getLogger(__name__)

EXTRACT_BLOCK = 16  # batches decoded before the body runs on them (about 100 MB at 224 px)
# settings a cached phase may vary: they act after the cached features
HEAD_SETTINGS = ("model.dropout", "model.dense_units", "model.dense_l2", "training.")


def head_only_space(space: dict) -> bool:
    """True when every searched setting acts on the head or the optimiser only."""
    return all(
        any(path == s or (s.endswith(".") and path.startswith(s)) for s in HEAD_SETTINGS)
        for path in space
    )


def cache_applies(cfg: Config, *, space: dict | None = None) -> tuple[bool, str]:
    """Whether a phase of ``cfg`` (a search over ``space``) trains on cached features,
    and why (the run log says it)."""
    if cfg.training.feature_cache == "off":
        return False, "training.feature_cache: off"
    if cfg.model.freeze != "backbone":
        return False, f"model.freeze is {cfg.model.freeze!r}: the backbone trains"
    if cfg.augment.mixup_alpha or cfg.augment.cutmix_alpha:
        return False, "MixUp/CutMix mix images, not features"
    if space is not None and not head_only_space(space):
        outside = sorted(p for p in space if not head_only_space({p: {}}))
        return False, f"the search varies {outside}, which act before the head"
    return True, (
        "only the head trains: the frozen part's output is computed once per film and the "
        "head trains on it, with augmentation off for this phase"
    )


def split_at_head(model):
    """(body, head): the frozen part up to where the head starts, and the head as a
    sub-model sharing the full model's layers (training it trains the full model)."""
    import keras

    names = {layer.name for layer in model.layers}
    if "transition" in names:  # the head's 1x1 convolution reads the feature map
        cut = model.get_layer("transition").input
    else:
        pooling = next(n for n in ("pool_avg", "pool_lse") if n in names)
        cut = model.get_layer(pooling).output
    return keras.Model(model.input, cut, name="frozen_body"), keras.Model(
        cut, model.output, name="head"
    )


class CachedFeatures:
    """The body's output for a manifest's films, computed once and kept on disk."""

    def __init__(self, body, cfg: Config, folder: str | os.PathLike):
        self.body, self.cfg, self.folder = body, cfg, Path(folder)
        self._weights = weights_digest(body)
        self._forward = None
        self.extracted = 0  # films run through the body by this object (0: all from disk)

    def forward(self, images):
        """The body in inference mode, traced once for any batch size (a short last
        batch would otherwise trace a large backbone again: seconds on a CPU)."""
        if self._forward is None:
            import tensorflow as tf

            spec = tf.TensorSpec((None, *self.body.input.shape[1:]), tf.float32)
            self._forward = tf.function(
                lambda x: self.body(x, training=False), input_signature=[spec]
            )
        return self._forward(images)

    def key(self, manifest) -> str:
        """What the features depend on: the body's weights and structure, the image
        spec, the preprocessing and the films (path, size, modification time)."""
        files = []
        for path in manifest["path"]:
            try:
                stat = os.stat(path)
                files.append([str(path), stat.st_size, stat.st_mtime_ns])
            except OSError:
                files.append([str(path), None, None])
        what = {
            "backbone": self.cfg.model.backbone,
            "weights": self._weights,
            "output": list(self.body.output.shape[1:]),
            "image": config_to_dict(self.cfg.image),
            "preprocess": config_to_dict(self.cfg.preprocess),
            "files": files,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]

    def of(self, manifest, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(features (n_decoded, ...), the manifest rows they belong to), from disk when
        this very body has seen these films before."""
        path = self.folder / f"{self.key(manifest)}.npz"
        if path.is_file():
            with np.load(path) as stored:
                return stored["features"], stored["rows"]
        import time

        from cxr_keras.data.pipeline import make_indexed_dataset

        started = time.perf_counter()
        rows, parts = [], []
        batches = iter(make_indexed_dataset(manifest, self.cfg.image, batch_size))
        while True:
            # decode a block, then run the body on it: decoding threads beside the backbone's
            # own threads slowed the backbone by up to 1.7x on 2 cores
            block = [b for _, b in zip(range(EXTRACT_BLOCK), batches, strict=False)]
            if not block:
                break
            for index, images in block:
                parts.append(np.asarray(self.forward(images), np.float32))
                rows.append(index.numpy())
        features = np.concatenate(parts) if parts else np.zeros((0, *self.body.output.shape[1:]))
        rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.extracted += len(rows)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # one per writer
        np.savez(tmp, features=features, rows=rows)
        os.replace(tmp, path)  # never a half-written cache under its final name
        log.info(
            "feature cache: the frozen part's output for %d films in %.1f s, kept in %s",
            len(rows),
            time.perf_counter() - started,
            path,
        )
        return features, rows


def feature_datasets(cache: CachedFeatures, cfg: Config, *, train_df, val_df, labels) -> tuple:
    """(training dataset, validation dataset, steps per epoch) of cached features, as
    :func:`~cxr_keras.training.fit.fit_datasets` gives them for images: the same
    indices through the same shuffle and batching, with the labels and masks."""
    import tensorflow as tf

    from cxr_keras.data.batching import label_arrays, labelled_batches
    from cxr_keras.training.fit import steps_per_epoch

    def dataset(df, training: bool):
        features, rows = cache.of(df, cfg.data.batch_size)
        y, w = label_arrays(df, labels)
        ds = tf.data.Dataset.from_tensor_slices((rows.astype(np.int64), features))
        if training:  # the pipeline's shuffle of its (cached) elements, seed and buffer alike
            buffer = cfg.data.shuffle_buffer or len(df)
            ds = ds.shuffle(buffer, seed=cfg.seed, reshuffle_each_iteration=True).repeat()
        return labelled_batches(ds, y=y, w=w, batch_size=cfg.data.batch_size)

    return dataset(train_df, True), dataset(val_df, False), steps_per_epoch(cfg, len(train_df))
