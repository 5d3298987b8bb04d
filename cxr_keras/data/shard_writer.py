"""Write a config's data as TFRecord shards: each image decoded and resized once.

    python -m cxr_keras.shard --data <config> --out DIR [--shard-size 1000]

At 112k (NIH) or 224k (CheXpert) files, decoding full-size PNGs, JPEGs and DICOMs every
epoch, or listing a bucket of loose files, is what limits training. The format, how a
config reads it, and an example (written, then read): :mod:`cxr_keras.data.shard_reader`.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.data.batching import label_arrays
from cxr_keras.data.load import prepare_data
from cxr_keras.data.manifest import manifest_labels
from cxr_keras.data.pipeline import make_indexed_dataset
from cxr_keras.data.shard_reader import FORMAT, INDEX, MANIFEST, PNG_LEVELS, join_path

__all__ = ["write_shards"]

log = logging.getLogger(__name__)


def _record(image: np.ndarray, row: int, labels: np.ndarray, mask: np.ndarray) -> bytes:
    import tensorflow as tf

    levels = np.round(np.clip(image, 0.0, 1.0) * PNG_LEVELS).astype(np.uint16)
    png = tf.io.encode_png(levels).numpy()
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[row])),
        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=labels.tolist())),
        "mask": tf.train.Feature(float_list=tf.train.FloatList(value=mask.tolist())),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def write_shards(
    data,
    spec: ImageSpec,
    *,
    out: str | os.PathLike,
    shard_size: int = 1000,
    seed: int = 42,
    progress: bool = False,
    manifest: pd.DataFrame | None = None,
) -> dict:
    """Read, verify and split the configured data (:func:`~cxr_keras.data.prepare_data`),
    or take ``manifest`` (already split) as it is, then write each split's images into
    shards of at most ``shard_size`` records under ``out``; returns the index. An image
    that fails to decode now is left out, with its reason in the index, and the rest are
    written."""
    import tensorflow as tf

    if shard_size < 1:
        raise ValueError(f"--shard-size: at least 1 image per shard, got {shard_size}")
    out = str(out)
    if manifest is None:
        manifest = prepare_data(data, spec, seed=seed, progress=progress)
    labels = manifest_labels(manifest)
    tf.io.gfile.makedirs(out)
    manifest = manifest.reset_index(drop=True)
    manifest["row"] = np.arange(len(manifest))
    y, w = label_arrays(manifest, labels)
    shard_of: dict[int, str] = {}  # manifest row -> the file its record went to
    splits, undecodable = {}, []
    for split in ("train", "val", "test"):
        part = manifest[manifest["split"] == split]
        if part.empty:
            continue
        rows = part["row"].to_numpy()
        count = -(-len(part) // shard_size)
        files = [f"{split}-{k:05d}-of-{count:05d}.tfrecord" for k in range(count)]
        written, writer = 0, None
        batches = make_indexed_dataset(part.reset_index(drop=True), spec, batch_size=64)
        for positions, images in batches:
            for position, image in zip(positions.numpy(), images.numpy(), strict=True):
                if written % shard_size == 0:
                    if writer is not None:
                        writer.close()
                    writer = tf.io.TFRecordWriter(join_path(out, files[written // shard_size]))
                row = int(rows[position])
                writer.write(_record(image, row, y[row], w[row]))
                shard_of[row] = files[written // shard_size]
                written += 1
        if writer is not None:
            writer.close()
        for row in rows:  # dropped by the decoder
            if int(row) not in shard_of:
                undecodable.append({"path": manifest["path"][row], "reason": "failed to decode"})
        used = files[: -(-written // shard_size)]
        splits[split] = {"images": written, "files": used}
        if progress:
            print(f"{split}: {written} images in {len(used)} shard(s)")
    manifest["shard"] = manifest["row"].map(shard_of)
    kept = manifest[manifest["shard"].notna()]
    with tf.io.gfile.GFile(join_path(out, MANIFEST), "w") as fh:
        kept.to_csv(fh, index=False)
    index = {
        "format": FORMAT,
        "version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": labels,
        "image_spec": config_to_dict(spec),
        "encoding": "png16",
        "shard_size": shard_size,
        "splits": splits,
        "undecodable": undecodable,
        "skipped": [[str(s[0]), str(s[1]), str(s[2])] for s in manifest.attrs.get("skipped", [])],
        "data": config_to_dict(data) if data is not None else None,
    }
    with tf.io.gfile.GFile(join_path(out, INDEX), "w") as fh:
        fh.write(json.dumps(index, indent=2))
    counts = ", ".join(f"{name} {part['images']}" for name, part in splits.items())
    print(f"wrote {sum(p['images'] for p in splits.values())} images to {out} ({counts})")
    return index
