"""Files as datasets ship them: the image files of a folder (other files recorded as
skips), labels CSVs read as text, and the split folder names providers use.

Example:
    >>> from cxr_keras.sample_data import sample_path
    >>> files, skipped = image_files(sample_path("kermany"))
    >>> len(files), skipped
    (262, [])
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr_keras.data.io import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, is_dicom_path
from cxr_keras.data.manifest import Skip

__all__ = ["SPLIT_FOLDERS", "image_files", "read_csv"]


#: folder name -> split name, for datasets that ship their splits as folders
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


_SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


# Companion files datasets ship beside their images: not images, not worth a warning.
_COMPANION_SUFFIXES = {
    ".md",
    ".txt",
    ".rst",
    ".csv",
    ".tsv",
    ".json",
    ".yaml",
    ".yml",
    ".xml",
    ".html",
    ".pdf",
    ".gz",
    ".zip",
    ".py",
    ".ipynb",
    ".sha256",
    ".log",
}


def image_files(folder: Path) -> tuple[list[Path], list[Skip]]:
    """Image and DICOM files under a folder (recursive), and the other files as skips."""
    files, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.name.lower()
        suffix = path.suffix.lower()
        if name in _SYSTEM_FILES or name.startswith("._") or suffix in _COMPANION_SUFFIXES:
            continue
        if suffix in IMAGE_EXTENSIONS or suffix in DICOM_EXTENSIONS or is_dicom_path(path):
            files.append(path)
        else:
            skipped.append(
                (
                    str(path),
                    "unsupported_format",
                    f"not an image file (extension {suffix or 'none'!r})",
                )
            )
    return files, skipped


def read_csv(csv: Path) -> pd.DataFrame:
    """A labels CSV as text cells (blanks stay blank), or a ValueError naming the file."""
    try:
        return pd.read_csv(csv, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"{csv}: labels CSV not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{csv}: not a readable CSV ({exc})") from None
