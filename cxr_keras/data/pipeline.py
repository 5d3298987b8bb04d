"""tf.data pipelines from a manifest: decode in parallel, resize, cache, shuffle, batch.

Each element is ``(image, labels, mask)``: image float32 (H, W, 1) in [0, 1] made by the
same ops as :func:`cxr_keras.data.io.load_image`; labels float32 (n_labels,) with ignored
entries set to 0; mask float32 (n_labels,), 0 for ignored entries and 1 otherwise. Keras
takes the mask as per-label ``sample_weight``, so ignored labels drop out of the loss and
of the metrics compiled as ``weighted_metrics`` (class weights belong to the loss, see
:class:`cxr_keras.models.losses.MaskedBinaryLoss`).

Order of operations: shuffle the (cheap) file list when nothing is cached, decode
(PNG/JPEG with ``tf.io``; DICOM through pydicom) and resize in parallel, cache the decoded
images (memory or files), shuffle with a seed, batch, MixUp/CutMix, prefetch. A file that
still fails to decode (after :func:`~cxr_keras.data.verify.verify_files`) is dropped with a
logged warning instead of ending the run.

Example:
    >>> from cxr_keras.config import ImageSpec
    >>> from cxr_keras.data.sources import folder_source
    >>> from cxr_keras.sample_data import sample_path
    >>> ds = make_dataset(folder_source(sample_path("kermany")), ImageSpec(size=64),
    ...                   batch_size=8)
    >>> x, y, w = next(iter(ds))
    >>> tuple(x.shape), tuple(y.shape), tuple(w.shape)
    ((8, 64, 64, 1), (8, 1), (8, 1))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.core.image_spec import ImageSpec, resize_steps
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.data.batching import label_arrays, labelled_batches
from cxr_keras.data.io import DECODER_KINDS, decoder_kind, model_input_fn, read_header, sniff_format
from cxr_keras.data.manifest import manifest_labels
from cxr_keras.data.shard_reader import shard_dataset

__all__ = [
    "make_dataset",
    "make_image_dataset",
    "make_indexed_dataset",
]

log = logging.getLogger(__name__)


def _sources_and_loader(paths, spec: ImageSpec, formats=None, steps=None):
    """The per-file tensors a dataset slices, and the graph function loading one of them.

    Files of one decoder kind (the usual case) need only their path, and the loader is a
    straight line of ops; mixed kinds add each file's kind index. Fewer components and
    no control flow per element make the first, decoding epoch markedly faster.
    """
    import tensorflow as tf

    paths = np.asarray([str(p) for p in paths])
    if formats is None:
        formats = [_sniff(p) for p in paths]
    kinds = [decoder_kind(f or "raster") for f in formats]
    load = model_input_fn(kinds, spec, steps)

    @tf.autograph.experimental.do_not_convert
    def loader(source):
        return load(*source) if isinstance(source, tuple) else load(source, None)

    if len(set(kinds)) == 1:
        return paths, loader
    codes = np.array([DECODER_KINDS.index(k) for k in kinds], dtype=np.int32)
    return (paths, codes), loader


def _sniff(path: str) -> str | None:
    """The format of a file not verified beforehand; None (decoded as a generic raster,
    and dropped with a warning if that fails) when it cannot be read."""
    try:
        return sniff_format(path)
    except OSError:
        return None


def _resize_steps(manifest: pd.DataFrame, spec: ImageSpec) -> list[int] | None:
    """Each file's resize plan from its header size (columns from verify_files)."""
    if not {"width", "height"} <= set(manifest.columns) or (manifest["width"] <= 0).any():
        return None
    return [
        resize_steps(h, w, spec) for h, w in zip(manifest["height"], manifest["width"], strict=True)
    ]


def _cache(ds, cache: str | None, manifest: pd.DataFrame, spec: ImageSpec):
    """Cache the decoded images (not the labels, which are looked up afterwards, so a
    relabelled dataset never reads stale labels). A file cache is keyed by the paths, each
    file's size and modification time, the image spec and the package version."""
    if cache in (None, "none", ""):
        return ds
    if cache == "memory":
        return ds.cache()
    from cxr_keras import __version__

    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    stamps = []
    for path in manifest["path"]:
        try:
            info = os.stat(path)
            stamps.append([path, info.st_size, info.st_mtime_ns])
        except OSError:
            stamps.append([path, None, None])
    key = hashlib.sha1(
        json.dumps([stamps, config_to_dict(spec), __version__], sort_keys=True).encode()
    ).hexdigest()[:16]
    prefix = folder / f"images-{key}"
    if not _claim_file_cache(prefix):
        return ds.cache()
    return ds.cache(str(prefix))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_file_cache(prefix: Path) -> bool:
    """Prepare a tf.data file cache for writing, or say it cannot be used now.

    A process killed while writing a cache leaves a lockfile that makes every later run
    fail ("concurrent caching iterator"); each writer records its pid beside the cache,
    so a lockfile whose writer is gone is removed, while one whose writer still runs (two
    runs sharing a cache folder) makes this run cache in memory instead.
    """
    if Path(f"{prefix}.index").is_file():
        return True  # complete: read without locking
    owner = Path(f"{prefix}.owner")
    locks = list(prefix.parent.glob(f"{prefix.name}_*.lockfile"))
    if locks:
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            log.warning("%s is being written by process %d: caching in memory instead", prefix, pid)
            return False
        log.warning("removing the stale lock of an interrupted cache: %s", prefix)
        for leftover in [*locks, *prefix.parent.glob(f"{prefix.name}_*.tempstate*")]:
            leftover.unlink(missing_ok=True)
    owner.write_text(str(os.getpid()))
    return True


def make_dataset(
    manifest: pd.DataFrame,
    spec: ImageSpec,
    *,
    labels: list[str] | None = None,
    batch_size: int = 32,
    training: bool = False,
    seed: int | None = None,
    cache: str | None = "memory",
    shuffle_buffer: int | None = None,
    label_mixing=None,
    drop_remainder: bool = False,
    repeat: bool = False,
):
    """A batched ``tf.data.Dataset`` of ``(image, labels, mask)`` for a manifest.

    Args:
        manifest: rows to read (e.g. one split); a ``format`` column (from
            :func:`~cxr_keras.data.verify.verify_files`) avoids reading each file's head again.
        spec: how files become model inputs.
        labels: label columns; default the manifest's.
        batch_size: images per batch.
        training: shuffle every epoch and apply ``label_mixing``.
        seed: seeds the shuffles, so a run is reproducible.
        cache: ``memory``, ``none``, or a directory for a file cache (kept between runs).
        shuffle_buffer: default the whole manifest (a full shuffle).
        label_mixing: a batch function from
            :func:`~cxr_keras.data.mixing.build_label_mixing` (training only).
        drop_remainder: drop a last, smaller batch.
        repeat: repeat endlessly (reshuffled each pass); give ``fit`` a ``steps_per_epoch``.
            One iterator then serves every epoch, where Keras would otherwise build (and
            optimise) a new one per epoch, and no epoch ends on an exhausted iterator.
    """
    import tensorflow as tf

    labels = labels or manifest_labels(manifest)
    if len(manifest) == 0:
        raise ValueError("the manifest is empty: no images to build a dataset from")
    if "shards" in manifest.attrs:  # the same batches, read from TFRecord shards
        return shard_dataset(
            manifest,
            spec,
            labels=labels,
            batch_size=batch_size,
            training=training,
            seed=seed,
            cache=cache,
            shuffle_buffer=shuffle_buffer,
            label_mixing=label_mixing,
            drop_remainder=drop_remainder,
            repeat=repeat,
        )
    y, w = label_arrays(manifest, labels)
    formats = manifest["format"] if "format" in manifest.columns else None
    sources, load = _sources_and_loader(
        manifest["path"], spec, formats, _resize_steps(manifest, spec)
    )
    index = np.arange(len(manifest), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((index, sources))
    buffer = shuffle_buffer or len(manifest)
    cached = cache not in (None, "none", "")
    if training and not cached:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    @tf.autograph.experimental.do_not_convert
    def decode(i, source):
        return i, load(source)

    ds = ds.map(decode, num_parallel_calls=_cores(), deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    ds = _cache(ds, cache, manifest, spec)
    if training and cached:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = labelled_batches(
        ds,
        y=y,
        w=w,
        batch_size=batch_size,
        drop_remainder=drop_remainder,
        label_mixing=training and label_mixing,
    )
    return _one_thread_per_op(ds)


def _cores() -> int:
    """CPU cores this process may use: one parallel decode each (more decodes than cores
    measured 1.3x slower on a first epoch; AUTOTUNE ramps up too slowly for one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_thread_per_op(ds):
    """Run each of the pipeline's ops on one thread: parallelism comes from decoding
    several images at once, and ops that also spread over the cores (resize) then fight
    the parallel decodes; on 2 cores that made the first epoch up to 1.5x slower."""
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def make_image_dataset(paths: list[str | os.PathLike], spec: ImageSpec, batch_size: int = 32):
    """A batched dataset of model inputs only, in the order of ``paths`` (for prediction).

    Reads each file's header first, so a bad file raises
    :class:`~cxr_keras.data.io.ImageDecodeError` naming it (check files one by one with
    :func:`~cxr_keras.data.io.read_header` to report every failure and keep the rest).
    """
    import tensorflow as tf

    headers = [read_header(p, spec) for p in paths]
    steps = [resize_steps(h.height, h.width, spec) for h in headers]
    sources, load = _sources_and_loader(paths, spec, [h.format for h in headers], steps)
    ds = tf.data.Dataset.from_tensor_slices((sources,))  # one component: the source
    ds = ds.map(load, num_parallel_calls=_cores(), deterministic=True)
    return _one_thread_per_op(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def make_indexed_dataset(manifest: pd.DataFrame, spec: ImageSpec, batch_size: int = 32):
    """Batches of ``(row positions, model inputs)`` over a manifest, in its order (a
    shard-backed manifest: in its shards' order), for predicting a whole dataset: a file
    that fails to decode is dropped with a logged warning instead of stopping the run,
    and the positions say which rows were predicted.

    Example:
        >>> from cxr_keras.data import prepare_data
        >>> from cxr_keras.config import DataConfig
        >>> df = prepare_data(DataConfig(source="folder", root="sample:kermany"), ImageSpec())
        >>> rows, images = next(iter(make_indexed_dataset(df.head(3), ImageSpec(size=64))))
        >>> rows.numpy().tolist(), tuple(images.shape)
        ([0, 1, 2], (3, 64, 64, 1))
    """
    import tensorflow as tf

    if "shards" in manifest.attrs:  # positions come back in the shards' order
        return shard_dataset(manifest, spec, batch_size=batch_size, indexed=True)
    formats = manifest["format"] if "format" in manifest.columns else None
    sources, load = _sources_and_loader(
        manifest["path"], spec, formats, _resize_steps(manifest, spec)
    )
    index = np.arange(len(manifest), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((index, sources))

    @tf.autograph.experimental.do_not_convert
    def decode(i, source):
        return i, load(source)

    ds = ds.map(decode, num_parallel_calls=_cores(), deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    return _one_thread_per_op(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))
