"""Typed configuration: one YAML file describes a run, validated into dataclasses.

Every setting of a run lives here, in one place. A YAML recipe (a shipped one,
:mod:`cxr_keras.recipes`, or any file) is loaded with :func:`load_config`, command-line
overrides (``--set data.batch_size=16``) are applied on top, and the result is checked
early: unknown keys, wrong types and values outside their allowed choices raise
:class:`ConfigError` naming the key, what was expected and what was received.

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
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# The sections of the layers below, re-exported: a run's whole config is read from here.
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.paths import resolve_path
from cxr_keras.core.serialize import build_section, config_to_dict, section_from_dict
from cxr_keras.data.settings import DataConfig, SplitConfig
from cxr_keras.models.settings import AugmentConfig, ModelConfig, PreprocessConfig

__all__ = [
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
    "changed_sections",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "read_config_file",
    "resolve_path",
    "run_identity",
    "section_from_dict",
    "with_values",
]


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
        feature_cache: ``auto``: a phase in which only the head trains (``model.freeze:
            backbone``: the only phase, or the first of ``fine_tune``; a search whose
            settings all act on the head or the optimiser) computes the frozen part's
            output once per film and trains the head on it, with augmentation off for
            that phase, and a search's trials then run in-process
            (:mod:`cxr_keras.training.feature_cache`); ``off``: every step runs the
            whole model.
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
    feature_cache: Literal["auto", "off"] = "auto"

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
            (:mod:`cxr_keras.data.sample_layouts`); the run reads that copy.
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

    Input paths written in the file (``data.root``, ``data.csv``) are relative to the
    file's folder (:func:`read_config_file`); paths in overrides are as the caller gives
    them (relative to the working directory on the command line).

    Example:
        >>> cfg = load_config("configs/nih_multilabel.yaml", ["seed=1"])  # doctest: +SKIP
    """
    path = Path(path)
    raw = apply_overrides(read_config_file(path), overrides or [])
    data = raw.get("data")
    if isinstance(data, dict) and "root" in data and data["root"] is None:
        raise ConfigError(
            f"{path}: data.root is not set: give the dataset's folder with --data PATH "
            "(or --set data.root=PATH); the file's comments say what it expects"
        )
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


#: the config keys that name input files or folders, resolved beside the config file
RELATIVE_INPUTS = ("root", "csv")


def read_config_file(path: str | os.PathLike) -> dict:
    """A config file's content as a plain dict, with its relative input paths (``data.root``
    and ``data.csv``) made relative to the file's folder: a config travels with its data.
    ``sample:``, ``~``, ``$VAR``, URLs and absolute paths are left as written.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "run.yaml").write_text("name: x\\ndata: {source: folder, root: xrays}")
        >>> Path(read_config_file(folder / "run.yaml")["data"]["root"]) == folder / "xrays"
        True
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a config file (a .yaml)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    data = raw.get("data")
    if isinstance(data, dict):
        for key in RELATIVE_INPUTS:
            value = data.get(key)
            if isinstance(value, list):
                data[key] = [_beside(item, path.parent) for item in value]
            elif value is not None:
                data[key] = _beside(value, path.parent)
    return raw


def _beside(value, folder: Path):
    """``value`` relative to ``folder`` when it is a plain relative path."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(("sample:", "~", "$", "/")) or "://" in value:
        return value
    if Path(value).is_absolute():
        return value
    return os.path.normpath(folder / value)


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
    return build_section(Config, raw, "")


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


def changed_sections(saved: dict, cfg: Config) -> list[str]:
    """The sections in which ``cfg`` computes something else than the resolved config an
    earlier run saved (:func:`run_identity`); empty when it is the same run, which training
    and tuning then resume.

    Example:
        >>> cfg = config_from_dict({"name": "x", "data": {"source": "folder", "root": "x"}})
        >>> saved = config_to_dict(cfg)
        >>> changed_sections(saved, with_values(cfg, {"training.epochs": 3}))
        ['training']
    """
    previous, current = run_identity(saved), run_identity(config_to_dict(cfg))
    return sorted(k for k in {*previous, *current} if previous.get(k) != current.get(k))


# --------------------------------------------------------------------------- validation
