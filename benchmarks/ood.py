"""How well a model artifact says "this is not what I was trained on".

Runs ``predict`` (the path users take) with the artifact on:

- its own validation split (in distribution: the flag rate to keep low), and the same
  films each with one mild change (JPEG quality, gamma, contrast, a small crop, blur), a
  proxy for films of the same kind taken another day;
- the NIH ChestX-ray14 sample (adult chest films: a shift the pediatric model should
  report; no target);
- photographs and pictures in colour and as grayscale copies, other medical images (MR,
  CT, ultrasound, a tibia radiograph, retina photographs, a brain MR) and synthetic images
  (see ``benchmarks/ood_images.py``; files ``predict`` refuses with a reason, such as an MR
  DICOM, count as flagged).

For each set it prints the share flagged (the whole verdict: input checks and detector),
the detector's share alone, and the AUROC of the detector's score against the validation
films; and the same AUROCs for simpler scores, computed from the same answers: max-logit
(the largest logit's negative) and energy (the negative log-sum-exp of the logits and 0),
and a Mahalanobis detector on the last layer alone (fitted like the artifact's on its
training split: ``--baselines``). The last line:
``ratio: non-chest-film flag rate / validation flag rate``.

Usage:
    python benchmarks/ood.py [--model kermany_pneumonia] [--out runs/bench_ood]
        [--no-baselines]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "cxr_keras" / "pretrained" / "kermany_pneumonia"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

NIH = REPO.parent / "shared" / "data" / "nih_cxr14_sample" / "images"
NON_CHEST = ("natural (colour)", "natural (grayscale)", "other medical images", "synthetic")


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    inside, outside = inside[np.isfinite(inside)], outside[np.isfinite(outside)]
    if not len(inside) or not len(outside):
        return float("nan")
    y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(y, np.r_[inside, outside]))


def _scores(document: dict) -> dict[str, np.ndarray]:
    """Per answered file: the detector score and the simple baselines' scores (higher:
    more out of distribution), from the temperature-scaled logits."""
    files = document["files"]
    p = np.array([[f["probabilities"][k] for k in document["labels"]] for f in files])
    p = np.clip(p, 1e-12, 1 - 1e-12)
    z = np.log(p / (1 - p))
    return {
        "detector": np.array([np.nan if f["ood_score"] is None else f["ood_score"] for f in files]),
        "max-logit": -np.abs(z).max(axis=1) if len(z) else np.array([]),
        "energy": -np.logaddexp(0, z).sum(axis=1) if len(z) else np.array([]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_ood"))
    parser.add_argument("--no-baselines", action="store_true", help="skip the last-layer fit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from ood_images import build_all, mildly_changed

    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.evaluation.frames import artifact_manifest
    from cxr_keras.serving.predict import predict

    artifact = load_artifact(args.model)
    if artifact.ood_detector is None:
        sys.exit(f"{args.model}: no detector fitted; run evaluate --update-model first")
    out = Path(args.out)
    manifest = artifact_manifest(artifact)
    val_films = list(manifest[manifest["split"] == "val"].path)
    sets = {
        "validation films (in distribution)": val_films,
        "validation films, mildly changed": [str(p) for p in mildly_changed(val_films, out)],
    }
    if NIH.is_dir():
        sets["NIH adult chest films"] = sorted(str(p) for p in NIH.iterdir())
    sets.update({k: [str(p) for p in v] for k, v in build_all(out / "images").items()})

    documents = {}
    for name, paths in sets.items():
        folder = out / "predict" / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        documents[name] = predict(artifact, paths, out=folder, mc_passes=0)
    val_name = next(iter(sets))
    scores = {name: _scores(doc) for name, doc in documents.items()}
    last_layer = {} if args.no_baselines else _last_layer_scores(artifact, manifest, sets)

    print(
        f"model: {args.model}; detector threshold {artifact.ood_detector.threshold:.3f} "
        f"({artifact.ood_detector.quantile:.1%} of its validation films)"
    )
    header = (
        "set",
        "files",
        "flagged",
        "detector",
        "AUROC det",
        "max-logit",
        "energy",
        "last layer",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rates = {}
    threshold = artifact.ood_detector.threshold
    for name, doc in documents.items():
        files, refused = doc["files"], len(doc["problems"])
        flagged = sum(f["ood"] for f in files) + refused  # refused with a reason: flagged
        total = len(files) + refused
        rates[name] = flagged / max(total, 1)
        detector_only = (
            np.mean([f["ood_score"] is not None and f["ood_score"] > threshold for f in files])
            if files
            else float("nan")
        )
        row = [
            name,
            str(total),
            f"{rates[name]:.1%}" + (f" ({refused} refused)" if refused else ""),
            f"{detector_only:.1%}",
        ]
        for key in ("detector", "max-logit", "energy"):
            row.append(
                "-"
                if name == val_name
                else f"{_auroc(scores[val_name][key], scores[name][key]):.3f}"
            )
        if last_layer:
            row.append(
                "-" if name == val_name else f"{_auroc(last_layer[val_name], last_layer[name]):.3f}"
            )
        else:
            row.append("skipped")
        print("| " + " | ".join(row) + " |")
    (out / "summary.json").write_text(json.dumps(rates, indent=2), encoding="utf-8")
    non_chest = [n for n in documents if n in NON_CHEST]
    outside = sum(
        rates[n] * (len(documents[n]["files"]) + len(documents[n]["problems"])) for n in non_chest
    )
    count = sum(len(documents[n]["files"]) + len(documents[n]["problems"]) for n in non_chest)
    print(
        f"non-chest-film images flagged: {outside / max(count, 1):.1%} of {count}; "
        f"validation films flagged: {rates[val_name]:.1%} of {len(documents[val_name]['files'])}"
    )
    print(f"ratio: {(outside / max(count, 1)) / max(rates[val_name], 1e-9):.1f}")


def _last_layer_scores(artifact, manifest, sets) -> dict[str, np.ndarray]:
    """The baseline: a Mahalanobis detector on the last activation layer only, fitted
    like the artifact's (training split, class means, Ledoit-Wolf)."""
    from cxr_keras.artifact.ood import detector_layers, fit_detector
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.data.verify import verify_files

    last = detector_layers(artifact.explain_model)[-1:]
    reader = Predictor(artifact, feature_layers=last)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    outputs = reader.manifest_outputs(train)
    rows = outputs.decoded
    y, _ = label_arrays(train[rows], artifact.labels)
    detector = fit_detector(
        [f[rows] for f in outputs.features],
        groups=(y > 0).any(axis=1).astype(int),
        val_features=None,
        layers=last,
    )
    result = {}
    for name, paths in sets.items():  # the files predict answers: verified, then decoded
        files = verify_files(
            new_manifest([{"path": p} for p in paths], labels=[]), artifact.image_spec
        )
        scored = reader.manifest_outputs(files) if len(files) else None
        decoded = scored.decoded if scored is not None else np.zeros(0, bool)
        result[name] = (
            detector.score([scored.features[0][decoded]]) if decoded.any() else np.array([])
        )
    return result


if __name__ == "__main__":
    main()
