"""Patient-level train/val/test splits, and the check that no patient is in two splits.

Images of one patient are strongly correlated; an image-level split leaks them across
splits and inflates validation AUC. Every split here is made over patients (stratified by
the patients' labels where possible), is reproducible from a seed regardless of file
order, and is verified with :func:`check_patient_disjoint`, which raises on any overlap.

Example:
    >>> from cxr_keras.data.sources import folder_source
    >>> from cxr_keras.sample_data import sample_path
    >>> df = split_by_patient(folder_source(sample_path("kermany")), val=0.2, seed=1)
    >>> sorted(df["split"].unique())
    ['train', 'val']
    >>> check_patient_disjoint(df)  # raises PatientLeakageError on overlap
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from cxr_keras.data.manifest import manifest_labels
from cxr_keras.data.settings import SplitConfig

__all__ = [
    "MIN_VALIDATION_IMAGES",
    "PatientLeakageError",
    "assign_splits",
    "check_patient_disjoint",
    "note_small_validation",
    "split_by_patient",
    "split_frame",
    "thin_train",
]

log = logging.getLogger(__name__)


class PatientLeakageError(ValueError):
    """Some patient has images in more than one split."""


def check_patient_disjoint(manifest: pd.DataFrame, column: str = "split") -> None:
    """Raise :class:`PatientLeakageError` if any patient appears in two splits."""
    if column not in manifest.columns:
        raise ValueError(f"manifest has no {column!r} column to check")
    per_patient = manifest.groupby("patient_id", sort=True)[column].unique()
    leaked = per_patient[per_patient.map(len) > 1]
    if len(leaked):
        examples = "; ".join(f"{pid}: {sorted(map(str, s))}" for pid, s in leaked.head(3).items())
        raise PatientLeakageError(
            f"{len(leaked)} patient(s) appear in more than one split (e.g. {examples}). "
            "Their images are correlated. If these ids only repeat by accident because they "
            "are unique within each split folder (as in the official Kermany release), set "
            "data.patient_ids_per_split: true; otherwise re-split by patient "
            "(data.split.method: patient)."
        )


def _patient_strata(patients: pd.DataFrame) -> np.ndarray | None:
    """One stratum per patient: its rarest positive label, or 'none'; rare strata merged."""
    if patients.shape[1] == 0:
        return None
    positives = patients.fillna(0).to_numpy() > 0
    prevalence = positives.sum(axis=0)
    order = np.argsort(prevalence, kind="stable")
    strata = np.full(len(patients), "none", dtype=object)
    for j in order[::-1]:  # rarest label assigned last, so it wins
        strata[positives[:, j]] = patients.columns[j]
    counts = pd.Series(strata).value_counts()
    strata[np.isin(strata, counts[counts < 4].index)] = "rare"
    return strata


def _carve(
    ids: np.ndarray, strata: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split patient ids into (rest, carved) with ``fraction`` of them carved out."""
    if fraction <= 0 or len(ids) == 0:
        return ids, ids[:0]
    n_carved = max(1, round(fraction * len(ids)))
    if n_carved >= len(ids):
        raise ValueError(
            f"cannot carve {fraction:.0%} of {len(ids)} patient(s) and keep any for training"
        )
    if strata is not None and len(set(strata)) > 1:
        try:
            return tuple(
                train_test_split(ids, test_size=n_carved, random_state=seed, stratify=strata)
            )
        except ValueError as exc:  # too few patients per stratum for this fraction
            log.warning("patient split not stratified: %s", exc)
    return tuple(train_test_split(ids, test_size=n_carved, random_state=seed))


def split_by_patient(
    manifest: pd.DataFrame,
    *,
    val: float = 0.15,
    test: float = 0.0,
    seed: int = 42,
    stratify: bool = True,
    labels: list[str] | None = None,
) -> pd.DataFrame:
    """A copy of the manifest with a ``split`` column (train/val/test) made over patients.

    ``val`` and ``test`` are fractions of patients. Patients are sorted before the seeded
    split, so the same files give the same split whatever order they were listed in.
    """
    labels = labels or manifest_labels(manifest)
    patients = manifest.groupby("patient_id", sort=True)[labels].max()
    ids = patients.index.to_numpy()
    strata = _patient_strata(patients) if stratify else None
    index = {pid: i for i, pid in enumerate(ids)}
    rest, test_ids = _carve(ids, strata, test, seed)
    rest_strata = strata[[index[p] for p in rest]] if strata is not None else None
    val_fraction = val / (1.0 - test) if test < 1 else 0.0
    _, val_ids = _carve(rest, rest_strata, val_fraction, seed + 1)
    split = pd.Series("train", index=ids)
    split[val_ids] = "val"
    split[test_ids] = "test"
    out = manifest.copy()
    out["split"] = manifest["patient_id"].map(split).to_numpy()
    out.attrs = dict(manifest.attrs)
    check_patient_disjoint(out)
    return out


def assign_splits(
    manifest: pd.DataFrame, cfg: SplitConfig | None = None, seed: int = 42
) -> pd.DataFrame:
    """Apply a :class:`SplitConfig`: keep the source's split (``auto``/``column``) or split
    by patient. A source split that lacks ``val`` (or ``test``) while the config asks for
    it gets one carved out of its ``train`` patients; ``train_fraction`` < 1 then thins
    the training patients (:func:`thin_train`). Always checks disjointness.

    Example:
        >>> from cxr_keras.data.sources import folder_source
        >>> from cxr_keras.sample_data import sample_path
        >>> df = assign_splits(folder_source(sample_path("kermany")), SplitConfig(val=0.2))
        >>> int((df["split"] == "val").sum()) > 0
        True
    """
    cfg = cfg or SplitConfig()
    has_column = "split" in manifest.columns and manifest["split"].notna().all()
    if cfg.method == "column" and not has_column:
        raise ValueError(
            "data.split.method is 'column' but the source gives no split for "
            "every image (no train/val/test folders or split column)"
        )
    if cfg.method == "patient" or not has_column:
        out = split_by_patient(
            manifest, val=cfg.val, test=cfg.test, seed=seed, stratify=cfg.stratify
        )
        return thin_train(out, fraction=cfg.train_fraction, seed=seed, stratify=cfg.stratify)
    out = manifest.copy()
    out.attrs = dict(manifest.attrs)
    out["split"] = (
        out["split"].astype(str).str.lower().replace({"valid": "val", "validation": "val"})
    )
    check_patient_disjoint(out)
    missing = {"val": cfg.val, "test": cfg.test}
    for name, fraction in missing.items():
        if fraction > 0 and not (out["split"] == name).any():
            train = out[out["split"] == "train"]
            carved = split_by_patient(train, val=fraction, seed=seed, stratify=cfg.stratify)
            moved = carved.index[carved["split"] == "val"]
            out.loc[moved, "split"] = name
            log.info(
                "source has no %s split: carved %d images of its train patients", name, len(moved)
            )
    check_patient_disjoint(out)
    return thin_train(out, fraction=cfg.train_fraction, seed=seed, stratify=cfg.stratify)


def thin_train(manifest: pd.DataFrame, *, fraction: float, seed: int = 42, stratify: bool = True):
    """Keep ``fraction`` of the training patients (all their images), stratified like the
    splits; val and test rows are untouched. The dropped count is noted in ``attrs``.

    Example:
        >>> from cxr_keras.data.sources import folder_source
        >>> from cxr_keras.sample_data import sample_path
        >>> df = assign_splits(folder_source(sample_path("kermany")), SplitConfig(val=0.2))
        >>> half = thin_train(df, fraction=0.5)
        >>> kept = (half["split"] == "train").sum() / (df["split"] == "train").sum()
        >>> bool(0.4 < kept < 0.6)
        True
    """
    if fraction >= 1:
        return manifest
    train = manifest[manifest["split"] == "train"]
    carved = split_by_patient(train, val=1.0 - fraction, seed=seed + 7, stratify=stratify)
    dropped = carved.index[carved["split"] == "val"]
    out = manifest.drop(index=dropped)
    out.attrs = dict(manifest.attrs)
    out.attrs["notes"] = [
        *manifest.attrs.get("notes", []),
        f"train_fraction {fraction:g}: {len(dropped)} of {len(train)} training images left out",
    ]
    return out


#: below this, a validation split is warned about in the run log and noted on the card
MIN_VALIDATION_IMAGES = 100


def note_small_validation(manifest: pd.DataFrame) -> pd.DataFrame:
    """Warn (log and ``attrs["notes"]``, which reach the model card) when the validation
    split has fewer than :data:`MIN_VALIDATION_IMAGES` images: early stopping, the
    temperature and the decision thresholds are all chosen on it.

    Example:
        >>> df = pd.DataFrame({"path": ["a", "b", "c"], "split": ["train", "val", "test"]})
        >>> note_small_validation(df).attrs["notes"][0].split(":")[0]
        'the validation split has 1 image'
    """
    images = int((manifest["split"] == "val").sum())
    if images >= MIN_VALIDATION_IMAGES:
        return manifest
    note = (
        f"the validation split has {images} image{'s' if images != 1 else ''}: fewer than "
        f"{MIN_VALIDATION_IMAGES}, so early stopping, the temperature and the decision "
        "thresholds chosen on it are noisy; carve a larger one from the training patients "
        "(data.split.val)"
    )
    log.warning(note)
    out = manifest.copy()
    out.attrs = {**manifest.attrs, "notes": [*manifest.attrs.get("notes", []), note]}
    return out


def split_frame(manifest: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one split, attrs kept (labels, skipped files)."""
    out = manifest[manifest["split"] == name].reset_index(drop=True)
    out.attrs = dict(manifest.attrs)
    return out
