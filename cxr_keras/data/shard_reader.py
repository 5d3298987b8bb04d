"""Sharded datasets, read: each image decoded and resized once, stored in TFRecord shards
(written by :mod:`cxr_keras.data.shard_writer`, ``python -m cxr_keras.shard``).

At 112k (NIH) or 224k (CheXpert) files, decoding full-size PNGs, JPEGs and DICOMs every
epoch, or listing a bucket of loose files, is what limits training. A shard folder holds
the configured data after the config's own reading, verification and patient split:

- ``<split>-NNNNN-of-MMMMM.tfrecord``: one record per image: the model input (the
  output of :func:`~cxr_keras.data.io.load_image` at the config's image spec) as a 16-bit
  grayscale PNG, lossless for those values to within 1/65535 (8-bit PNG would lose up to
  1/510), plus its manifest row;
- ``manifest.csv``: the manifest (path, labels, patient id, view, split, ...) with each
  image's shard file and row;
- ``index.json``: labels, the image spec, images and files per split, and what was left out.

Every path is read through ``tf.io.gfile``, so a shard folder may be local, ``gs://`` or
``s3://`` where the TensorFlow build supports those. A config reads it with
``data.source: shards`` and ``data.root: DIR``; :func:`shard_dataset` then interleaves
parallel reads of the files of a split and yields the same ``(image, labels, mask)``
batches as the folder pipeline (:func:`~cxr_keras.data.pipeline.make_dataset`: same
cache, shuffle, batch, label mixing; augmentation is in the model).

Under ``tf.distribute``, the dataset states its auto-shard policy: ``FILE`` (each worker
reads whole files) when a split has at least as many files as workers, else ``DATA``
(every worker reads all files and keeps its share of the records).

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> from cxr_keras.data.settings import DataConfig
    >>> from cxr_keras.data.shard_writer import write_shards
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> index = write_shards(DataConfig(source="folder", root="sample:kermany"),
    ...                      ImageSpec(size=32), out=out, shard_size=100)  # doctest: +ELLIPSIS
    wrote ...
    >>> index["splits"]["train"]["images"] > 0, index["encoding"]
    (True, 'png16')
    >>> len(shard_source(out)) == sum(split["images"] for split in index["splits"].values())
    True
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.serialize import section_from_dict
from cxr_keras.data.batching import label_arrays, labelled_batches
from cxr_keras.data.manifest import manifest_labels, new_manifest

__all__ = [
    "INDEX",
    "read_index",
    "shard_dataset",
    "shard_source",
]

log = logging.getLogger(__name__)

INDEX = "index.json"
MANIFEST = "manifest.csv"
FORMAT = "cxr-keras shards"
PNG_LEVELS = 65535.0  # 16-bit PNG levels


def join_path(root: str, name: str) -> str:
    import tensorflow as tf

    return tf.io.gfile.join(str(root), name)


def read_index(root: str | os.PathLike) -> dict:
    """The index of a shard folder; ``ValueError`` naming the folder when it is not one."""
    import tensorflow as tf

    path = join_path(str(root), INDEX)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"{root}: not a shard folder (no {INDEX}); write one with python -m cxr_keras.shard"
        )
    with tf.io.gfile.GFile(path) as fh:
        index = json.load(fh)
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cxr-keras shard index")
    return index


def shard_source(root: str | os.PathLike, labels: list[str] | None = None) -> pd.DataFrame:
    """The manifest of a shard folder (``data.source: shards``): its rows with their split,
    shard file and row, the folder and its image spec in ``attrs["shards"]``."""
    import tensorflow as tf

    index = read_index(root)
    with tf.io.gfile.GFile(join_path(str(root), MANIFEST)) as fh:
        table = pd.read_csv(fh, dtype={"patient_id": str})
    have = index["labels"]
    if labels and list(labels) != have:
        raise ValueError(
            f"{root}: its shards hold the labels {have}; data.labels asks {list(labels)} "
            "(the label columns are stored in the records: re-shard for other labels)"
        )
    df = new_manifest(table, have)
    df.attrs["shards"] = {
        "root": str(root),
        "image_spec": index["image_spec"],
        "rows": int(table["row"].max()) + 1,  # the records' row numbers run below this
    }
    df.attrs["skipped"] = [tuple(s) for s in index.get("skipped", [])]
    return df


def check_spec(manifest: pd.DataFrame, spec: ImageSpec) -> None:
    """Raise unless the shards were written at ``spec`` (their images are final)."""
    stored = section_from_dict(ImageSpec, manifest.attrs["shards"]["image_spec"])
    if stored != spec:
        raise ValueError(
            f"{manifest.attrs['shards']['root']}: shards written at image spec {stored}, "
            f"the config asks {spec}; re-shard with this config"
        )


def shard_dataset(
    manifest: pd.DataFrame,
    spec: ImageSpec,
    *,
    labels: list[str] | None = None,
    batch_size: int = 32,
    training: bool = False,
    seed: int | None = None,
    cache: str | None = "none",
    shuffle_buffer: int | None = None,
    label_mixing=None,
    drop_remainder: bool = False,
    repeat: bool = False,
    indexed: bool = False,
):
    """Batches of ``(image, labels, mask)`` (``indexed``: ``(positions, image)``, as
    :func:`~cxr_keras.data.pipeline.make_indexed_dataset`) read from the shard files of
    ``manifest``'s rows (a manifest of :func:`shard_source`, e.g. one split, or part of
    one: other records are skipped). Arguments as in
    :func:`~cxr_keras.data.pipeline.make_dataset`."""
    import tensorflow as tf

    check_spec(manifest, spec)
    labels = labels or manifest_labels(manifest)
    root = manifest.attrs["shards"]["root"]
    files = sorted(set(manifest["shard"]))
    rows = manifest["row"].to_numpy(dtype=np.int64)
    # label lookup by the record's row: the manifest's labels, so relabelling needs no
    # re-shard; rows outside this manifest map to position -1 and are filtered out
    position = np.full(manifest.attrs["shards"]["rows"], -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    y, w = label_arrays(manifest, labels)
    lookup = tf.constant(position)
    paths = [join_path(root, f) for f in files]
    ds = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(paths), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )
    height, width = spec.size
    spec_features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "row": tf.io.FixedLenFeature([], tf.int64),
    }

    @tf.autograph.experimental.do_not_convert
    def parse(record):
        example = tf.io.parse_single_example(record, spec_features)
        image = tf.io.decode_png(example["image"], channels=1, dtype=tf.uint16)
        image = tf.reshape(tf.cast(image, tf.float32) / PNG_LEVELS, (height, width, 1))
        return tf.gather(lookup, example["row"]), image

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    ds = ds.filter(lambda where, image: where >= 0)
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = (
        policy.FILE if len(paths) >= _workers() else policy.DATA
    )
    ds = ds.with_options(options)
    if indexed:
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if cache == "memory":
        ds = ds.cache()
    if training:
        ds = ds.shuffle(
            shuffle_buffer or min(len(manifest), 10_000), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        ds = ds.repeat()
    return labelled_batches(
        ds,
        y=y,
        w=w,
        batch_size=batch_size,
        drop_remainder=drop_remainder,
        label_mixing=training and label_mixing,
    )


def _workers() -> int:
    """Workers of a multi-worker job (``TF_CONFIG``), 1 otherwise."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = config.get("cluster", {})
    return max(1, sum(len(cluster.get(k, [])) for k in ("chief", "worker")))
