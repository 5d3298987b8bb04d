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

from cxr_keras.core.paths import SAMPLES, sample_files, sample_path

__all__ = ["SAMPLES", "sample_files", "sample_path"]
