"""Augmentation layers: active only in training, seeded; contrast preprocessing is
deterministic and survives .keras saving with safe_mode."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image
from cxr_keras.models.augment import build_augmentation, build_contrast_preprocessing
from cxr_keras.models.settings import AugmentConfig, PreprocessConfig
from cxr_keras.sample_data import sample_files

CFG = AugmentConfig(
    flip=True,
    rotation=10,
    zoom=0.1,
    translation=0.05,
    brightness=0.1,
    contrast=0.1,
    shear=0.1,
    perspective=0.1,
    erasing=0.5,
    gamma=0.6,
    blur=1.5,
    noise=0.03,
)


@pytest.fixture(scope="module")
def batch():
    return np.stack([load_image(p, ImageSpec(size=64)) for p in sample_files("kermany")[:4]])


def test_all_configured_layers_are_built():
    names = [layer.__class__.__name__ for layer in build_augmentation(CFG).layers]
    assert names == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomBrightness",
        "RandomContrast",
        "RandomShear",
        "RandomPerspective",
        "RandomErasing",
        "RandomGamma",
        "RandomGaussianBlur",
        "RandomNoise",
    ]
    assert build_augmentation(AugmentConfig()) is None


def test_augmentation_is_identity_at_inference_and_random_in_training(batch):
    aug = build_augmentation(CFG, seed=0)
    np.testing.assert_array_equal(np.asarray(aug(batch, training=False)), batch)
    a, b = (np.asarray(aug(batch, training=True)) for _ in range(2))
    assert not np.allclose(a, batch) and not np.allclose(a, b)
    assert a.shape == batch.shape
    assert a.min() >= 0.0 and a.max() <= 1.0 + 1e-6  # value_range (0, 1) respected


def test_seeded_augmentation_repeats(batch):
    first = np.asarray(build_augmentation(CFG, seed=7)(batch, training=True))
    again = np.asarray(build_augmentation(CFG, seed=7)(batch, training=True))
    np.testing.assert_allclose(first, again, atol=1e-6)


@pytest.mark.parametrize("kind", ["clahe", "equalize"])
def test_contrast_preprocessing_is_deterministic_and_saves(batch, kind, tmp_path):
    import keras

    layer = build_contrast_preprocessing(PreprocessConfig(contrast=kind))
    out = np.asarray(layer(batch))
    np.testing.assert_array_equal(out, np.asarray(layer(batch)))
    assert out.min() >= 0.0 and out.max() <= 1.0 and not np.allclose(out, batch)
    inputs = keras.Input((64, 64, 1))
    model = keras.Model(inputs, layer(build_augmentation(CFG, seed=0)(inputs)))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0))
    assert build_contrast_preprocessing(PreprocessConfig()) is None


def test_histogram_equalization_matches_a_hand_computation():
    from cxr_keras.models.layers import HistogramEqualization

    image = np.array([0.0, 0.0, 0.5, 0.5, 0.5, 0.9], np.float32).reshape(1, 2, 3, 1)
    out = np.asarray(HistogramEqualization(bins=4)(image)).ravel()
    # bins 0, 0, 2, 2, 2, 3 -> cdf 2, 2, 5, 6 ; (cdf - 2) / (6 - 2)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.75, 0.75, 0.75, 1.0])
    constant = np.full((1, 4, 4, 1), 0.3, np.float32)
    np.testing.assert_array_equal(np.asarray(HistogramEqualization()(constant)), 0.0)


def test_each_random_layer_draws_its_own_numbers():
    aug = build_augmentation(AugmentConfig(rotation=20, zoom=0.2), seed=3)
    rotation, zoom = aug.layers
    x = np.zeros((64, 16, 16, 1), np.float32)
    angles = np.asarray(rotation.get_random_transformation(x, training=True)["angle"])
    zooms = np.asarray(zoom.get_random_transformation(x, training=True)["height_zoom"])
    assert abs(np.corrcoef(angles.ravel(), zooms.ravel())[0, 1]) < 0.5


def test_the_photometric_layers_cover_the_stress_shifts(batch):
    """Gamma keeps each film's order of values within its range, blur removes fine detail
    from about half the films, noise stays within its bound and the value range."""
    from scipy import ndimage

    from cxr_keras.models.layers import RandomGamma, RandomNoise

    gamma = np.asarray(RandomGamma(0.6, seed=2)(batch, training=True))
    for film, changed in zip(batch, gamma, strict=True):
        order = np.argsort(film.ravel(), kind="stable")
        assert np.all(np.diff(changed.ravel()[order]) >= -1e-6)  # monotone per film
        inside = film > 0.05  # x ** g for g in [1/1.6, 1.6]
        ratio = np.log(changed[inside]) / np.log(film[inside])
        assert ratio.min() >= 1 / 1.6 - 1e-3 and ratio.max() <= 1.6 + 1e-3
        assert np.ptp(ratio) < 1e-3  # one gamma per film
    aug = build_augmentation(AugmentConfig(blur=2.0), seed=0)
    many = np.repeat(batch, 8, axis=0)
    blurred = np.asarray(aug(many, training=True))
    detail = [float(np.var(ndimage.laplace(f[..., 0]))) for f in many]
    after = [float(np.var(ndimage.laplace(f[..., 0]))) for f in blurred]
    softer = np.array(after) < 0.9 * np.array(detail)
    assert 0.2 < softer.mean() < 0.8  # about half the films
    noisy = np.asarray(RandomNoise(0.05, seed=0)(many, training=True))
    assert noisy.min() >= 0 and noisy.max() <= 1
    spread = np.std(noisy - many, axis=(1, 2, 3))
    assert spread.max() < 0.06 and spread.std() > 0.005  # a std drawn per film
    for layer in (RandomGamma(0.6), RandomNoise(0.05)):  # inference: the films as given
        np.testing.assert_array_equal(np.asarray(layer(batch)), batch)


def test_equalisation_undoes_exposure_and_contrast_changes(batch):
    """Why ``preprocess.contrast: equalize`` is a robustness candidate: global histogram
    equalisation maps a film and its gamma- or contrast-changed copy to almost the same
    input (monotone changes keep the ranks it is built from)."""
    from cxr_keras.models.layers import HistogramEqualization

    equalize = HistogramEqualization()
    base = np.asarray(equalize(batch))
    for changed in (batch**0.6, batch**1.6, 0.5 + (batch - 0.5) * 0.4):
        again = np.asarray(equalize(changed.astype(np.float32)))
        assert np.abs(again - base).mean() < 0.02
        assert np.abs(changed - batch).mean() > 0.05  # the raw inputs differ a lot
