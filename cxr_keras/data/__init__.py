"""The data layer: sources -> manifest -> verified files -> patient split -> tf.data.

Example:
    >>> from cxr_keras.config import DataConfig, ImageSpec
    >>> from cxr_keras.data import prepare_data
    >>> data = prepare_data(DataConfig(source="folder", root="sample:kermany"), ImageSpec())
    >>> sorted(data["split"].unique())
    ['train', 'val']
"""

from __future__ import annotations

import pandas as pd

from cxr_keras.config import DataConfig, ImageSpec
from cxr_keras.data.io import ImageDecodeError, load_image, read_image
from cxr_keras.data.manifest import manifest_labels, skipped_files, skipped_summary
from cxr_keras.data.sources import csv_source, dicom_source, folder_source, load_manifest
from cxr_keras.data.splits import (
    PatientLeakageError,
    assign_splits,
    check_patient_disjoint,
    split_frame,
)
from cxr_keras.data.verify import verify_files

__all__ = [
    "ImageDecodeError",
    "PatientLeakageError",
    "assign_splits",
    "check_patient_disjoint",
    "csv_source",
    "dicom_source",
    "folder_source",
    "load_image",
    "load_manifest",
    "manifest_labels",
    "prepare_data",
    "read_image",
    "skipped_files",
    "skipped_summary",
    "split_frame",
    "verify_files",
]


def prepare_data(
    data: DataConfig, spec: ImageSpec, seed: int = 42, progress: bool = False
) -> pd.DataFrame:
    """Load the configured source, verify its files, and split it by patient.

    Returns the whole manifest with a ``split`` column; files left out are in
    ``attrs["skipped"]`` with their reasons (see :func:`skipped_summary`).
    """
    manifest = load_manifest(data)
    if "shards" not in manifest.attrs:  # shard records were decoded when written
        manifest = verify_files(manifest, spec, mode=data.verify, progress=progress)
    if len(manifest) == 0:
        raise ValueError(
            f"no usable images in {data.root} "
            f"(skipped: {skipped_summary(manifest) or 'none found'})"
        )
    return assign_splits(manifest, data.split, seed)
