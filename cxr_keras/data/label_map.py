"""Label mapping: learn labels made of a source's labels, and leave chosen findings out.

Published pipelines rarely learn a dataset's labels as shipped. RSNA Pneumonia Detection
is learned as "Lung Opacity vs. the rest" or "Lung Opacity vs. Normal" (the "No Lung
Opacity / Not Normal" images left out), or as "abnormal vs. normal"; NIH findings are
merged into "any finding". Two config keys say so for every source:

- ``data.label_map`` ``{new: [source labels]}``: ``new`` is positive where any of its
  source labels is, negative where all are negative, and unknown (masked out of the loss
  and the metrics) otherwise;
- ``data.exclude`` ``[labels]``: images positive for any of them are left out (counted
  in the run's notes; an image whose exclude label is unknown stays).

Example:
    >>> import pandas as pd
    >>> from cxr_keras.data.manifest import new_manifest
    >>> rows = [{"path": "a", "Lung Opacity": 1, "Not Normal": 0},
    ...         {"path": "b", "Lung Opacity": 0, "Not Normal": 1},
    ...         {"path": "c", "Lung Opacity": 0, "Not Normal": 0}]
    >>> df = new_manifest(rows, ["Lung Opacity", "Not Normal"])
    >>> mapped = map_labels(df, label_map={"Abnormal": ["Lung Opacity", "Not Normal"]})
    >>> mapped.attrs["labels"], mapped["Abnormal"].tolist()
    (['Abnormal'], [1.0, 1.0, 0.0])
    >>> map_labels(df, labels=["Lung Opacity"], exclude=["Not Normal"])["path"].tolist()
    ['a', 'c']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cxr_keras.data.manifest import manifest_labels

__all__ = ["map_labels", "source_labels"]

log = logging.getLogger(__name__)


def source_labels(
    labels: Sequence[str] | None,
    label_map: Mapping[str, Sequence[str]] | None = None,
    exclude: Sequence[str] = (),
) -> list[str] | None:
    """The labels to ask a source for so that :func:`map_labels` can make ``labels``.

    None (every label the source has) when nothing is mapped or no labels are named.

    Example:
        >>> source_labels(["Abnormal", "Edema"], {"Abnormal": ["Mass", "Nodule"]}, ["Hernia"])
        ['Mass', 'Nodule', 'Edema', 'Hernia']
    """
    label_map = label_map or {}
    wanted = list(labels) if labels else list(label_map)
    if not wanted or (not label_map and not exclude):
        return list(labels) if labels else None
    needed: list[str] = []
    for label in [*wanted, *exclude]:
        for name in label_map.get(label, [label]):
            if name not in needed:
                needed.append(name)
    return needed


def map_labels(
    df: pd.DataFrame,
    *,
    label_map: Mapping[str, Sequence[str]] | None = None,
    labels: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> pd.DataFrame:
    """The manifest with ``exclude`` positives left out and ``labels`` (default: the
    mapped labels, else the manifest's) built by ``label_map``; source label columns
    that are not learned are dropped. Raises ``ValueError`` naming a label the manifest
    lacks.
    """
    label_map = dict(label_map or {})
    have = manifest_labels(df)
    labels = list(labels) if labels else (list(label_map) or have)
    needed = {n for label in labels for n in label_map.get(label, [label])} | set(exclude)
    missing = sorted(needed - set(have))
    if missing:
        raise ValueError(
            f"data.label_map / data.exclude: the data has no label(s) {missing}; its labels: {have}"
        )
    if exclude:
        drop = (df[list(exclude)] == 1.0).any(axis=1).to_numpy()
        out = df[~drop].reset_index(drop=True)
        note = (
            f"{int(drop.sum())} of {len(df)} images left out as positive for "
            f"{', '.join(exclude)} (data.exclude)"
        )
        log.info(note)
    else:
        out = df.copy()
    for label in labels:
        sources = label_map.get(label)
        if not sources:
            continue
        values = out[list(sources)].to_numpy(dtype=float)
        positive = (values == 1.0).any(axis=1)
        negative = (values == 0.0).all(axis=1)
        out[label] = np.where(positive, 1.0, np.where(negative, 0.0, np.nan))
    unused = [c for c in have if c not in labels]
    front = [c for c in out.columns if c not in labels and c not in unused]
    position = front.index("path") + 1 if "path" in front else 0
    out = out[[*front[:position], *labels, *front[position:]]]
    out.attrs = {
        **df.attrs,
        "labels": list(labels),
        "notes": [*df.attrs.get("notes", []), *([note] if exclude else [])],
    }
    if label_map:
        out.attrs["label_map"] = {k: list(v) for k, v in label_map.items()}
    return out
