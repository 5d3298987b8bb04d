"""How well a model's answers follow a change in the share of positives (label shift).

The artifact's validation split is split by patient into two halves: one fits the
bias-corrected temperature scaling (as ``evaluate`` does on the whole split), the other
is resampled, ``--repeats`` times, to each prevalence in ``--prevalences`` (``--size``
films each, drawn with replacement within each class). For each prevalence it prints:

- the error of the EM estimate (Saerens et al. 2002 on BCTS; mean absolute, and mean
  signed) and how often the 95 % bootstrap interval holds the true share;
- the log loss of the calibrated probabilities, and the accuracy of the most probable
  class (probability >= 0.5): at the training share, after correcting to the EM
  estimate, and after correcting to the true share (the declared-prevalence rule).

Then the stress table: ``--stress-images`` validation films (drawn per class) re-scored
under every acquisition shift of ``cxr_keras.evaluation.stress``, at the stored
thresholds.

The last line: ``ratio: accuracy@0.5 after EM correction / before`` (the median over
prevalences).

Usage:
    python benchmarks/shift.py [--model kermany_pneumonia] [--size 300]
        [--repeats 20] [--prevalences 0.2 0.4 0.5 0.625 0.74 0.9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "cxr_keras" / "pretrained" / "kermany_pneumonia"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--prevalences", type=float, nargs="+", default=[0.2, 0.4, 0.5, 0.625, 0.74, 0.9]
    )
    parser.add_argument("--stress-images", type=int, default=300)
    args = parser.parse_args()

    from cxr_keras.artifact.label_shift import (
        adapt_probabilities,
        bcts_probabilities,
        estimate_prevalence,
        fit_bcts,
    )
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.evaluation.frames import artifact_manifest

    artifact = load_artifact(args.model)
    label = artifact.labels[0]
    manifest = artifact_manifest(artifact)
    val = manifest[manifest["split"] == "val"].reset_index(drop=True)
    predictor = Predictor(artifact)
    logits = predictor.manifest_logits(val)[:, 0]
    y = label_arrays(val, artifact.labels)[0][:, 0].astype(bool)
    threshold = artifact.thresholds()[0]

    patients = val["patient_id"].to_numpy()
    rng = np.random.default_rng(0)
    unique = np.unique(patients)
    calibration_patients = set(rng.choice(unique, len(unique) // 2, replace=False))
    fit_rows = np.array([p in calibration_patients for p in patients])
    calibration = fit_bcts(logits[fit_rows], y[fit_rows])
    trained = float(y[fit_rows].mean())
    positives = np.flatnonzero(~fit_rows & y)
    negatives = np.flatnonzero(~fit_rows & ~y)
    print(
        f"model: {args.model} ({label}); validation {len(val)} films: BCTS fitted on "
        f"{fit_rows.sum()} (prevalence {trained:.3f}, T {calibration['temperature']:.3f}, "
        f"b {calibration['bias']:+.3f}); resampled from the other {len(positives)} positive "
        f"and {len(negatives)} negative films, {args.size} per draw, {args.repeats} draws"
    )
    header = (
        "true share", "EM |error|", "EM bias", "CI holds", "log loss before", "after EM",
        "after declared", "accuracy@0.5 before", "after EM", "after declared",
    )  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    gains = []
    for share in args.prevalences:
        errors, covered, scores = [], [], {k: [] for k in range(6)}
        for _ in range(args.repeats):
            k = round(share * args.size)
            rows = np.r_[
                rng.choice(positives, k, replace=True),
                rng.choice(negatives, args.size - k, replace=True),
            ]
            truth = y[rows]
            calibrated = bcts_probabilities(logits[rows], calibration)
            estimate, (low, high) = estimate_prevalence(calibrated, prior=trained, n_resamples=100)
            errors.append(estimate - truth.mean())
            covered.append(low <= truth.mean() <= high)
            by_em = adapt_probabilities(calibrated, prior_from=trained, prior_to=estimate)
            by_truth = adapt_probabilities(calibrated, prior_from=trained, prior_to=truth.mean())
            for i, p in enumerate((calibrated, by_em, by_truth)):
                p = np.clip(p, 1e-12, 1 - 1e-12)
                scores[i].append(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))
                scores[3 + i].append(np.mean((p >= 0.5) == truth))
        means = [float(np.mean(scores[i])) for i in range(6)]
        gains.append(means[4] / means[3])
        row = [f"{share:.3f}", f"{np.mean(np.abs(errors)):.3f}", f"{np.mean(errors):+.3f}",
               f"{np.mean(covered):.0%}", *[f"{m:.3f}" for m in means]]  # fmt: skip
        print("| " + " | ".join(row) + " |")
    print(
        f"decisions at the stored {artifact.decision_rule} threshold {threshold:.3f} are not "
        "moved by a prior correction (a cut on the score); accuracy@0.5 is the rule it moves"
    )
    _stress_table(artifact, predictor, val, args.stress_images)
    print(f"ratio: {statistics.median(gains):.3f}")


def _stress_table(artifact, predictor, val, limit: int) -> None:
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.evaluation.stress import stress_manifest

    y, mask = label_arrays(val, artifact.labels)
    stress = stress_manifest(predictor, val, y=y, mask=mask, limit=limit)
    print(f"stress: {stress['images']} of {stress['drawn_from']} validation films")
    header = ("shift", "severity", "ROC AUC", "sensitivity", "specificity", "ECE", "OOD share")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    keys = ("roc_auc", "sensitivity", "specificity", "ece", "ood_share")
    for row in [{"shift": "none", "severity": "", **stress["none"]}, *stress["shifts"]]:
        cells = [row["shift"], row["severity"], *(f"{row[k]:.3f}" for k in keys)]
        print("| " + " | ".join(cells) + " |")
    for key, worst in stress["worst"].items():
        print(f"worst {key}: {worst['value']:.3f} ({worst['shift']}, {worst['severity']})")
    print(f"each stored rule under the shifts (the table above: {stress['decision_rule']})")
    for rule, moves in stress["rules"].items():
        worst = {
            key: f"{w['value']:.3f} ({w['shift']}, {w['severity']})"
            for key, w in (
                ("sensitivity", moves["worst_sensitivity"]),
                ("specificity", moves["worst_specificity"]),
            )
        }
        print(
            f"{rule}: sensitivity {moves['none']['sensitivity']:.3f}, worst "
            f"{worst['sensitivity']}; specificity {moves['none']['specificity']:.3f}, "
            f"worst {worst['specificity']}"
        )


if __name__ == "__main__":
    main()
