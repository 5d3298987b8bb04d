"""Backbones, heads, custom layers and freezing."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cxr_keras.core.errors import ConfigError
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.serialize import section_from_dict
from cxr_keras.data.io import load_image
from cxr_keras.models.backbones import BACKBONE_NAMES, WeightsUnavailableError
from cxr_keras.models.build import build_model, set_trainable, trainable_summary
from cxr_keras.models.layers import BackboneInput, LogSumExpPooling
from cxr_keras.models.losses import MaskedBinaryLoss
from cxr_keras.models.settings import ModelConfig
from cxr_keras.sample_data import sample_files


@pytest.fixture(scope="module")
def real_batch():
    """Four real films (two NORMAL, two PNEUMONIA) at 80 px, and their labels."""
    files = sample_files("kermany")
    chosen = [f for f in files if "NORMAL" in str(f)][:2] + [
        f for f in files if "person" in f.name
    ][:2]
    x = np.stack([load_image(f, ImageSpec(size=80)) for f in chosen])
    return x, np.array([[0.0], [0.0], [1.0], [1.0]], np.float32)


def bn_momenta(model) -> set[float]:
    return {
        layer.momentum
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_every_backbone_builds_and_takes_a_training_step(backbone, real_batch):
    x, y = real_batch
    built = build_model(
        ModelConfig(backbone=backbone, dense_units=8), spec=ImageSpec(size=80), labels=["PNEUMONIA"]
    )
    model = built.model
    assert model.output.shape == (None, 1) and model.get_layer("logits").dtype == "float32"
    assert model.get_layer(built.feature_layer)  # Grad-CAM's target is reachable by name
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=MaskedBinaryLoss(), run_eagerly=True
    )  # one step: eager is far cheaper than tracing the graph
    before = [w.numpy().copy() for w in model.trainable_weights[:3]]
    loss = model.train_on_batch(x, y, sample_weight=np.ones_like(y))
    assert np.isfinite(loss)
    assert any(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights[:3], strict=True)
    )


def test_freezing_counts(real_batch):
    built = build_model(
        ModelConfig(backbone="resnet50", dense_units=8), spec=ImageSpec(size=64), labels=["A", "B"]
    )
    everything = trainable_summary(built.model)
    assert everything["frozen_layers"] == 0
    set_trainable(built, "backbone")
    head_only = trainable_summary(built.model)
    assert head_only["trainable_layers"] == 2  # head_dense and logits
    assert head_only["trainable_params"] == 2048 * 8 + 8 + 8 * 2 + 2
    set_trainable(built, "conv5_block1_1_conv")
    partial = trainable_summary(built.model)
    stage5 = [
        n for n in built.backbone_layers[built.backbone_layers.index("conv5_block1_1_conv") :]
    ]
    with_weights = [n for n in stage5 if built.model.get_layer(n).weights]
    assert partial["trainable_layers"] == len(with_weights) + 2
    set_trainable(built, "conv5_block1_1_conv", freeze_batchnorm=True)
    bns = [
        n
        for n in with_weights
        if isinstance(built.model.get_layer(n), keras.layers.BatchNormalization)
    ]
    assert trainable_summary(built.model)["trainable_layers"] == len(with_weights) - len(bns) + 2
    with pytest.raises(ConfigError, match="did you mean"):
        set_trainable(built, "conv5_block1_1_cnv")


def test_frozen_batchnorm_runs_in_inference_mode(real_batch):
    x, _ = real_batch
    built = build_model(
        ModelConfig(filters=[4, 8], dropout=0.0), spec=ImageSpec(size=80), labels=["A"]
    )
    set_trainable(built, "backbone")
    model = built.model
    # frozen BN layers use their moving statistics even when called in training mode
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-5)


def test_custom_cnn_without_normalization(real_batch):
    x, _ = real_batch
    cfg = ModelConfig(filters=[4, 8], dropout=0.0, normalization="none")
    built = build_model(cfg, spec=ImageSpec(size=80), labels=["A"])
    layers = built.model.layers
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)
    assert built.model.get_layer("last_conv").use_bias and built.feature_layer == "last_conv_relu"
    # without BatchNorm, training and inference mode compute the same network
    np.testing.assert_allclose(built.model(x, training=True), built.model(x, training=False))
    with pytest.raises(ConfigError, match="normalization"):
        section_from_dict(ModelConfig, {"normalization": "group"}, "model")


@pytest.mark.parametrize(
    ("scaling", "mode"), [("torch", "torch"), ("caffe", "caffe"), ("tf", "tf")]
)
def test_backbone_input_matches_keras_preprocessing(scaling, mode, real_batch):
    x, _ = real_batch
    ours = np.asarray(BackboneInput(3, scaling)(x))
    reference = keras.applications.imagenet_utils.preprocess_input(
        np.repeat(x, 3, axis=-1) * 255.0, mode=mode
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-3)


def test_log_sum_exp_pooling_between_mean_and_max():
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype("float32")
    low, high = (np.asarray(LogSumExpPooling(r=r)(x)) for r in (1e-3, 1e4))
    np.testing.assert_allclose(low, x.mean(axis=(1, 2)), atol=2e-3)  # ~ mean + r var / 2
    np.testing.assert_allclose(high, x.max(axis=(1, 2)), atol=1e-3)
    r = 10.0
    expected = np.log(np.mean(np.exp(r * x), axis=(1, 2))) / r
    np.testing.assert_allclose(np.asarray(LogSumExpPooling(r=r)(x)), expected, rtol=1e-5)


def test_imagenet_weights_offline_say_how_to_provide_them(monkeypatch):
    url = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/x_no_top.h5"

    def offline(*args, **kwargs):  # what Keras raises when the download fails
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.mobilenet_v3.file_utils.get_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(
            ModelConfig(backbone="mobilenetv3small", weights="imagenet"),
            spec=ImageSpec(size=64),
            labels=["A"],
        )
    message = str(info.value)
    assert url in message and "~/.keras/models/" in message and "model.weights" in message
    with pytest.raises(ConfigError, match="has no ImageNet weights"):
        build_model(ModelConfig(weights="imagenet"), spec=ImageSpec(size=64), labels=["A"])


def test_backbone_weights_from_a_local_file(tmp_path):
    source = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    source.save_weights(tmp_path / "backbone.weights.h5")
    built = build_model(
        ModelConfig(backbone="mobilenetv3small", weights=str(tmp_path / "backbone.weights.h5")),
        spec=ImageSpec(size=64),
        labels=["A"],
    )
    conv = [layer for layer in source.layers if layer.weights][1]
    np.testing.assert_array_equal(
        built.model.get_layer(conv.name).weights[0].numpy(), conv.weights[0].numpy()
    )
    # pretrained statistics keep Keras' own BatchNorm momentum (0.999 for MobileNetV3)
    assert bn_momenta(built.model) == {0.999}
    with pytest.raises(ConfigError, match="neither none, imagenet nor an existing weights file"):
        build_model(
            ModelConfig(backbone="mobilenetv3small", weights="nope.h5"),
            spec=ImageSpec(size=64),
            labels=["A"],
        )


def test_from_scratch_batchnorm_follows_training_statistics(tmp_path):
    """MobileNetV3 from scratch with Keras' momentum 0.999 answered a constant at
    inference after 6 epochs on Kermany (validation AUC 0.5): capped at 0.99."""
    from cxr_keras.models.backbones import FROM_SCRATCH_BN_MOMENTUM

    built = build_model(
        ModelConfig(backbone="mobilenetv3small"), spec=ImageSpec(size=64), labels=["A"]
    )
    assert bn_momenta(built.model) == {FROM_SCRATCH_BN_MOMENTUM}
    built.model.save(tmp_path / "m.keras")  # the momentum is part of the saved model
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert bn_momenta(loaded) == {FROM_SCRATCH_BN_MOMENTUM}


def test_mixed_precision_keeps_logits_float32(real_batch):
    x, _ = real_batch
    built = build_model(
        ModelConfig(filters=[4, 8]), spec=ImageSpec(size=80), labels=["A"], mixed_precision=True
    )
    assert built.model.get_layer("last_conv").compute_dtype == "float16"
    assert built.model(x).dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing leaks out


def test_a_local_weights_file_builds_the_network_imagenet_weights_build(monkeypatch, tmp_path):
    """EfficientNet adds a rescaling layer only for ImageNet weights: a local copy of those
    weights must give the same network."""
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    reference.save_weights(tmp_path / "efficientnetb0_notop.weights.h5")
    from_file = build_model(
        ModelConfig(
            backbone="efficientnetb0", weights=str(tmp_path / "efficientnetb0_notop.weights.h5")
        ),
        spec=ImageSpec(size=64),
        labels=["A"],
    ).model

    def downloaded(*args, **kwargs):  # the "imagenet" route, served from the same file
        return str(tmp_path / "efficientnetb0_notop.weights.h5")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", downloaded)
    from_imagenet = build_model(
        ModelConfig(backbone="efficientnetb0", weights="imagenet"),
        spec=ImageSpec(size=64),
        labels=["A"],
    ).model

    def rescalings(model):
        return sum(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)

    assert rescalings(from_file) == rescalings(from_imagenet) == 2
    x = np.random.default_rng(0).random((2, 64, 64, 1)).astype("float32")
    from_imagenet.get_layer("logits").set_weights(from_file.get_layer("logits").get_weights())
    np.testing.assert_allclose(from_file(x), from_imagenet(x), atol=1e-5)


def test_transition_layer_maps_resnet50_features_to_1024_channels_before_lse(real_batch):
    x, _ = real_batch
    cfg = ModelConfig(backbone="resnet50", transition=1024, pooling="lse", freeze="backbone")
    built = build_model(cfg, spec=ImageSpec(size=80), labels=["A", "B"])
    model = built.model
    transition = model.get_layer("transition")
    assert model.get_layer(built.feature_layer).output.shape[-1] == 2048
    assert transition.output.shape[1:] == (3, 3, 1024)
    assert transition.kernel.shape == (1, 1, 2048, 1024) and transition.trainable
    assert model.get_layer("pool_lse").input.shape[-1] == 1024
    assert np.all(np.isfinite(model.predict(x, verbose=0)))
    with pytest.raises(ConfigError, match="transition"):
        ModelConfig(transition=-1)
