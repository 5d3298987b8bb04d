"""Assemble the model the architecture describes, and choose which layers train.

    image (H, W, 1) float32 in [0, 1]
      -> augmentation layers (active only in training)
      -> deterministic contrast preprocessing (CLAHE / histogram equalisation), if any
      -> BackboneInput: channel repeat + the backbone's own input scaling
      -> backbone, built flat (every inner layer reachable by name)
      -> head: [1x1 conv transition] -> pooling -> dropout -> [Dense(relu, L2)]
         -> Dense(n) "logits" (float32)

Example:
    >>> from cxr_keras.config import ImageSpec, ModelConfig
    >>> spec = ImageSpec(size=32)
    >>> built = build_model(ModelConfig(filters=[8, 16]), spec=spec, labels=["PNEUMONIA"])
    >>> built.model.output.shape, built.feature_layer
    ((None, 1), 'last_conv_relu')
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from cxr_keras.core.errors import ConfigError
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.models.settings import AugmentConfig, ModelConfig, PreprocessConfig

__all__ = ["BuiltModel", "build_model", "check_layer_name", "set_trainable", "trainable_summary"]


@dataclass
class BuiltModel:
    """A model and what later stages need to know about its structure."""

    model: object  # keras.Model
    backbone: str
    feature_layer: str  # the last feature map (Grad-CAM's default target)
    backbone_layers: list[str] = field(default_factory=list)  # input to output order


def build_model(
    model_cfg: ModelConfig,
    *,
    spec: ImageSpec,
    labels: list[str],
    augment: AugmentConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    seed: int | None = None,
    mixed_precision: bool = False,
) -> BuiltModel:
    """Build the (uncompiled) classifier; layers train as ``model_cfg.freeze`` says.

    ``mixed_precision``: float16 compute with float32 variables; the logits layer stays
    float32 so the loss is computed in float32.
    """
    import keras

    from cxr_keras.models.augment import build_augmentation, build_contrast_preprocessing
    from cxr_keras.models.backbones import BACKBONES, build_backbone
    from cxr_keras.models.heads import build_head
    from cxr_keras.models.layers import BackboneInput, TrainingOnly

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        spec_entry = BACKBONES.get(model_cfg.backbone)
        if spec_entry is None:
            raise ConfigError(f"model.backbone: unknown {model_cfg.backbone!r}")
        inputs = keras.Input((*spec.size, 1), name="image")
        x = inputs
        augmentation = build_augmentation(augment, seed=seed) if augment else None
        if augmentation is not None:  # on only in fit: see TrainingOnly
            x = TrainingOnly(augmentation, name="augmentation_in_training")(x)
        contrast = build_contrast_preprocessing(preprocess) if preprocess else None
        if contrast is not None:
            x = contrast(x)
        x = BackboneInput(spec_entry.channels, spec_entry.scaling, name="backbone_input")(x)
        backbone = build_backbone(
            model_cfg.backbone,
            x,
            weights=model_cfg.weights,
            filters=model_cfg.filters,
            normalization=model_cfg.normalization,
        )
        logits = build_head(
            backbone.features,
            len(labels),
            pooling=model_cfg.pooling,
            lse_r=model_cfg.lse_r,
            dropout=model_cfg.dropout,
            dense_units=model_cfg.dense_units,
            dense_l2=model_cfg.dense_l2,
            seed=seed,
            transition=model_cfg.transition,
        )
        model = keras.Model(inputs, logits, name=f"cxr_{model_cfg.backbone}")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    built = BuiltModel(model, model_cfg.backbone, backbone.feature_layer, backbone.layer_names)
    set_trainable(
        built,
        model_cfg.freeze,
        freeze_batchnorm=model_cfg.freeze_batchnorm and model_cfg.pretrained,
    )
    return built


def set_trainable(built: BuiltModel, freeze: str, freeze_batchnorm: bool = False) -> None:
    """Choose the training layers: ``none`` (all), ``backbone`` (only the head), ``all``
    (same as none), or a backbone layer name (that layer and those after it).

    BatchNormalization layers that do not train run in inference mode (Keras 3 does so for
    any BN layer with ``trainable=False``); ``freeze_batchnorm`` keeps all backbone BN
    layers so, the usual advice when fine-tuning a pretrained backbone.
    """
    import keras

    model = built.model
    names = built.backbone_layers
    first = check_layer_name(built, freeze)
    training = set(names[first:])
    backbone = set(names)
    for layer in model.layers:
        if layer.name not in backbone:
            layer.trainable = True
            continue
        layer.trainable = layer.name in training
        if freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def check_layer_name(built: BuiltModel, freeze: str) -> int:
    """The index of the first training backbone layer for a freeze setting; raises
    :class:`ConfigError`, with the nearest names, for a layer the backbone does not have."""
    names = built.backbone_layers
    if freeze in ("none", "all", ""):
        return 0
    if freeze == "backbone":
        return len(names)
    if freeze in names:
        return names.index(freeze)
    near = difflib.get_close_matches(freeze, names, n=3)
    hint = f"; did you mean {near}?" if near else f"; its layers run {names[0]} ... {names[-1]}"
    raise ConfigError(
        f"model.freeze / fine_tune.unfreeze_from: {freeze!r} is not a layer of "
        f"{built.backbone}{hint}"
    )


def trainable_summary(model) -> dict[str, int]:
    """Counts of layers with and without trainable weights, and of trainable parameters."""
    with_weights = [layer for layer in model.layers if layer.weights]
    trainable = [layer for layer in with_weights if layer.trainable_weights]
    return {
        "layers_with_weights": len(with_weights),
        "trainable_layers": len(trainable),
        "frozen_layers": len(with_weights) - len(trainable),
        "trainable_params": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
    }
