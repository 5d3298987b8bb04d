"""The data layer: sources -> manifest -> verified files -> patient split -> tf.data.

Inside, imports point down too: ``load`` (a run's data settings -> manifest) over
``settings``, ``adapters`` (one module per public dataset, and the registry) over
``sources`` (folder / CSV / DICOM, plain arguments) over ``files``, ``io``, ``labels`` and
``manifest``; ``pipeline`` (tf.data) over ``shard_reader`` over ``batching``.

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> from cxr_keras.data.settings import DataConfig
    >>> from cxr_keras.data import prepare_data
    >>> data = prepare_data(DataConfig(source="folder", root="sample:kermany"), ImageSpec())
    >>> sorted(data["split"].unique())
    ['train', 'val']
"""

from __future__ import annotations

from cxr_keras.core.lazy import lazy_exports

#: public name -> the module that defines it. Imported on first use: the run's config
#: reads this package's settings, and reading a config must not load TensorFlow.
_EXPORTS = {
    "ImageDecodeError": "cxr_keras.data.io",
    "load_image": "cxr_keras.data.io",
    "read_image": "cxr_keras.data.io",
    "load_manifest": "cxr_keras.data.load",
    "prepare_data": "cxr_keras.data.load",
    "manifest_labels": "cxr_keras.data.manifest",
    "skipped_files": "cxr_keras.data.manifest",
    "skipped_summary": "cxr_keras.data.manifest",
    "csv_source": "cxr_keras.data.sources",
    "dicom_source": "cxr_keras.data.sources",
    "folder_source": "cxr_keras.data.sources",
    "PatientLeakageError": "cxr_keras.data.splits",
    "assign_splits": "cxr_keras.data.splits",
    "check_patient_disjoint": "cxr_keras.data.splits",
    "split_frame": "cxr_keras.data.splits",
    "verify_files": "cxr_keras.data.verify",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
