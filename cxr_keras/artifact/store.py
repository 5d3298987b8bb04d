"""The model artifact: the one self-describing directory every later stage loads.

    <dir>/model.keras      the Keras model (outputs logits; loads with safe_mode=True)
    <dir>/cxr_model.json   labels, image spec, preprocessing, thresholds, decision rule,
                           temperature, data config and split seed, training summary,
                           metrics, library versions, the resolved config, and the
                           out-of-distribution detector's settings (``ood``)
    <dir>/ood.npz          the detector's arrays (:mod:`cxr_keras.artifact.ood`), once fitted

Stages never re-declare these settings: they read them from the artifact, so a different
resize, label order or threshold at prediction time than at training time cannot happen.
``cxr_model.json`` carries a ``schema_version``; loading an older artifact fills newer
fields with documented defaults (:func:`upgrade_meta`).

Example:
    >>> artifact = load_artifact("kermany_pneumonia")  # doctest: +SKIP
    >>> artifact.labels, artifact.image_spec.size  # doctest: +SKIP
    (['PNEUMONIA'], (224, 224))
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.serialize import section_from_dict
from cxr_keras.pretrained import PRETRAINED_FOLDER, pretrained_names

__all__ = [
    "SCHEMA_VERSION",
    "Artifact",
    "ArtifactError",
    "artifact_folder",
    "copy_artifact",
    "library_versions",
    "load_artifact",
    "load_meta",
    "save_artifact",
    "upgrade_meta",
    "write_meta",
]

SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
META_FILE = "cxr_model.json"
CARD_FILE = "MODEL_CARD.md"  # written by cxr_keras.model_card


class ArtifactError(ValueError):
    """A directory is not a usable cxr-keras model artifact."""


def artifact_folder(model: str | os.PathLike) -> Path:
    """The artifact folder ``--model`` names: a folder as given, else a shipped model of
    that name (:mod:`cxr_keras.pretrained`). A file of an artifact (its ``model.keras``)
    is refused with the folder to pass instead.

    Example:
        >>> artifact_folder("kermany_pneumonia").parent.name
        'pretrained'
    """
    path = Path(os.path.expanduser(str(model)))
    if path.is_dir():
        return path
    if path.is_file():
        hint = f"pass its folder: --model {path.parent}" if path.parent.name else "a folder"
        raise ArtifactError(f"{path}: a file; a model artifact is a folder ({hint})")
    if path.name == str(model) and (PRETRAINED_FOLDER / path.name / META_FILE).is_file():
        return PRETRAINED_FOLDER / path.name
    shipped = ", ".join(pretrained_names())
    raise ArtifactError(
        f"{model}: no such artifact folder, and not a shipped model ({shipped}); train one "
        "with cxr-keras train"
    )


@dataclass
class Artifact:
    """A loaded artifact: the Keras model (outputs logits) and its description."""

    model: object  # keras.Model
    meta: dict
    path: Path

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def image_spec(self) -> ImageSpec:
        return section_from_dict(ImageSpec, self.meta["image_spec"], "image_spec")

    @property
    def temperatures(self) -> list[float]:
        """Per-label temperatures (logits are divided by them before the sigmoid)."""
        stored = self.meta["temperature"]
        if isinstance(stored, dict):
            return [float(stored[label]) for label in self.labels]
        return [float(stored)] * len(self.labels)

    @property
    def decision_rule(self) -> str:
        return str(self.meta["decision_rule"])

    @property
    def tta(self) -> list[str]:
        """The test-time views the model averages over (empty: none; see cxr_keras.models.tta)."""
        return list((self.meta.get("model") or {}).get("tta") or [])

    @property
    def ood_detector(self):
        """The stored out-of-distribution detector (:mod:`cxr_keras.artifact.ood`), or None
        when none was fitted (``python -m cxr_keras.evaluate --update-model`` fits one)."""
        entry = self.meta.get("ood")
        if not entry:
            return None
        from cxr_keras.artifact.ood import load_detector

        try:
            return load_detector(self.path, entry)
        except (ValueError, KeyError) as exc:
            raise ArtifactError(f"{self.path}: {exc}") from None

    @property
    def explain_model(self):
        """The network Grad-CAM and MC dropout work on: the model itself, or the network
        inside its test-time-augmentation wrapper."""
        from cxr_keras.models.tta import base_of

        return base_of(self.model) if self.tta else self.model

    def thresholds(self, rule: str | None = None) -> list[float]:
        """Per-label probability thresholds of a stored rule (default: the decision rule)."""
        rule = rule or self.decision_rule
        table = self.meta["thresholds"].get(rule)
        if table is None:
            raise ArtifactError(
                f"{self.path}: no thresholds for rule {rule!r}; stored: "
                f"{sorted(self.meta['thresholds'])}"
            )
        return [float(table[label]) for label in self.labels]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers."""
    import keras
    import numpy
    import tensorflow as tf

    from cxr_keras import __version__

    return {
        "cxr_keras": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def upgrade_meta(meta: dict) -> dict:
    """Fill fields that older schema versions lack, with their documented defaults:
    thresholds 0.5 per label under rule ``default`` (the decision rule), temperature 1.0
    (one number, or one per label as ``{label: T}``), no referral rule. Raises
    :class:`ArtifactError` for a description that cannot be used.
    """
    if not isinstance(meta, dict):
        raise ArtifactError(f"expected a JSON object, got {type(meta).__name__}")
    meta = dict(meta)
    try:
        version = int(meta.get("schema_version", 0))
    except (TypeError, ValueError):
        raise ArtifactError(
            f"schema_version must be a number, got {meta.get('schema_version')!r}"
        ) from None
    if version > SCHEMA_VERSION:
        raise ArtifactError(
            f"artifact schema {version} is newer than this cxr-keras "
            f"understands ({SCHEMA_VERSION}); upgrade cxr-keras"
        )
    labels = meta.get("labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(label, str) for label in labels)
    ):
        raise ArtifactError(f"labels must be a non-empty list of names, got {labels!r}")
    if not isinstance(meta.get("image_spec"), dict):
        raise ArtifactError(
            "image_spec is missing: the artifact cannot say how images become model inputs"
        )
    meta.setdefault("thresholds", {"default": {label: 0.5 for label in labels}})
    meta.setdefault("decision_rule", "default")
    meta.setdefault("temperature", 1.0)
    meta.setdefault("referral", None)
    meta.setdefault("ood", None)  # no detector: only the input checks run
    rule = (
        meta["thresholds"].get(meta["decision_rule"])
        if isinstance(meta["thresholds"], dict)
        else None
    )
    if not isinstance(rule, dict) or any(label not in rule for label in labels):
        raise ArtifactError(
            f"the decision rule {meta['decision_rule']!r} needs a threshold "
            f"for every label {labels}"
        )
    temperature = meta["temperature"]
    values = (
        [temperature.get(label) for label in labels]
        if isinstance(temperature, dict)
        else [temperature]
    )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ArtifactError(
            f"temperature must be a number > 0 or one per label {labels}, got {temperature!r}"
        )
    meta["schema_version"] = SCHEMA_VERSION
    return meta


def save_artifact(model, meta: dict, directory: str | os.PathLike) -> Path:
    """Write ``model.keras`` and ``cxr_model.json`` into ``directory`` (atomically: a
    half-written artifact is never left under the final name)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = upgrade_meta({**meta, "schema_version": SCHEMA_VERSION})
    meta.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    meta.setdefault("versions", library_versions())
    tmp_model = directory / f".{MODEL_FILE}.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, directory / MODEL_FILE)
    write_meta(meta, directory)
    return directory


def write_meta(meta: dict, directory: str | os.PathLike) -> Path:
    """Rewrite ``cxr_model.json`` (e.g. after evaluation sets thresholds)."""
    path = Path(directory) / META_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def copy_artifact(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy an artifact's files (the model, its description, and its card,
    out-of-distribution detector ``ood.npz`` and reference profile when present: an
    artifact whose description names a detector does not load without it) into another
    directory (e.g. ``models/<name>``), as a whole: into a temporary folder first, then
    swapped in, so a model never sits beside another model's description."""
    source, destination = Path(source).resolve(), Path(destination).resolve()
    if source == destination:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(f".{destination.name}.incoming")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in (MODEL_FILE, META_FILE):
        shutil.copy2(source / name, staging / name)
    from cxr_keras.artifact.ood import OOD_FILE
    from cxr_keras.artifact.reference_profile import PROFILE_FILE

    # the card, the detector and the reference profile travel with the model
    for name in (CARD_FILE, OOD_FILE, PROFILE_FILE):
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(destination, old)
        os.replace(staging, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, destination)
    return destination


def load_meta(directory: str | os.PathLike) -> dict:
    """An artifact's description (``cxr_model.json``, upgraded to the current schema)
    without loading its model: for what needs no Keras (the monitor)."""
    path = artifact_folder(directory) / META_FILE
    if not path.is_file():
        raise ArtifactError(f"{directory}: not a model artifact (no {META_FILE})")
    try:
        return upgrade_meta(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def load_artifact(directory: str | os.PathLike, compile: bool = False) -> Artifact:
    """Load an artifact: the model (``safe_mode=True``: no arbitrary code runs) and its
    description, upgraded to the current schema."""
    import keras

    import cxr_keras.models.layers
    import cxr_keras.models.losses  # noqa: F401  (registers the loss and metrics)

    directory = artifact_folder(directory)
    meta_path, model_path = directory / META_FILE, directory / MODEL_FILE
    if not meta_path.is_file() or not model_path.is_file():
        raise ArtifactError(
            f"{directory}: not a model artifact (needs {MODEL_FILE} and "
            f"{META_FILE}); train one with cxr-keras train"
        )
    meta = load_meta(directory)
    try:
        model = keras.models.load_model(model_path, compile=compile, safe_mode=True)
    except (OSError, ValueError, KeyError) as exc:  # truncated zip, unknown layer, ...
        raise ArtifactError(
            f"{model_path}: cannot load the model ({type(exc).__name__}: {exc})"
        ) from None
    outputs = model.output_shape[-1]
    if outputs != len(meta["labels"]):
        raise ArtifactError(
            f"{directory}: the model has {outputs} outputs but "
            f"{META_FILE} names {len(meta['labels'])} labels"
        )
    return Artifact(model, meta, directory)
