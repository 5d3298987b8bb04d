"""Typed configuration: one YAML file describes a run, validated into dataclasses.

Every setting of a run lives here, in one place. A YAML recipe (``tuner_configs/*.yaml``)
is loaded with :func:`load_config`, command-line overrides (``--set data.batch_size=16``)
are applied on top, and the result is checked early: unknown keys, wrong types and values
outside their allowed choices raise :class:`ConfigError` naming the key, what was expected
and what was received.

Example:
    >>> cfg = config_from_dict({"name": "demo", "data": {"source": "folder", "root": "x"}})
    >>> cfg.image.size
    (224, 224)
    >>> cfg.data.split.val
    0.15
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "BACKBONES",
    "AugmentConfig",
    "CardConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "FineTuneConfig",
    "ImageSpec",
    "ModelConfig",
    "PreprocessConfig",
    "SearchConfig",
    "SplitConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "resolve_path",
    "run_identity",
    "section_from_dict",
    "with_values",
]

SAMPLE_PREFIX = "sample:"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type or range."""


@dataclass
class ImageSpec:
    """How a file on disk becomes the model input (stored in every model artifact).

    Attributes:
        size: model input (height, width); an int means a square.
        resize: ``squash`` stretches the whole image to the size (as the public Kermany
            and NIH benchmarks do); ``pad`` keeps the aspect ratio and pads with black;
            ``crop`` takes the central square, then resizes (TorchXRayVision's
            ``XRayCenterCrop``).
        crop_borders: first remove uniform frames (black, white or gray padding, burned-in
            frame bands) around the radiograph (:mod:`cxr_keras.data.borders`).
        dicom_window: ``auto`` (VOI LUT or window from the header, else min-max),
            ``header`` (require the header's VOI LUT/window), ``minmax``, or
            ``[center, width]`` in modality units.
        max_pixels: refuse source images with more pixels than this (decompression bombs).
        min_side: refuse images whose shorter side is below this many pixels.
        max_aspect: refuse images whose longer/shorter side ratio exceeds this.
    """

    size: tuple[int, int] = (224, 224)
    resize: Literal["squash", "pad", "crop"] = "squash"
    crop_borders: bool = False
    dicom_window: Literal["auto", "header", "minmax"] | tuple[float, float] = "auto"
    max_pixels: int = 60_000_000
    min_side: int = 32
    max_aspect: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 8:
            raise ConfigError(
                f"image.size: expected an int or [height, width] >= 8, got {self.size}"
            )
        if self.max_pixels <= 0 or self.min_side < 1 or self.max_aspect < 1:
            raise ConfigError("image.max_pixels, min_side and max_aspect must be positive")
        if isinstance(self.dicom_window, (tuple, list)) and self.dicom_window[1] <= 0:
            raise ConfigError(f"image.dicom_window: the width must be > 0, got {self.dicom_window}")


@dataclass
class PreprocessConfig:
    """Deterministic in-model contrast preprocessing, applied at training and prediction.

    Attributes:
        contrast: ``none``, ``clahe`` (Keras' ContrastLimitedAdaptiveHistogramEqualization)
            or ``equalize`` (global histogram equalisation,
            :class:`cxr_keras.layers.HistogramEqualization`).
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
    fill_mode: Literal["constant", "reflect", "nearest", "wrap"] = "constant"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self) -> None:
        fractions = ("zoom", "translation", "brightness", "contrast", "shear", "perspective")
        for name in ("rotation", *fractions, "erasing"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.rotation <= 180:
            raise ConfigError(f"augment.rotation: degrees in [0, 180], got {self.rotation}")
        if self.erasing > 1:
            raise ConfigError(f"augment.erasing: a probability in [0, 1], got {self.erasing}")
        for name in fractions:
            if getattr(self, name) >= 1:
                raise ConfigError(f"augment.{name}: a fraction below 1, got {getattr(self, name)}")

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
        )


@dataclass
class SplitConfig:
    """How the manifest is split into train/val/test, always disjoint by patient.

    Attributes:
        method: ``auto`` keeps a split the source provides (a ``split`` column, e.g. the
            Kermany ``train``/``val`` folders) and otherwise splits by patient; ``patient``
            always re-splits by patient; ``column`` requires the source's split.
        val: fraction of patients for validation (``patient`` splits).
        test: fraction of patients for test (``patient`` splits).
        stratify: keep label proportions similar across splits where possible.
        train_fraction: keep only this fraction of the training patients (learning curves:
            how validation metrics grow with the training set); val and test are untouched.
    """

    method: Literal["auto", "patient", "column"] = "auto"
    val: float = 0.15
    test: float = 0.0
    stratify: bool = True
    train_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ConfigError(
                f"data.split: val and test must be fractions summing below 1, "
                f"got val={self.val} test={self.test}"
            )
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"data.split.train_fraction: in (0, 1], got {self.train_fraction}")


@dataclass
class DataConfig:
    """Where the images and labels are, how they are read, and how batches are fed.

    Attributes:
        source: ``folder`` (one folder per class, optional split level), ``csv``
            (a labels CSV with paths), ``dicom`` (a folder of DICOM files, labels
            from a CSV or from class folders), or a named public dataset as its provider
            ships it: ``kermany``, ``nih``, ``chexpert``, ``rsna`` (see
            :mod:`cxr_keras.data.datasets`; ``root`` is its folder or its label file), or
            ``shards``: a folder of TFRecord shards (:mod:`cxr_keras.data.shard`; local or
            any ``tf.io.gfile`` path).
        root: the folder the images are under. ``sample:kermany`` names a bundled sample.
            A list of folders (folder and dicom sources) reads them all as one dataset,
            e.g. two packs of the Kermany TRAIN set.
        csv: the labels CSV (``csv`` and ``dicom`` sources).
        labels: the labels to learn, in model output order. Default: every label found
            (a named dataset: all of its labels). A preset name is a list: ``nih14``,
            ``chexpert14``, ``chexpert_competition`` (the five competition labels).
        label_map: labels to learn made of the source's labels, ``{new: [source labels]}``:
            positive where any source label is, negative where all are (e.g. RSNA
            ``{Abnormal: [Lung Opacity, No Lung Opacity / Not Normal]}``); see
            :mod:`cxr_keras.data.label_map`.
        exclude: labels whose positive images are left out, e.g. RSNA's ``No Lung Opacity
            / Not Normal`` to learn Lung Opacity vs. Normal.
        negative_classes: class folders that mean "no label positive" (folder source).
        path_column: the CSV column with image paths, relative to ``root``.
        finding_column: a CSV column of separator-joined findings (NIH ``Finding Labels``);
            when absent, every label is its own column (CheXpert style).
        finding_separator: the separator of ``finding_column``.
        patient_column: the CSV column with patient ids (else parsed from file names).
        view_column: the CSV column with the view (PA/AP/LATERAL).
        id_column: the CSV column matched to DICOM file stems (``dicom`` source).
        patient_id_pattern: a regular expression whose first group is the patient id,
            searched in each path relative to ``root``; default: the known public patterns.
        patient_id_key: the secret key of the hash that replaces DICOM PatientIDs
            (default: ``$CXR_KERAS_PATIENT_KEY`` or a per-user key file; see
            :mod:`cxr_keras.data.privacy`).
        patient_ids_per_split: patient ids are only unique within each split folder (the
            official Kermany release), so they are prefixed with the split.
        uncertain: policy for uncertain (-1) labels, ``zeros``/``ones``/``ignore``, or a
            mapping label -> policy (other labels: ``zeros``). Default: ``zeros``; for
            ``chexpert`` the paper's (U-Ones for Atelectasis and Edema, else U-Zeros).
        blank: policy for blank label cells, ``zeros``/``ones``/``ignore``.
        verify: ``header`` reads each file's header before training (format, size,
            truncation, DICOM attributes) and skips bad files; ``full`` decodes each file;
            ``none`` trusts the files.
        split: the train/val/test split.
        batch_size: images per batch.
        cache: ``memory`` caches decoded images in RAM; ``none`` decodes every epoch; any
            other value is a directory for a tf.data file cache.
        shuffle_buffer: shuffle buffer size; default the whole training split.
        options: keyword options of a named dataset's adapter, e.g. ``{official_val:
            false}`` (kermany), ``{frontal_only: true}`` (chexpert), ``{detailed_csv:
            FILE}`` (rsna).
    """

    source: Literal["folder", "csv", "dicom", "kermany", "nih", "chexpert", "rsna", "shards"]
    root: str | list[str]
    csv: str | None = None
    labels: list[str] | str | None = None
    label_map: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    negative_classes: list[str] = field(default_factory=lambda: ["NORMAL", "No Finding"])
    path_column: str = "path"
    finding_column: str | None = None
    finding_separator: str = "|"
    patient_column: str | None = None
    view_column: str | None = None
    id_column: str | None = None
    patient_id_pattern: str | None = None
    patient_id_key: str | None = None
    patient_ids_per_split: bool = False
    uncertain: Literal["zeros", "ones", "ignore"] | dict[str, str] | None = None
    blank: Literal["zeros", "ones", "ignore"] = "zeros"
    verify: Literal["header", "full", "none"] = "header"
    split: SplitConfig = field(default_factory=SplitConfig)
    batch_size: int = 32
    cache: str = "memory"
    shuffle_buffer: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            from cxr_keras.data.labels import LABEL_PRESETS

            if self.labels not in LABEL_PRESETS:
                raise ConfigError(
                    f"data.labels: a list of labels or a preset ({', '.join(LABEL_PRESETS)}), "
                    f"got {self.labels!r}"
                )
            self.labels = list(LABEL_PRESETS[self.labels])
        if self.options:
            self._check_options()
        if self.label_map or self.exclude:
            self._check_label_map()
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size: must be >= 1, got {self.batch_size}")
        if self.shuffle_buffer is not None and self.shuffle_buffer < 1:
            raise ConfigError(f"data.shuffle_buffer: must be >= 1, got {self.shuffle_buffer}")
        if self.source == "csv" and not self.csv:
            raise ConfigError("data.csv: the csv source needs a labels CSV file")
        if isinstance(self.root, list):
            if not self.root:
                raise ConfigError("data.root: an empty list; give a folder or folders")
            if self.source == "csv":
                raise ConfigError(
                    "data.root: one folder for the csv source (its paths are relative to it)"
                )
        if not self.finding_separator:
            raise ConfigError("data.finding_separator: must not be empty")
        if isinstance(self.uncertain, dict):
            if not self.uncertain:
                raise ConfigError(
                    "data.uncertain: an empty mapping; give a policy or label: policy"
                )
            bad = {k: v for k, v in self.uncertain.items() if v not in ("zeros", "ones", "ignore")}
            if bad:
                raise ConfigError(f"data.uncertain: policies must be zeros/ones/ignore, got {bad}")
        if self.patient_id_pattern is not None:
            try:
                re.compile(self.patient_id_pattern)
            except re.error as exc:
                raise ConfigError(
                    f"data.patient_id_pattern: not a regular expression ({exc})"
                ) from None
        if self.cache not in ("memory", "none") and not any(c in self.cache for c in "/\\"):
            near = difflib.get_close_matches(self.cache, ["memory", "none"], n=1)
            raise ConfigError(
                f"data.cache: memory, none, or a folder path (with a /), got {self.cache!r}"
                + (f" (did you mean {near[0]!r}?)" if near else "")
            )

    def _check_label_map(self) -> None:
        """Mapped labels name their sources; excluded labels are not learned."""
        for label, sources in self.label_map.items():
            if not isinstance(sources, list) or not sources or label in sources:
                raise ConfigError(
                    f"data.label_map.{label}: a non-empty list of other labels, got {sources!r}"
                )
        learned = self.labels or list(self.label_map)
        clash = sorted(set(self.exclude) & set(learned))
        if clash:
            raise ConfigError(
                f"data.exclude: {clash} are learned too; leaving out their positive images "
                "would leave that label without positives"
            )

    def _check_options(self) -> None:
        """``options`` belong to a named dataset and must be its adapter's arguments."""
        from cxr_keras.data.datasets import DATA_KEYS, DATASETS, adapter_parameters

        if self.source not in DATASETS:
            raise ConfigError(
                f"data.options: only for the named datasets ({', '.join(DATASETS)}), "
                f"not for the {self.source} source"
            )
        accepted = [p for p in adapter_parameters(self.source) if p not in DATA_KEYS]
        unknown = sorted(set(self.options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"data.options: {self.source} has no option(s) {unknown}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )


BACKBONES = (
    "custom_cnn",
    "densenet121",
    "resnet50",
    "efficientnetb0",
    "inceptionv3",
    "mobilenetv3small",
    "mobilenetv3large",
)


@dataclass
class ModelConfig:
    """The network: backbone, its weights, the head and which layers train.

    Attributes:
        backbone: one of :data:`BACKBONES` (``keras.applications`` models, built flat so
            every inner layer stays reachable, or ``custom_cnn``, the from-scratch baseline).
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
            itself (:data:`cxr_keras.tta.VIEWS`: zoom_in, zoom_out, brighter, darker,
            shift_left, shift_right); empty: none.
    """

    backbone: Literal[BACKBONES] = "custom_cnn"
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
        from cxr_keras.tta import VIEWS

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


@dataclass
class FineTuneConfig:
    """The optional second phase: unfreeze and train on with a lower learning rate.

    Attributes:
        epochs: epochs of the second phase (0: no second phase).
        learning_rate: its learning rate (typically 10x lower).
        unfreeze_from: ``all`` or the backbone layer from which layers train.
    """

    epochs: int = 0
    learning_rate: float = 1e-5
    unfreeze_from: str = "all"

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.learning_rate <= 0:
            raise ConfigError("training.fine_tune: epochs >= 0 and learning_rate > 0 expected")


@dataclass
class TrainingConfig:
    """How the model is trained.

    Attributes:
        epochs: epochs of the first (or only) phase.
        optimizer: ``adam`` or ``adamw``.
        learning_rate: initial learning rate.
        weight_decay: AdamW weight decay.
        loss: ``bce`` (binary cross-entropy) or ``focal`` (Keras' binary focal loss).
        focal_gamma: focusing parameter of the focal loss.
        label_smoothing: smoothing of the 0/1 targets.
        class_weights: ``none``; ``balanced`` weighs positives and negatives of each label
            by ``n / (2 n_class)``; ``positive`` weighs positives by ``n_neg / n_pos``.
        monitor: the validation metric that picks the best epoch (``val_auc``: macro AUC).
        lr_schedule: ``plateau`` (constant, lowered by ReduceLROnPlateau) or ``cosine``
            (Keras' CosineDecay over each phase's steps, down to ``min_learning_rate``;
            no plateau drops).
        warmup_epochs: with ``cosine``, epochs of linear warm-up from a tenth of
            ``learning_rate`` before the decay.
        reduce_lr_patience: epochs without improvement before the learning rate drops
            (0: never; ``plateau`` schedule only).
        reduce_lr_factor: the factor it drops by.
        min_learning_rate: the floor of those drops.
        early_stopping_patience: epochs without improvement before stopping (0: never).
        fine_tune: the optional second phase.
        mixed_precision: ``auto`` uses float16 compute on a GPU (logits and loss stay
            float32), ``on`` forces it, ``off`` never.
        deterministic: turn on TensorFlow op determinism (slower, bit-reproducible).
        run_eagerly: run training and validation steps eagerly instead of as a compiled
            graph: slower per step, but no graph to build, so worth it only for debugging
            and for runs of a few steps (smoke runs of a large backbone on a CPU).
        strategy: ``default`` (one device) or ``mirrored`` (all GPUs of this machine).
            Several machines (``MultiWorkerMirroredStrategy``) are not offered: Keras
            ``fit`` fails under it in TF 2.21 / Keras 3.15 (tensorflow/tensorflow#72388;
            ``tests/test_multi_worker.py`` shows it).
        tensorboard: write TensorBoard logs under ``runs/<name>/train/tensorboard``.
    """

    epochs: int = 10
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    loss: Literal["bce", "focal"] = "bce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    class_weights: Literal["none", "balanced", "positive"] = "none"
    monitor: str = "val_auc"
    lr_schedule: Literal["plateau", "cosine"] = "plateau"
    warmup_epochs: int = 0
    reduce_lr_patience: int = 2
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-6
    early_stopping_patience: int = 5
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    deterministic: bool = False
    run_eagerly: bool = False
    strategy: Literal["default", "mirrored"] = "default"
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.learning_rate <= 0:
            raise ConfigError("training: epochs >= 1 and learning_rate > 0 expected")
        if not 0 <= self.label_smoothing < 1 or not 0 < self.reduce_lr_factor < 1:
            raise ConfigError("training: label_smoothing in [0, 1), reduce_lr_factor in (0, 1)")
        if not self.monitor.startswith("val_"):
            raise ConfigError(
                f"training.monitor: a validation metric (val_...), got {self.monitor!r}"
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"training.warmup_epochs: from 0 to epochs - 1, got {self.warmup_epochs}"
            )


_SPACE_KINDS = ("choice", "int", "float", "boolean")


@dataclass
class SearchConfig:
    """The hyperparameter search of ``python -m cxr_keras.tune`` (KerasTuner).

    Attributes:
        oracle: ``random`` (RandomSearch), ``hyperband`` or ``bayesian``
            (BayesianOptimization).
        objective: the logged metric to optimise (``val_auc``: validation macro AUC).
        direction: ``max`` or ``min``.
        max_trials: trials to run (random and bayesian).
        epochs: epochs per trial (hyperband: the most epochs a trial reaches).
        executions_per_trial: trainings per trial, averaged (noisy objectives).
        hyperband_factor: Hyperband's reduction factor.
        isolate_trials: train each trial in a fresh Python process (memory stays flat over
            any number of trials: Keras keeps some memory per fitted model); decoded images
            are shared between trials through a file cache.
        space: config paths mapped to their ranges, e.g.
            ``model.dropout: {float: [0.1, 0.5], step: 0.1}``,
            ``training.learning_rate: {float: [1e-4, 1e-2], sampling: log}``,
            ``model.dense_units: {choice: [0, 64, 128]}``, ``image.size: {choice: [128, 160]}``,
            ``model.dense_units: {int: [32, 256], step: 32}``, ``augment.flip: {boolean: true}``;
            ``when: {training.loss: focal}`` makes a range apply only under that value.
    """

    oracle: Literal["random", "hyperband", "bayesian"] = "random"
    objective: str = "val_auc"
    direction: Literal["max", "min"] = "max"
    max_trials: int = 10
    epochs: int = 5
    executions_per_trial: int = 1
    hyperband_factor: int = 3
    isolate_trials: bool = True
    space: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_trials < 1 or self.epochs < 1 or self.executions_per_trial < 1:
            raise ConfigError("search: max_trials, epochs and executions_per_trial must be >= 1")
        if self.hyperband_factor < 2:
            raise ConfigError(f"search.hyperband_factor: >= 2, got {self.hyperband_factor}")
        seen: list[str] = []
        for path, spec in self.space.items():
            where = f"search.space.{path}"
            _check_config_path(path, where)
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: expected a mapping such as {{choice: [a, b]}}")
            kinds = [k for k in _SPACE_KINDS if k in spec]
            extra = set(spec) - {*_SPACE_KINDS, "step", "sampling", "when"}
            if len(kinds) != 1 or extra:
                raise ConfigError(
                    f"{where}: give exactly one of {list(_SPACE_KINDS)} (plus "
                    f"step, sampling, when), got {sorted(spec)}"
                )
            kind, value = kinds[0], spec[kinds[0]]
            if kind == "choice" and (not isinstance(value, list) or not value):
                raise ConfigError(f"{where}.choice: a non-empty list, got {value!r}")
            if kind in ("int", "float"):
                if (
                    not isinstance(value, list)
                    or len(value) != 2
                    or not all(isinstance(v, (int, float)) for v in value)
                    or value[0] >= value[1]
                ):
                    raise ConfigError(f"{where}.{kind}: [min, max] with min < max, got {value!r}")
                if spec.get("sampling", "linear") not in ("linear", "log", "reverse_log"):
                    raise ConfigError(f"{where}.sampling: linear, log or reverse_log")
                if spec.get("sampling") == "log" and value[0] <= 0:
                    raise ConfigError(f"{where}: log sampling needs a positive minimum")
            for parent in spec.get("when", {}) or {}:
                if parent not in seen:
                    raise ConfigError(f"{where}.when: {parent!r} must be a range listed above")
            seen.append(path)


def _check_config_path(path: str, where: str, searched: bool = True) -> None:
    """Raise unless ``path`` names a setting of :class:`Config` (e.g. ``model.dropout``);
    ``searched``: also refuse what a search cannot vary (the name, the search itself)."""
    cls: Any = Config
    parts = path.split(".")
    if searched and parts[0] in ("name", "search"):
        raise ConfigError(f"{where}: {parts[0]} cannot be searched")
    for i, part in enumerate(parts):
        if typing.get_origin(cls) is dict:
            return  # a free mapping (data.options, search.space): any key
        fields = (
            {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        )
        if part not in fields:
            near = difflib.get_close_matches(part, list(fields), n=1)
            raise ConfigError(
                f"{where}: {'.'.join(parts[: i + 1])!r} is not a setting"
                + (f" (did you mean {near[0]!r}?)" if near else "")
            )
        cls = typing.get_type_hints(cls)[part]
        optional = [a for a in typing.get_args(cls) if dataclasses.is_dataclass(a)]
        if optional and not dataclasses.is_dataclass(cls):  # e.g. SearchConfig | None
            cls = optional[0]


@dataclass
class CardConfig:
    """What the model card says that the numbers cannot: the model's purpose, its data's
    licence and citations, its known limits (``MODEL_CARD.md``, :mod:`cxr_keras.model_card`).

    Attributes:
        intended_use: who may use the model, for what.
        out_of_scope: uses it must not be put to.
        data_licence: the licence of the training data.
        citations: references for the data (and method).
        limitations: known limits, one sentence each.
        model_choice: why this network, size and schedule: the evidence (e.g. learning
            curves) the recipe was chosen from.
    """

    intended_use: str = "Research and education on chest X-ray classification."
    out_of_scope: str = (
        "Clinical diagnosis, triage or treatment decisions: this is not a medical device."
    )
    data_licence: str = ""
    citations: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)
    model_choice: str = ""


@dataclass
class RecipeConfig:
    """What ``python -m cxr_keras.recipe`` runs after training (:mod:`cxr_keras.recipe`),
    and how its ``--smoke`` run shrinks the recipe. Never part of what a run computes.

    Attributes:
        evaluate_split: the split the evaluation report is on.
        calibrate: fit per-label temperatures on validation before evaluating.
        bootstrap: bootstrap resamples of the confidence intervals.
        explain_layers: Grad-CAM target layers, drawn side by side (default: the last
            convolutional block).
        explain_labels: labels explained on every film (default: each film's positive
            decisions, else its most likely label).
        explain_images: films of the evaluated split explained (the most clearly positive
            ones first, then the most confident negatives).
        compare_with: other recipe files (relative to this one) run the same way on the
            same data and compared with this one in one report (:mod:`cxr_keras.compare`).
        smoke_layout: the dataset layout a smoke run writes the bundled sample in
            (:mod:`cxr_keras.sample_data.layouts`); the run reads that copy.
        smoke: settings a smoke run replaces, as config paths -> values
            (e.g. ``training.epochs: 1``).
    """

    evaluate_split: str = "test"
    calibrate: bool = False
    bootstrap: int = 1000
    explain_layers: list[str] = field(default_factory=list)
    explain_labels: list[str] = field(default_factory=list)
    explain_images: int = 4
    compare_with: list[str] = field(default_factory=list)
    smoke_layout: str | None = None
    smoke: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.evaluate_split not in ("train", "val", "test", "all"):
            raise ConfigError(
                f"recipe.evaluate_split: train, val, test or all, got {self.evaluate_split!r}"
            )
        if self.bootstrap < 1 or self.explain_images < 0:
            raise ConfigError("recipe: bootstrap >= 1 and explain_images >= 0 expected")
        for path in self.smoke:
            if path.split(".")[0] != "recipe":
                _check_config_path(path, f"recipe.smoke.{path}", searched=False)


@dataclass
class Config:
    """A whole run: its name (the folder under ``runs/``), seed and settings."""

    name: str
    data: DataConfig
    seed: int = 42
    image: ImageSpec = field(default_factory=ImageSpec)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    search: SearchConfig | None = None
    card: CardConfig = field(default_factory=CardConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise ConfigError(f"name: a plain folder name is expected, got {self.name!r}")

    @property
    def run_dir(self) -> Path:
        """``runs/<name>``, relative to the working directory."""
        return Path("runs") / self.name


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, apply ``key.sub=value`` overrides, and validate it.

    Example:
        >>> cfg = load_config("tuner_configs/demo.yaml", ["data.batch_size=8"])  # doctest: +SKIP
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with ``dotted.key=value`` overrides (values parsed as YAML).

    Example:
        >>> apply_overrides({"data": {"batch_size": 32}}, ["data.batch_size=8"])
        {'data': {'batch_size': 8}}
    """
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. data.batch_size=16")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def config_from_dict(raw: dict) -> Config:
    """Validate a plain dict (as read from YAML) into a :class:`Config`."""
    return _build(Config, raw, "")


def section_from_dict(cls: type, raw: dict, where: str = ""):
    """Validate a plain dict into one config section, e.g. the ``ImageSpec`` of an artifact.

    Example:
        >>> section_from_dict(ImageSpec, {"size": [64, 64]}).size
        (64, 64)
    """
    return _build(cls, raw, where)


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of the config with settings replaced by config path, validated again (how
    tuning trials and ``train --from-tuning`` apply their hyperparameters).

    Example:
        >>> base = config_from_dict({"name": "t", "data": {"source": "folder", "root": "x"}})
        >>> with_values(base, {"model.dropout": 0.4}).model.dropout
        0.4
    """
    import copy

    raw = copy.deepcopy(config_to_dict(cfg))
    for path, value in values.items():
        _check_config_path(path, path)
        node = raw
        *parents, leaf = path.split(".")
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return config_from_dict(raw)


def run_identity(resolved: dict) -> dict:
    """The part of a resolved config (:func:`config_to_dict`) that decides what a run
    computes: everything but the model card's words and the recipe's later steps, so
    editing those never blocks the resume of a training run or a search (older runs, saved
    without them, match too)."""
    return {key: value for key, value in resolved.items() if key not in ("card", "recipe")}


def config_to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-serialisable dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def resolve_path(value: str | os.PathLike) -> Path:
    """Expand ``~``, environment variables and the ``sample:<name>[/file]`` prefix of a path.

    Relative paths stay relative to the working directory.

    Example:
        >>> resolve_path("sample:kermany").name, resolve_path("sample:nih/labels.csv").name
        ('kermany', 'labels.csv')
    """
    text = os.path.expandvars(os.path.expanduser(str(value)))
    if text.startswith(SAMPLE_PREFIX):
        from cxr_keras.sample_data import sample_path

        name, _, inside = text[len(SAMPLE_PREFIX) :].partition("/")
        return sample_path(name) / inside if inside else sample_path(name)
    return Path(text)


# --------------------------------------------------------------------------- validation


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(fields)}"
        raise ConfigError(f"unknown key {_join(where, key)!r}{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(hints[name], raw[name], _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {_join(where, name)!r}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own, precise error
            return _coerce(options[0], value, where)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc).split(": ", 1)[-1])
        raise ConfigError(f"{where}: expected {' or '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if isinstance(value, int) and not isinstance(value, bool) and args[0] is int:
            return value  # a square size; the dataclass expands it
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(
            _coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - programming error


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)
