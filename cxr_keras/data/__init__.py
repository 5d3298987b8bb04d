"""The data layer: sources -> manifest -> verified files -> patient split -> tf.data.

Inside, imports point down too: ``load`` (a run's data settings -> manifest) over
``settings``, ``adapters`` (one module per public dataset, and the registry) over
``sources`` (folder / CSV / DICOM, plain arguments) over ``files``, ``io``, ``labels`` and
``manifest``; ``pipeline`` (tf.data) over ``shards`` over ``batching``.

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> from cxr_keras.data.settings import DataConfig
    >>> from cxr_keras.data import prepare_data
    >>> data = prepare_data(DataConfig(source="folder", root="sample:kermany"), ImageSpec())
    >>> sorted(data["split"].unique())
    ['train', 'val']
"""

from __future__ import annotations

from cxr_keras.data.io import ImageDecodeError, load_image, read_image
from cxr_keras.data.load import load_manifest, prepare_data
from cxr_keras.data.manifest import manifest_labels, skipped_files, skipped_summary
from cxr_keras.data.sources import csv_source, dicom_source, folder_source
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
