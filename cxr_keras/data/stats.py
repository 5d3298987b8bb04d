"""Label statistics and class weights, computed from a (training) manifest.

Example:
    >>> from cxr_keras.data.sources import folder_source
    >>> from cxr_keras.sample_data import sample_path
    >>> df = folder_source(sample_path("kermany"))
    >>> label_counts(df)["PNEUMONIA"]["positive"]
    132
    >>> [[round(float(w), 3) for w in row] for row in class_weight_table(df)]  # [w_0, w_1]
    [[1.008, 0.992]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr_keras.data.manifest import manifest_labels, skipped_summary

__all__ = [
    "class_weight_table",
    "co_occurrence",
    "dataset_summary",
    "format_summary",
    "label_counts",
    "positive_weights",
]


def label_counts(manifest: pd.DataFrame, labels: list[str] | None = None) -> dict[str, dict]:
    """Per label: positives, negatives, ignored (masked) entries and prevalence."""
    labels = labels or manifest_labels(manifest)
    out = {}
    for label in labels:
        values = manifest[label].to_numpy(dtype=float)
        pos = int(np.sum(values == 1))
        neg = int(np.sum(values == 0))
        out[label] = {
            "positive": pos,
            "negative": neg,
            "ignored": int(np.isnan(values).sum()),
            "prevalence": round(pos / (pos + neg), 4) if pos + neg else None,
        }
    return out


def co_occurrence(manifest: pd.DataFrame, labels: list[str] | None = None) -> pd.DataFrame:
    """Images positive for both labels (the diagonal: positives of each label)."""
    labels = labels or manifest_labels(manifest)
    positives = (manifest[labels].fillna(0).to_numpy() == 1).astype(np.int64)
    return pd.DataFrame(positives.T @ positives, index=labels, columns=labels)


def class_weight_table(manifest: pd.DataFrame, labels: list[str] | None = None) -> np.ndarray:
    """Balanced weights per label, shape (n_labels, 2): [weight of 0, weight of 1].

    ``w_c = n_observed / (2 * n_c)``, as scikit-learn's ``class_weight="balanced"`` does per
    label; a label without positives (or negatives) keeps weight 1 for that class.
    """
    labels = labels or manifest_labels(manifest)
    table = np.ones((len(labels), 2), dtype=np.float32)
    for j, stats in enumerate(label_counts(manifest, labels).values()):
        total = stats["positive"] + stats["negative"]
        for k, key in enumerate(("negative", "positive")):
            if stats[key]:
                table[j, k] = total / (2.0 * stats[key])
    return table


def positive_weights(manifest: pd.DataFrame, labels: list[str] | None = None) -> np.ndarray:
    """``n_negative / n_positive`` per label (the ``pos_weight`` of weighted BCE); 1 if none."""
    labels = labels or manifest_labels(manifest)
    counts = label_counts(manifest, labels).values()
    return np.array(
        [c["negative"] / c["positive"] if c["positive"] else 1.0 for c in counts], dtype=np.float32
    )


def dataset_summary(manifest: pd.DataFrame, labels: list[str] | None = None) -> dict:
    """Counts per split (images, patients, labels), co-occurrence and skipped files."""
    labels = labels or manifest_labels(manifest)
    splits = sorted(manifest["split"].unique()) if "split" in manifest.columns else ["all"]
    summary = {
        "labels": labels,
        "images": len(manifest),
        "patients": int(manifest["patient_id"].nunique()),
        "splits": {},
    }
    for name in splits:
        part = manifest if name == "all" else manifest[manifest["split"] == name]
        summary["splits"][name] = {
            "images": len(part),
            "patients": int(part["patient_id"].nunique()),
            "labels": label_counts(part, labels),
        }
        if "view" in part.columns and part["view"].notna().any():
            summary["splits"][name]["views"] = {
                str(k): int(v) for k, v in part["view"].value_counts().items()
            }
    if len(labels) > 1:
        summary["co_occurrence"] = co_occurrence(manifest, labels).to_dict()
    summary["skipped"] = skipped_summary(manifest)
    summary["notes"] = list(manifest.attrs.get("notes", []))
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a plain-text report for the terminal."""
    labels = summary["labels"]
    lines = [f"{summary['images']} images, {summary['patients']} patients, {len(labels)} label(s)"]
    header = f"{'split':<8}{'images':>8}{'patients':>10}  " + "  ".join(
        f"{label[:18]:>18}" for label in labels
    )
    lines += ["", header, "-" * len(header)]
    for name, part in summary["splits"].items():
        cells = []
        for label in labels:
            c = part["labels"][label]
            ignored = f" ({c['ignored']} ign.)" if c["ignored"] else ""
            cells.append(f"{str(c['positive']) + '+ / ' + str(c['negative']) + '-' + ignored:>18}")
        lines.append(f"{name:<8}{part['images']:>8}{part['patients']:>10}  " + "  ".join(cells))
    views = {n: p["views"] for n, p in summary["splits"].items() if "views" in p}
    if views:
        lines.append("views: " + "; ".join(f"{n}: {v}" for n, v in views.items()))
    if "co_occurrence" in summary:
        co = pd.DataFrame(summary["co_occurrence"]).loc[labels, labels]
        lines += ["", "label co-occurrence (images positive for both):", co.to_string()]
    skipped = summary["skipped"]
    lines += [
        "",
        f"skipped files: {sum(skipped.values())}"
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) + ")"
            if skipped
            else ""
        ),
    ]
    lines += [f"note: {note}" for note in summary.get("notes", [])]
    return "\n".join(lines)
