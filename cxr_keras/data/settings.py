"""The data settings of a run: where the images and labels are, how they are read and
split, validated against the source, dataset and label-preset registries.

Example:
    >>> DataConfig(source="folder", root="sample:kermany").split.val
    0.15
    >>> "nih" in SOURCES
    True
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from cxr_keras.core.errors import ConfigError
from cxr_keras.data.adapters import DATA_KEYS, DATASETS, adapter_parameters
from cxr_keras.data.labels import LABEL_PRESETS

__all__ = ["GENERIC_SOURCES", "SOURCES", "DataConfig", "SplitConfig"]

#: sources that read a layout described by the data.* keys (no dataset of their own)
GENERIC_SOURCES = ("folder", "csv", "dicom", "shards")
#: every value of ``data.source``: the generic sources and the named datasets' registry
SOURCES = GENERIC_SOURCES + tuple(DATASETS)


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
            :mod:`cxr_keras.data.adapters`; ``root`` is its folder or its label file), or
            ``shards``: a folder of TFRecord shards (:mod:`cxr_keras.data.shard_reader`; local or
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

    source: Literal[SOURCES]
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
