"""Augmentation and deterministic contrast preprocessing, built from the config with Keras 3
layers.

- :func:`build_augmentation`: flips, rotation, zoom, translation, brightness, contrast,
  shear, perspective and random erasing as a ``keras.Sequential`` placed inside the model,
  so it runs on the accelerator during training and is inactive at inference (Keras
  random layers are identity when ``training=False``).
- :func:`build_contrast_preprocessing`: CLAHE (Keras' layer) or global histogram
  equalisation (:class:`cxr_keras.layers.HistogramEqualization`), also inside the model,
  so training and prediction apply it identically.
- :func:`build_label_mixing`: MixUp / CutMix, which must see the labels, so they run on
  batches in tf.data; the label masks are mixed with the labels, and an entry ignored in
  either mixed image stays ignored.

All layers take images in [0, 1] (value_range=(0, 1)).

Example:
    >>> from cxr_keras.config import AugmentConfig
    >>> aug = build_augmentation(AugmentConfig(rotation=10, zoom=0.1), seed=0)
    >>> [layer.__class__.__name__ for layer in aug.layers]
    ['RandomRotation', 'RandomZoom']
"""

from __future__ import annotations

from collections.abc import Callable

from cxr_keras.config import AugmentConfig, PreprocessConfig

__all__ = ["build_augmentation", "build_contrast_preprocessing", "build_label_mixing"]

_VALUE_RANGE = (0.0, 1.0)


def build_augmentation(cfg: AugmentConfig, seed: int | None = None):
    """A ``keras.Sequential`` of the configured random layers, or None when none is on.

    Each layer gets its own seed (``seed + i``): one shared seed would draw the same
    random numbers in every layer, e.g. always zooming in when rotating clockwise.
    """
    import keras

    def seed_of(i: int) -> int | None:
        return None if seed is None else seed + i

    fill = {"fill_mode": cfg.fill_mode, "fill_value": 0.0}
    makers = [
        (cfg.flip, lambda s: keras.layers.RandomFlip("horizontal", seed=s)),
        (cfg.rotation, lambda s: keras.layers.RandomRotation(cfg.rotation / 360.0, seed=s, **fill)),
        (cfg.zoom, lambda s: keras.layers.RandomZoom((-cfg.zoom, cfg.zoom), seed=s, **fill)),
        (
            cfg.translation,
            lambda s: keras.layers.RandomTranslation(
                cfg.translation, cfg.translation, seed=s, **fill
            ),
        ),
        (
            cfg.brightness,
            lambda s: keras.layers.RandomBrightness(
                cfg.brightness, value_range=_VALUE_RANGE, seed=s
            ),
        ),
        (
            cfg.contrast,
            lambda s: keras.layers.RandomContrast(cfg.contrast, value_range=_VALUE_RANGE, seed=s),
        ),
        (
            cfg.shear,
            # (0, s): the layer draws the sign itself; a bare number is saved as (-s, s),
            # which the layer then refuses to load (Keras 3.15)
            lambda s: keras.layers.RandomShear((0.0, cfg.shear), (0.0, cfg.shear), seed=s, **fill),
        ),
        (
            cfg.perspective,
            lambda s: keras.layers.RandomPerspective(
                factor=0.5, scale=cfg.perspective, fill_value=0.0, seed=s
            ),
        ),
        (
            cfg.erasing,
            lambda s: keras.layers.RandomErasing(
                factor=cfg.erasing, scale=(0.02, 0.15), value_range=_VALUE_RANGE, seed=s
            ),
        ),
    ]
    layers = [make(seed_of(i)) for i, (on, make) in enumerate(makers) if on]
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")


def build_contrast_preprocessing(cfg: PreprocessConfig):
    """The deterministic contrast layer (CLAHE or histogram equalisation), or None."""
    import keras

    if cfg.contrast == "clahe":
        return keras.layers.ContrastLimitedAdaptiveHistogramEqualization(
            value_range=_VALUE_RANGE,
            clip_limit=cfg.clip_limit,
            tile_grid_size=(cfg.tile_grid, cfg.tile_grid),
            name="contrast_clahe",
        )
    if cfg.contrast == "equalize":
        from cxr_keras.layers import HistogramEqualization

        return HistogramEqualization(name="contrast_equalize")
    return None


def build_label_mixing(cfg: AugmentConfig, seed: int | None = None) -> Callable | None:
    """A tf.data batch function ``(x, y, mask) -> (x, y, mask)`` doing MixUp or CutMix, or
    None.

    With both enabled, each batch uses one of them at random (probability 1/2 each).
    Labels and per-label masks are mixed with the same coefficients; a label ignored
    (mask 0) in either image of a pair is ignored in the mixed image.
    """
    import keras
    import tensorflow as tf

    mixers = []
    if cfg.mixup_alpha > 0:
        mixers.append(keras.layers.MixUp(alpha=cfg.mixup_alpha, seed=seed))
    if cfg.cutmix_alpha > 0:
        mixers.append(
            keras.layers.CutMix(factor=cfg.cutmix_alpha, seed=None if seed is None else seed + 1)
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
