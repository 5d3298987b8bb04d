"""Label mixing: MixUp / CutMix must see the labels, so they run on batches in tf.data
(unlike the augmentation layers, which live in the model); the label masks are mixed with
the labels, and an entry ignored in either mixed image stays ignored."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["build_label_mixing"]


def build_label_mixing(
    *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, seed: int | None = None
) -> Callable | None:
    """A tf.data batch function ``(x, y, mask) -> (x, y, mask)`` doing MixUp or CutMix, or
    None.

    With both enabled, each batch uses one of them at random (probability 1/2 each).
    Labels and per-label masks are mixed with the same coefficients; a label ignored
    (mask 0) in either image of a pair is ignored in the mixed image. ``mixup_alpha`` and
    ``cutmix_alpha`` are the config's ``augment.*`` values (0: off).

    Example:
        >>> build_label_mixing() is None, callable(build_label_mixing(mixup_alpha=0.2))
        (True, True)
    """
    import keras
    import tensorflow as tf

    mixers = []
    if mixup_alpha > 0:
        mixers.append(keras.layers.MixUp(alpha=mixup_alpha, seed=seed))
    if cutmix_alpha > 0:
        mixers.append(
            keras.layers.CutMix(factor=cutmix_alpha, seed=None if seed is None else seed + 1)
        )
    if not mixers:
        return None

    def apply(mixer, x, packed):
        out = mixer({"images": x, "labels": packed}, training=True)
        return out["images"], out["labels"]

    def mix(x, y, mask):
        n = tf.shape(y)[-1]
        packed = tf.concat([y, tf.cast(mask > 0, tf.float32)], axis=-1)
        if len(mixers) == 1:
            x, packed = apply(mixers[0], x, packed)
        else:
            x, packed = tf.cond(
                tf.random.uniform([], seed=seed) < 0.5,
                lambda: apply(mixers[0], x, packed),
                lambda: apply(mixers[1], x, packed),
            )
        # a mixed mask below 1 means one of the two images did not observe the label
        observed = tf.cast(packed[:, n:] > 1.0 - 1e-6, tf.float32)
        return tf.cast(x, tf.float32), packed[:, :n], observed

    return mix
