"""Batching shared by the folder and shard pipelines: label tables gathered per batch, then
label mixing and prefetch, so both yield the same ``(images, labels, mask)`` batches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr_keras.data.manifest import manifest_labels

__all__ = ["label_arrays", "labelled_batches"]


def label_arrays(
    manifest: pd.DataFrame, labels: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, mask) arrays of shape (n, n_labels) as the pipeline yields them.

    Example:
        >>> df = pd.DataFrame({"path": ["a", "b"], "A": [1.0, float("nan")]})
        >>> y, w = label_arrays(df, ["A"])
        >>> y.ravel().tolist(), w.ravel().tolist()
        ([1.0, 0.0], [1.0, 0.0])
    """
    labels = labels or manifest_labels(manifest)
    raw = manifest[labels].to_numpy(dtype=np.float32)
    observed = ~np.isnan(raw)
    return np.where(observed, raw, 0.0).astype(np.float32), observed.astype(np.float32)


def labelled_batches(
    ds,
    *,
    y: np.ndarray,
    w: np.ndarray,
    batch_size: int,
    drop_remainder: bool = False,
    label_mixing=None,
):
    """Batch ``(row, image)`` elements into ``(images, labels, mask)``: one gather per
    batch from the label tables ``y`` and ``w`` (so labels are never cached with the
    images), then ``label_mixing`` (MixUp/CutMix) if given, then prefetch."""
    import tensorflow as tf

    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    y_table, w_table = tf.constant(y), tf.constant(w)

    @tf.autograph.experimental.do_not_convert
    def attach_labels(i, images):
        return images, tf.gather(y_table, i), tf.gather(w_table, i)

    ds = ds.map(attach_labels)
    if label_mixing:
        ds = ds.map(label_mixing, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
