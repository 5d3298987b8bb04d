"""Canonical label names and the uncertain-label policies.

One mapping table makes the same finding carry the same name in every source, so a model
trained on NIH data can be evaluated on CheXpert labels: NIH ``Effusion`` and CheXpert
``Pleural Effusion`` are both ``Effusion`` (the names follow NIH ChestX-ray14 and
TorchXRayVision). The table rewrites wording, not case: a name that differs from its
canonical form only in case is kept as written (the Kermany binary label stays
``PNEUMONIA``), and :func:`same_label` compares names case-insensitively. Names not in the
table are kept as they are (e.g. a class folder).

Example:
    >>> canonical_label("Pleural Effusion")
    'Effusion'
    >>> canonical_label("Infiltrate")
    'Infiltration'
    >>> canonical_label("PNEUMONIA")
    'PNEUMONIA'
    >>> same_label("PNEUMONIA", "Pneumonia")
    True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CHEXPERT_COMPETITION_LABELS",
    "CHEXPERT_LABELS",
    "KNOWN_LABELS",
    "LABEL_PRESETS",
    "NIH_LABELS",
    "NO_FINDING",
    "UncertainPolicy",
    "apply_label_policy",
    "canonical_label",
    "invalid_label_cells",
    "is_known_label",
    "same_label",
]

NO_FINDING = "No Finding"

#: The 14 findings of NIH ChestX-ray14, in the order of the NIH paper.
NIH_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

#: The 14 CheXpert observations under their canonical names (CheXpert order).
CHEXPERT_LABELS = (
    NO_FINDING,
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The five labels of the CheXpert competition (Irvin et al. 2019).
CHEXPERT_COMPETITION_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion")

#: Named label lists (``data.labels: chexpert_competition``).
LABEL_PRESETS = {
    "nih14": NIH_LABELS,
    "chexpert14": CHEXPERT_LABELS,
    "chexpert_competition": CHEXPERT_COMPETITION_LABELS,
}

# alias (lower case) -> canonical name
_ALIASES = {
    "pleural effusion": "Effusion",
    "effusion": "Effusion",
    "infiltrate": "Infiltration",
    "infiltration": "Infiltration",
    "pleural thickening": "Pleural_Thickening",
    "pleural_thickening": "Pleural_Thickening",
    "no finding": NO_FINDING,
    "no_finding": NO_FINDING,
    "nofinding": NO_FINDING,
    "lung opacity": "Lung Opacity",
    "lung_opacity": "Lung Opacity",
    "enlarged cardiomediastinum": "Enlarged Cardiomediastinum",
}
for _name in (*NIH_LABELS, *CHEXPERT_LABELS):
    _ALIASES.setdefault(_name.lower(), _name)

#: Every name the table knows (canonical spelling).
KNOWN_LABELS = frozenset(_ALIASES.values())
_KNOWN_FOLDED = frozenset(n.casefold() for n in KNOWN_LABELS)

UncertainPolicy = str  # "zeros" | "ones" | "ignore"
_POLICY_VALUES = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}


def canonical_label(name: str) -> str:
    """The canonical wording of a label name (case kept when only the case differs);
    unknown names come back stripped, unchanged."""
    text = str(name).strip()
    canonical = _ALIASES.get(text.lower(), text)
    return text if canonical.lower() == text.lower() else canonical


def is_known_label(name: str) -> bool:
    """True when the mapping table knows the name (any case, any listed wording)."""
    return canonical_label(name).casefold() in _KNOWN_FOLDED


def same_label(a: str, b: str) -> bool:
    """True when two names denote the same label (canonical wording, any case)."""
    return canonical_label(a).casefold() == canonical_label(b).casefold()


def invalid_label_cells(values: pd.Series) -> pd.Series:
    """A boolean mask of the cells that are not 1, 0, -1 or blank.

    Example:
        >>> invalid_label_cells(pd.Series(["1", "", "yes", 2])).tolist()
        [False, False, True, True]
    """
    numeric = pd.to_numeric(values, errors="coerce")
    blank = values.isna() | (values.astype(str).str.strip() == "")
    return ~blank & (numeric.isna() | ~numeric.isin([1.0, 0.0, -1.0]))


def apply_label_policy(
    values: pd.Series, uncertain: UncertainPolicy = "zeros", blank: UncertainPolicy = "zeros"
) -> pd.Series:
    """Map raw label cells (1, 0, -1 uncertain, blank) to 1.0 / 0.0 / NaN (= ignored).

    Ignored entries are NaN so they can be masked out of the loss and the metrics instead
    of silently becoming negatives. Any other value raises ``ValueError``.

    Example:
        >>> s = pd.Series([1.0, 0.0, -1.0, None])
        >>> apply_label_policy(s, uncertain="ones", blank="zeros").tolist()
        [1.0, 0.0, 1.0, 0.0]
        >>> apply_label_policy(s, uncertain="ignore", blank="ignore").isna().tolist()
        [False, False, True, True]
    """
    for policy in (uncertain, blank):
        if policy not in _POLICY_VALUES:
            raise ValueError(f"label policy must be zeros, ones or ignore, got {policy!r}")
    invalid = invalid_label_cells(values)
    if invalid.any():
        raise ValueError(f"label value {values[invalid].iloc[0]!r} is not 1, 0, -1 or blank")
    numeric = pd.to_numeric(values, errors="coerce")
    out = numeric.astype(float).copy()
    out[numeric == -1.0] = _POLICY_VALUES[uncertain]
    out[numeric.isna()] = _POLICY_VALUES[blank]
    return out
