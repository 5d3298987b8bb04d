"""Paths as a user writes them: ``~``, environment variables, and ``sample:<name>[/file]``
for the bundled sample (:mod:`cxr_keras.sample_data`).

Example:
    >>> sample_path("kermany").name
    'kermany'
    >>> len(sample_files("dicom"))
    1
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SAMPLES", "SAMPLE_PREFIX", "resolve_path", "sample_files", "sample_path"]

SAMPLE_PREFIX = "sample:"


def resolve_path(value: str | os.PathLike) -> Path:
    """Expand ``~``, environment variables and the ``sample:<name>[/file]`` prefix of a path.

    Relative paths stay relative to the working directory.

    Example:
        >>> resolve_path("sample:kermany").name, resolve_path("sample:nih/labels.csv").name
        ('kermany', 'labels.csv')
    """
    text = os.path.expandvars(os.path.expanduser(str(value)))
    if text.startswith(SAMPLE_PREFIX):
        name, _, inside = text[len(SAMPLE_PREFIX) :].partition("/")
        return sample_path(name) / inside if inside else sample_path(name)
    return Path(text)


# the bundled sample ships inside the package, beside this folder
_ROOT = Path(__file__).resolve().parents[1] / "sample_data"


#: name -> what it holds
SAMPLES = {
    "kermany": "Kermany pediatric CXRs, NORMAL/ and PNEUMONIA/ folders (binary task)",
    "nih": "NIH ChestX-ray14 images with labels.csv (14 findings) and bbox.csv (multi-label)",
    "dicom": "the pydicom-data RG1 chest radiograph, MONOCHROME1, JPEG 2000",
}


_PATTERNS = {"kermany": "*/*.jpeg", "nih": "images/*.jpg", "dicom": "*.dcm"}


def sample_path(name: str) -> Path:
    """The folder of one bundled sample (``kermany``, ``nih`` or ``dicom``)."""
    if name not in SAMPLES:
        raise ValueError(f"unknown bundled sample {name!r}; available: {', '.join(SAMPLES)}")
    return _ROOT / name


def sample_files(name: str) -> list[Path]:
    """The image files of one bundled sample, sorted."""
    return sorted(sample_path(name).glob(_PATTERNS[name]))
