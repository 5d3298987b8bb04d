"""Augmentation and deterministic contrast preprocessing, built from the config with Keras 3
layers.

- :func:`build_augmentation`: flips, rotation, zoom, translation, brightness, contrast,
  shear, perspective, random erasing, gamma, blur and noise as a ``keras.Sequential``
  placed inside the model, so it runs on the accelerator during training and is
  inactive at inference (Keras random layers are identity when ``training=False``).
- :func:`build_contrast_preprocessing`: CLAHE (Keras' layer) or global histogram
  equalisation (:class:`cxr_keras.models.layers.HistogramEqualization`), also inside the model,
  so training and prediction apply it identically.
- MixUp / CutMix must see the labels, so they run on batches in tf.data
  (:func:`cxr_keras.data.mixing.build_label_mixing`).

All layers take images in [0, 1] (value_range=(0, 1)).

Example:
    >>> from cxr_keras.config import AugmentConfig
    >>> aug = build_augmentation(AugmentConfig(rotation=10, zoom=0.1), seed=0)
    >>> [layer.__class__.__name__ for layer in aug.layers]
    ['RandomRotation', 'RandomZoom']
"""

from __future__ import annotations

import math

from cxr_keras.models.settings import AugmentConfig, PreprocessConfig

__all__ = ["build_augmentation", "build_contrast_preprocessing"]

_VALUE_RANGE = (0.0, 1.0)


def build_augmentation(cfg: AugmentConfig, seed: int | None = None):
    """A ``keras.Sequential`` of the configured random layers, or None when none is on.

    Each layer gets its own seed (``seed + i``): one shared seed would draw the same
    random numbers in every layer, e.g. always zooming in when rotating clockwise.
    """
    import keras

    from cxr_keras.models.layers import RandomGamma, RandomNoise

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
        # the photometric shifts of another site (see cxr_keras.evaluation.stress)
        (cfg.gamma, lambda s: RandomGamma(cfg.gamma, seed=s)),
        (
            cfg.blur,
            lambda s: keras.layers.RandomGaussianBlur(
                factor=(0.5, 0.5),  # each image blurred with probability 1/2
                kernel_size=2 * math.ceil(3 * cfg.blur) + 1,  # +-3 sigma
                sigma=(0.0, cfg.blur),
                value_range=_VALUE_RANGE,
                seed=s,
            ),
        ),
        (cfg.noise, lambda s: RandomNoise(cfg.noise, seed=s)),
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
        from cxr_keras.models.layers import HistogramEqualization

        return HistogramEqualization(name="contrast_equalize")
    return None
