"""What the dataset adapters share: finding files and label files, attaching images to label
rows, choosing labels, and finishing the manifest."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cxr_keras.data.files import image_files
from cxr_keras.data.labels import canonical_label, same_label
from cxr_keras.data.manifest import Skip, new_manifest

__all__ = [
    "attach_images",
    "find_file",
    "finish_manifest",
    "index_by_stem",
    "read_list",
    "select_labels",
    "split_root",
]

log = logging.getLogger(__name__)


def find_file(root: Path, patterns: Iterable[str], depth: int = 2) -> Path | None:
    """The first file matching one of ``patterns`` at most ``depth`` folders below
    ``root`` (shallowest first; of several at one depth, the last by name, i.e. the newest
    revision such as ``Data_Entry_2017_v2020.csv``)."""
    for level in range(depth + 1):
        prefix = "*/" * level
        for pattern in patterns:
            found = sorted(p for p in root.glob(prefix + pattern) if p.is_file())
            found = [
                p
                for p in found
                if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts[:-1])
            ]
            if found:
                return found[-1]
    return None


def split_root(
    root: str | os.PathLike, label_patterns: Iterable[str], depth: int = 2
) -> tuple[Path, Path | None]:
    """(dataset folder, label file) for a root that is a folder (the label file searched
    at most ``depth`` folders down) or a label file (the folder is then the file's, and
    the adapters look for no images)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root.parent, root
    if not root.is_dir():
        raise ValueError(f"{root}: dataset folder or label file not found")
    return root, find_file(root, label_patterns, depth)


def index_by_stem(root: Path, under: Iterable[str] = ()) -> tuple[dict[str, Path], list[Skip]]:
    """Image files below ``root`` (or below its first existing ``under`` folder) by file
    name without extension, the official key of NIH and RSNA; names found twice are
    ambiguous and left out."""
    for name in under:
        if (root / name).is_dir():
            root = root / name
            break
    files, skipped = image_files(root)
    stems = pd.Series([f.stem for f in files], dtype=object)
    repeated = set(stems[stems.duplicated()])
    skipped += [
        (str(f), "ambiguous", f"another image is also named {f.stem!r}")
        for f in files
        if f.stem in repeated
    ]
    return {f.stem: f for f in files if f.stem not in repeated}, skipped


def attach_images(
    df: pd.DataFrame,
    *,
    keys: pd.Series,
    index: dict[str, Path],
    nominal: Path,
    dataset: str,
    skipped: list[Skip],
) -> pd.DataFrame:
    """Point each row at its image found by key; rows without one are skipped as missing.
    With no images at all (a label file studied alone) paths are the official ones."""
    if not index:
        df = df.copy()
        df["path"] = [os.path.join(os.path.abspath(nominal), k) for k in keys]
        df.attrs.setdefault("notes", []).append(
            f"no {dataset} images found: paths are where the official layout puts them "
            f"({nominal}); use the manifest for label statistics only"
        )
        return df
    found = keys.map(lambda k: index.get(Path(k).stem))
    skipped += [
        (str(nominal / k), "missing", f"no image file named {Path(k).stem}.* under the dataset")
        for k in keys[found.isna()]
    ]
    out = df[found.notna().to_numpy()].copy()
    out["path"] = [str(p.resolve()) for p in found[found.notna()]]
    listed = {Path(k).stem for k in keys}
    skipped += [
        (str(p), "unlabelled", f"not listed in the {dataset} labels")
        for stem, p in index.items()
        if stem not in listed
    ]
    return out


def finish_manifest(df: pd.DataFrame, *, labels: list[str], skipped: list[Skip], notes: list[str]):
    """A manifest with the source's skips and notes carried over."""
    out = new_manifest(df, labels, [*df.attrs.get("skipped", []), *skipped])
    out.attrs["notes"] = [*df.attrs.get("notes", []), *notes]
    for note in notes:
        log.info(note)
    return out


def select_labels(requested: Iterable[str] | None, available: Iterable[str], dataset: str):
    """Requested labels in canonical spelling, each checked against the dataset's."""
    available = list(available)
    if requested is None:
        return available
    chosen = [canonical_label(label) for label in requested]
    unknown = [c for c in chosen if not any(same_label(c, a) for a in available)]
    if unknown:
        raise ValueError(f"{dataset} has no label {unknown}; its labels: {available}")
    return [next(a for a in available if same_label(c, a)) for c in chosen]


def read_list(path: Path | None) -> set[str]:
    """The file names of an official split list (one per line)."""
    if path is None:
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}
