"""The model's settings: the network (backbone, head, what trains), its augmentation and
its in-model contrast preprocessing, validated against the backbone and test-time-view
registries.

Example:
    >>> ModelConfig(backbone="resnet50", dropout=0.3).pretrained
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cxr_keras.core.errors import ConfigError
from cxr_keras.models.backbones import BACKBONE_NAMES
from cxr_keras.models.tta import VIEWS

__all__ = ["AugmentConfig", "ModelConfig", "PreprocessConfig"]


@dataclass
class PreprocessConfig:
    """Deterministic in-model contrast preprocessing, applied at training and prediction.

    Attributes:
        contrast: ``none``, ``clahe`` (Keras' ContrastLimitedAdaptiveHistogramEqualization)
            or ``equalize`` (global histogram equalisation,
            :class:`cxr_keras.models.layers.HistogramEqualization`).
        clip_limit: CLAHE clip limit.
        tile_grid: CLAHE tiles per side.
    """

    contrast: Literal["none", "clahe", "equalize"] = "none"
    clip_limit: float = 2.0
    tile_grid: int = 8


@dataclass
class AugmentConfig:
    """Training-time augmentation. Geometric/photometric layers run inside the model (on the
    accelerator, inactive at inference); MixUp/CutMix run in tf.data because they mix labels.

    Attributes:
        flip: random horizontal flips (off by default: the heart is on the left).
        rotation: maximum rotation in degrees.
        zoom: maximum zoom as a fraction of the size (0.1 = +-10 %).
        translation: maximum shift as a fraction of the size.
        brightness: maximum brightness change as a fraction of the value range.
        contrast: maximum contrast change factor.
        shear: maximum shear along each axis, as a fraction (positioning differences).
        perspective: maximum perspective distortion, as a fraction of the size, applied
            to half of the images (a tilted patient or detector).
        erasing: probability of erasing one random rectangle (2-15 % of the image) with
            noise (random erasing / cutout: no single region may decide).
        gamma: exposure: values raised to a gamma drawn log-uniformly in
            [1 / (1 + gamma), 1 + gamma] (0.6: from 0.625 to 1.6).
        blur: maximum Gaussian blur sigma in pixels of the model input, applied to half
            of the images (a softer detector, or a film downscaled and enlarged again).
        noise: maximum standard deviation of Gaussian noise added to each image (drawn
            per image; quantum noise of a low-dose or portable film).
        fill_mode: how pixels moved in from outside are filled.
        mixup_alpha: Beta(alpha, alpha) of MixUp; 0 disables it.
        cutmix_alpha: Beta(alpha, alpha) of CutMix; 0 disables it.
    """

    flip: bool = False
    rotation: float = 0.0
    zoom: float = 0.0
    translation: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    shear: float = 0.0
    perspective: float = 0.0
    erasing: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    fill_mode: Literal["constant", "reflect", "nearest", "wrap"] = "constant"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self) -> None:
        fractions = ("zoom", "translation", "brightness", "contrast", "shear", "perspective")
        for name in ("rotation", *fractions, "erasing", "gamma", "blur", "noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.rotation <= 180:
            raise ConfigError(f"augment.rotation: degrees in [0, 180], got {self.rotation}")
        if self.erasing > 1:
            raise ConfigError(f"augment.erasing: a probability in [0, 1], got {self.erasing}")
        for name in fractions:
            if getattr(self, name) >= 1:
                raise ConfigError(f"augment.{name}: a fraction below 1, got {getattr(self, name)}")
        if self.gamma > 3:
            raise ConfigError(f"augment.gamma: at most 3 (gamma from 0.25 to 4), got {self.gamma}")
        if self.blur > 5:
            raise ConfigError(f"augment.blur: a sigma of at most 5 pixels, got {self.blur}")
        if self.noise > 0.2:
            raise ConfigError(f"augment.noise: a std of at most 0.2, got {self.noise}")

    @property
    def geometric_or_photometric(self) -> bool:
        """True when any in-model augmentation layer is configured."""
        return bool(
            self.flip
            or self.rotation
            or self.zoom
            or self.translation
            or self.brightness
            or self.contrast
            or self.shear
            or self.perspective
            or self.erasing
            or self.gamma
            or self.blur
            or self.noise
        )


@dataclass
class ModelConfig:
    """The network: backbone, its weights, the head and which layers train.

    Attributes:
        backbone: a name of the registry :data:`~cxr_keras.models.backbones.BACKBONES`
            (``keras.applications`` models, built flat so every inner layer stays
            reachable, or ``custom_cnn``, the from-scratch baseline).
        weights: ``none`` (random init), ``imagenet`` (downloaded by Keras; needs internet
            once), or the path of a backbone weights file (e.g. the no-top ``.h5`` Keras
            would download).
        pooling: ``avg`` (global average) or ``lse`` (log-sum-exp pooling, sharpness
            ``lse_r``, as used for NIH ChestX-ray14).
        lse_r: sharpness of log-sum-exp pooling.
        dropout: dropout rate before the dense layers.
        dense_units: units of an optional Dense(relu) layer before the logits (0: none).
        dense_l2: L2 penalty of that layer.
        transition: channels of an optional 1x1 convolution (ReLU) between the backbone's
            feature map and the pooling, the ChestX-ray14 "transition layer" (e.g. 1024
            after ResNet-50's 2048); 0: none.
        freeze: ``none`` (everything trains), ``backbone`` (only the head trains), or a
            backbone layer name: that layer and the ones after it train.
        freeze_batchnorm: keep the BatchNormalization layers of a pretrained backbone in
            inference mode even where the backbone trains (the usual fine-tuning advice).
        filters: channels of the custom CNN's blocks.
        normalization: the custom CNN's normalization: ``batch`` (BatchNorm after every
            conv) or ``none`` (convs with biases; training and inference compute the same
            network, for very small data or batch sizes where batch statistics are noise).
        tta: test-time views the exported model averages its logit over, besides the image
            itself (:data:`cxr_keras.models.tta.VIEWS`: zoom_in, zoom_out, brighter, darker,
            shift_left, shift_right); empty: none.
    """

    backbone: Literal[BACKBONE_NAMES] = "custom_cnn"
    weights: str = "none"
    pooling: Literal["avg", "lse"] = "avg"
    lse_r: float = 10.0
    dropout: float = 0.2
    dense_units: int = 0
    dense_l2: float = 1e-4
    transition: int = 0
    freeze: str = "none"
    freeze_batchnorm: bool = True
    filters: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    normalization: Literal["batch", "none"] = "batch"
    tta: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [view for view in self.tta if view not in VIEWS]
        if unknown or len(set(self.tta)) < len(self.tta):
            raise ConfigError(f"model.tta: distinct views from {sorted(VIEWS)}, got {self.tta}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout: a rate in [0, 1), got {self.dropout}")
        if self.dense_units < 0 or self.dense_l2 < 0 or self.transition < 0 or self.lse_r <= 0:
            raise ConfigError(
                "model.dense_units, dense_l2 and transition must be >= 0 and lse_r > 0"
            )
        if not self.filters or min(self.filters) < 1:
            raise ConfigError(f"model.filters: positive channel counts, got {self.filters}")

    @property
    def pretrained(self) -> bool:
        """True when the backbone starts from trained weights (ImageNet or a file)."""
        return self.weights not in ("none", "")
