"""Check a model's figures yourself: any artifact on any labelled folder or manifest.

Predicts every image with the artifact as it is (its temperature, its stored
thresholds: nothing is refitted on the data checked) and prints one line each: the data,
ROC AUC with its patient-level bootstrap 95% CI, accuracy / sensitivity / specificity at
every stored threshold rule (the decision rule marked), and the ECE and Brier score of
the calibrated probabilities. For a multi-label model, one block per label.

``--data`` takes what ``evaluate --data`` takes: a class-folder tree (e.g. the official
Kermany ``chest_xray/test`` folder with ``NORMAL/`` and ``PNEUMONIA/``), a manifest CSV
or a dataset YAML; ``--split`` picks rows of a split column (default: all rows).

Usage:
    python benchmarks/quality.py --model kermany_pneumonia --data path/to/chest_xray/test
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def quality(model, data, split: str = "all", bootstrap: int = 1000, seed: int = 0) -> dict:
    """The figures as a dict (see the module docstring)."""
    from cxr_keras.artifact.calibration import brier_score, expected_calibration_error
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.evaluation.frames import external_manifest, select_split
    from cxr_keras.evaluation.metrics import discrimination, threshold_metrics

    artifact = load_artifact(model)
    labels = artifact.labels
    frame = select_split(external_manifest(artifact, data), split, f"--data {data}")
    predictor = Predictor(artifact)
    logits = predictor.manifest_logits(frame)
    decoded = ~np.isnan(logits).any(axis=1)
    frame, logits = frame[decoded].reset_index(drop=True), logits[decoded]
    p = predictor.from_logits(logits).probabilities
    y, mask = label_arrays(frame, labels)
    auc = discrimination(
        y,
        p,
        mask=mask,
        labels=labels,
        patient_ids=frame["patient_id"],
        n_resamples=bootstrap,
        seed=seed,
    )
    out = {
        "model": str(artifact.path),
        "data": str(data),
        "images": len(frame),
        "undecodable": int((~decoded).sum()),
        "decision_rule": artifact.decision_rule,
        "labels": {},
    }
    rules = artifact.meta["thresholds"]
    for j, label in enumerate(labels):
        keep = mask[:, j].astype(bool)
        yj, pj = y[keep, j], p[keep, j]
        out["labels"][label] = {
            "positives": int(yj.sum()),
            "negatives": int((1 - yj).sum()),
            "roc_auc": auc["labels"][label]["roc_auc"],
            "roc_auc_ci": auc["labels"][label]["roc_auc_ci"],
            "at_thresholds": {
                rule: threshold_metrics(yj, pj, float(values[label]))
                for rule, values in rules.items()
            },
            "ece": expected_calibration_error(yj, pj),
            "brier": brier_score(yj, pj),
        }
    return out


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument("--data", required=True, help="class folders, manifest CSV or YAML")
    parser.add_argument("--split", default="all", help="rows of this split (default: all)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    result = quality(args.model, args.data, args.split, args.bootstrap)
    print(f"model: {result['model']}")
    print(
        f"data: {result['data']}: {result['images']} images ({result['undecodable']} undecodable)"
    )
    for label, figures in result["labels"].items():
        low, high = figures["roc_auc_ci"] or (None, None)
        print(f"{label}: positives {figures['positives']}, negatives {figures['negatives']}")
        print(f"{label} roc_auc: {_fmt(figures['roc_auc'])} [95% CI {_fmt(low)}, {_fmt(high)}]")
        for rule, m in figures["at_thresholds"].items():
            mark = " (decision rule)" if rule == result["decision_rule"] else ""
            print(
                f"{label} at {rule}{mark} threshold {m['threshold']:.4f}: accuracy "
                f"{_fmt(m['accuracy'])}, sensitivity {_fmt(m['sensitivity'])}, "
                f"specificity {_fmt(m['specificity'])}"
            )
        print(f"{label} ece: {_fmt(figures['ece'])} (brier {_fmt(figures['brier'])})")


if __name__ == "__main__":
    main()
