"""The bundled sample: a small real subset of public chest X-ray data (see README.md).

It lets a fresh clone run ``make demo``, the notebooks and the quick tests without any
download. Sources and licences: Kermany pediatric CXRs (CC BY 4.0), NIH ChestX-ray14
images (public; cite Wang et al. 2017), and the pydicom-data RG1 radiograph (MIT).

Example:
    >>> sample_path("kermany").name
    'kermany'
    >>> len(sample_files("dicom"))
    1
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLES", "sample_files", "sample_path"]

_ROOT = Path(__file__).resolve().parent

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
