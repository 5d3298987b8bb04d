"""Named public datasets, opened as their providers ship them (one call each).

One module per dataset, and here the registry (:data:`DATASETS`) that config validation,
the CLI and :func:`open_dataset` read. Each adapter returns the same manifest as the
generic sources (:mod:`cxr_keras.data.sources`): canonical
label names, patient ids, views, the official splits where the dataset has them, and the
dataset's own extras (age, sex, follow-up, study, subtype, boxes):

- :func:`kermany_source`: Kermany "Chest X-Ray Images (Pneumonia)",
  ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}``;
- :func:`nih_source`: NIH ChestX-ray14, ``Data_Entry_2017*.csv`` + ``images*/`` folders;
- :func:`chexpert_source`: CheXpert ``CheXpert-v1.0[-small]/{train,valid}.csv``;
- :func:`rsna_source`: the RSNA Pneumonia Detection Challenge (stage 2) DICOMs and labels.

``root`` is the folder as unpacked (or any folder above it), or the dataset's label file
alone: the manifest then describes the labels, with paths where the official layout puts
the images (a note says no images were found), e.g. to study label statistics before a
download. Files that cannot be used are recorded in ``attrs["skipped"]`` with a reason, as
in every source; missing images are found when the files are verified.

Example:
    >>> from cxr_keras.sample_data import sample_path
    >>> df = kermany_source(sample_path("kermany"))
    >>> df.attrs["labels"], sorted(df["subtype"].unique())
    (['PNEUMONIA'], ['bacteria', 'normal', 'virus'])
"""

from __future__ import annotations

import inspect
import os

import pandas as pd

from cxr_keras.data.adapters.chexpert import CHEXPERT_PAPER_UNCERTAIN, chexpert_source
from cxr_keras.data.adapters.kermany import kermany_source
from cxr_keras.data.adapters.nih import nih_source, read_nih_boxes
from cxr_keras.data.adapters.rsna import RSNA_NOT_NORMAL, rsna_source

__all__ = [
    "CHEXPERT_PAPER_UNCERTAIN",
    "DATASETS",
    "DATA_KEYS",
    "RSNA_NOT_NORMAL",
    "adapter_parameters",
    "chexpert_source",
    "kermany_source",
    "nih_source",
    "open_dataset",
    "read_nih_boxes",
    "rsna_source",
]

# --------------------------------------------------------------------------- registry

#: dataset name -> adapter
DATASETS = {
    "kermany": kermany_source,
    "nih": nih_source,
    "chexpert": chexpert_source,
    "rsna": rsna_source,
}


#: Adapter arguments a recipe sets as ``data.*`` keys rather than under ``data.options``.
DATA_KEYS = ("labels", "csv", "uncertain", "blank")


def adapter_parameters(name: str) -> list[str]:
    """The keyword arguments of a named dataset's adapter (``root`` aside).

    Example:
        >>> adapter_parameters("kermany")
        ['labels', 'task', 'official_val']
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return [p for p in inspect.signature(DATASETS[name]).parameters if p != "root"]


def open_dataset(name: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """The manifest of a named public dataset: ``open_dataset("nih", "~/data/NIH")``.

    ``options`` are the adapter's keyword arguments (see each ``*_source`` function);
    unknown ones are refused with the list of accepted ones.
    """
    accepted = adapter_parameters(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; accepted: {accepted}")
    return DATASETS[name](root, **options)
