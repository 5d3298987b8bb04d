"""Label statistics, co-occurrence and class weights against hand computations."""

from __future__ import annotations

import numpy as np

from cxr_keras.data.manifest import new_manifest
from cxr_keras.data.stats import (
    class_weight_table,
    co_occurrence,
    dataset_summary,
    format_summary,
    label_counts,
    positive_weights,
)

NAN = float("nan")
ROWS = [  # A, B per image; NaN = ignored
    (1.0, 1.0),
    (1.0, 0.0),
    (0.0, NAN),
    (0.0, 0.0),
    (0.0, 1.0),
    (1.0, 1.0),
]


def _manifest():
    rows = [
        {
            "path": f"/{i}.png",
            "A": a,
            "B": b,
            "patient_id": f"p{i // 2}",
            "split": "train" if i < 4 else "val",
        }
        for i, (a, b) in enumerate(ROWS)
    ]
    return new_manifest(rows, ["A", "B"], skipped=[("/x.png", "empty", "empty file")])


def test_counts_and_cooccurrence():
    df = _manifest()
    counts = label_counts(df)
    assert counts["A"] == {"positive": 3, "negative": 3, "ignored": 0, "prevalence": 0.5}
    assert counts["B"] == {"positive": 3, "negative": 2, "ignored": 1, "prevalence": 0.6}
    assert co_occurrence(df).to_numpy().tolist() == [[3, 2], [2, 3]]


def test_class_weights_are_balanced_per_label():
    table = class_weight_table(_manifest())
    np.testing.assert_allclose(table, [[6 / 6, 6 / 6], [5 / 4, 5 / 6]])
    np.testing.assert_allclose(positive_weights(_manifest()), [1.0, 2 / 3])


def test_summary_counts_splits_patients_and_skips():
    summary = dataset_summary(_manifest())
    assert summary["images"] == 6 and summary["patients"] == 3
    assert summary["splits"]["train"]["images"] == 4
    assert summary["splits"]["val"]["labels"]["B"]["positive"] == 2
    assert summary["skipped"] == {"empty": 1}
    text = format_summary(summary)
    assert "skipped files: 1 (empty: 1)" in text and "co-occurrence" in text
