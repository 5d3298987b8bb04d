"""Compare models on the same images, in one report (``python -m cxr_keras.compare``).

Each model is evaluated on the split (its existing ``evaluation/<split>/`` is reused, so
its thresholds are the ones it chose on its own validation split); the split must hold
the same images for every model. The report (``report.md``, ``report.html``,
``comparison.json``, ``figures/``; default ``runs/compare/<names>/``) has: per model and
label the ROC AUC with its patient-bootstrap CI and accuracy, precision, recall,
specificity and F1 at probability 0.5 and at the model's decision threshold; the
difference of each model's AUC from the first model's, with a paired patient-bootstrap
CI (both models on the same resampled patients); ROC curves overlaid; confusion matrices
side by side; and Grad-CAM heatmaps of every model side by side on the same films (the
films the models disagree on most, and the most clearly positive ones).

Example:
    >>> result = compare(["runs/customcnn", "runs/resnet50"])  # doctest: +SKIP
    >>> result["models"][1]["labels"]["PNEUMONIA"]["decision"]["f1"]  # doctest: +SKIP
    0.94
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.core.result_names import COUNTS, THRESHOLD_METRICS

__all__ = ["compare", "paired_auc_difference"]

log = logging.getLogger("cxr_keras.compare")


def paired_auc_difference(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    *,
    patient_ids=None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """ROC AUC of ``p_b`` minus that of ``p_a`` on the same images (one label's known
    entries), with a percentile bootstrap CI over patients: each resample scores both
    models on the same patients, so the interval reflects the difference itself, not two
    independent spreads. ``share_b_better``: the fraction of resamples where b wins.

    Example:
        >>> y = np.array([0, 0, 1, 1] * 10)
        >>> a = np.array([0.2, 0.6, 0.4, 0.8] * 10); b = np.array([0.1, 0.3, 0.7, 0.9] * 10)
        >>> d = paired_auc_difference(y, a, b, n_resamples=200)
        >>> round(d["difference"], 3), d["low"] > 0
        (0.25, True)
    """
    from sklearn.metrics import roc_auc_score

    from cxr_keras.evaluation.metrics import bootstrap_rows, patient_groups

    y = np.asarray(y)
    if len(y) == 0 or y.min() == y.max():
        return {"difference": None, "low": None, "high": None, "share_b_better": None}
    difference = float(roc_auc_score(y, p_b) - roc_auc_score(y, p_a))
    samples = []
    for rows in bootstrap_rows(patient_groups(patient_ids, len(y)), n_resamples, seed):
        yr = y[rows]
        if yr.min() != yr.max():
            samples.append(roc_auc_score(yr, p_b[rows]) - roc_auc_score(yr, p_a[rows]))
    if len(samples) < 10:
        return {"difference": difference, "low": None, "high": None, "share_b_better": None}
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return {
        "difference": difference,
        "low": float(low),
        "high": float(high),
        "share_b_better": float(np.mean(np.asarray(samples) > 0)),
        "resamples": len(samples),
    }


def _evaluation(artifact, split: str, bootstrap: int, seed: int) -> tuple[dict, pd.DataFrame]:
    """The model's evaluation on ``split`` (reused when it was run): metrics and the
    per-image predictions."""
    from cxr_keras.evaluation.evaluate import evaluate, report_folder

    folder = report_folder(artifact.path, split)
    if not (folder / "metrics.json").is_file() or not (folder / "predictions.csv").is_file():
        evaluate(artifact, split=split, bootstrap=bootstrap, seed=seed, out=folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"patient_id": str})
    return metrics, predictions


def _model_row(name: str, artifact, metrics: dict, labels: list[str]) -> dict:
    rule = metrics["decision_rule"]
    per_label = {}
    for label in labels:
        disc = metrics["discrimination"]["labels"][label]
        per_label[label] = {
            "roc_auc": disc["roc_auc"],
            "roc_auc_ci": disc.get("roc_auc_ci"),
            "at_0.5": {k: metrics["at_thresholds"]["default"][label][k] for k in THRESHOLD_METRICS},
            "decision": {
                "threshold": metrics["at_thresholds"][rule][label]["threshold"],
                **{k: metrics["at_thresholds"][rule][label][k] for k in THRESHOLD_METRICS},
            },
            "confusion": {k: metrics["at_thresholds"][rule][label][k] for k in COUNTS},
        }
    model = artifact.meta.get("model", {})
    training = artifact.meta.get("training", {})
    return {
        "name": name,
        "path": str(artifact.path),
        "backbone": model.get("backbone"),
        "trainable_params": model.get("trainable_params"),
        "image_size": list(artifact.image_spec.size),
        "training_seconds": training.get("wall_time_s"),
        "decision_rule": rule,
        "labels": per_label,
    }


def _pick_images(truth: pd.DataFrame, probabilities: dict[str, np.ndarray], n: int) -> list[int]:
    """Rows to explain: those the models disagree on most, then the most clearly positive
    ones (by the mean probability of their positive labels)."""
    stacked = np.stack(list(probabilities.values()))  # (models, images, labels)
    disagreement = (stacked.max(axis=0) - stacked.min(axis=0)).max(axis=1)
    positive = truth.fillna(0).to_numpy() == 1
    mean = stacked.mean(axis=0)
    strength = np.where(positive.any(axis=1), (mean * positive).max(axis=1), -1.0)
    orders = [
        iter(np.argsort(-disagreement, kind="stable")),
        iter(np.argsort(-strength, kind="stable")),
    ]
    chosen: list[int] = []
    n = min(n, len(disagreement))
    k = 0
    while len(chosen) < n:  # alternate: a disputed film, then a clearly positive one
        i = int(next(orders[k % 2]))
        k += 1
        if i not in chosen:
            chosen.append(i)
    return chosen[:n]


def _heatmaps_side_by_side(artifacts, names, paths, labels, probabilities, truth, out: Path):
    """One figure per film: the X-ray and each model's Grad-CAM (its default layer) for
    the film's most likely true label (else its most likely label)."""
    from cxr_keras.data.io import load_image, read_film
    from cxr_keras.explanation.gradcam import gradcam
    from cxr_keras.explanation.overlays import save_overlay, to_original

    targets = []  # the label explained on each film
    for i, _ in paths:
        positives = [j for j, label in enumerate(labels) if truth.iloc[i][label] == 1]
        mean = np.mean([probabilities[n][i] for n in names], axis=0)
        targets.append(max(positives, key=lambda c: mean[c]) if positives else int(np.argmax(mean)))
    wanted = sorted(set(targets))
    maps = []  # per model: (films, len(wanted), h, w) at its default layer
    for artifact in artifacts:
        x = np.stack([load_image(path, artifact.image_spec) for _, path in paths])
        heat = gradcam(artifact, x, label=[labels[j] for j in wanted])
        maps.append(next(iter(heat.maps.values())))
    figures = []
    for k, ((i, path), j) in enumerate(zip(paths, targets, strict=True)):
        film, _ = read_film(path, artifacts[0].image_spec)
        height, width = film.shape[:2]
        panels = [
            to_original(m[k, wanted.index(j)], a.image_spec, height=height, width=width)
            for m, a in zip(maps, artifacts, strict=True)
        ]
        titles = [f"{name}: p = {probabilities[name][i, j]:.3f}" for name in names]
        truth_text = "positive" if truth.iloc[i][labels[j]] == 1 else "negative"
        figures.append(
            save_overlay(
                film,
                panels,
                titles=titles,
                path=out / f"gradcam_{k:02d}_{Path(path).stem[:40]}.png",
                suptitle=f"{labels[j]} (truth: {truth_text}) - {Path(path).name}",
            )
        )
    return figures


def compare(
    models,
    *,
    split: str = "test",
    out: str | os.PathLike | None = None,
    images: int = 4,
    bootstrap: int = 1000,
    seed: int = 0,
    names: list[str] | None = None,
) -> dict:
    """Compare artifacts (or their folders) on one split; writes the report and returns
    ``comparison.json``'s content. Raises ``ValueError`` when the models predict
    different labels or were evaluated on different images."""
    from cxr_keras.artifact.store import Artifact, load_artifact
    from cxr_keras.evaluation import plots
    from cxr_keras.evaluation.report import Report, fmt

    if len(models) < 2:
        raise ValueError("compare: give at least two models")
    artifacts = [m if isinstance(m, Artifact) else load_artifact(m) for m in models]
    names = list(names) if names else [a.meta.get("name") or a.path.name for a in artifacts]
    if len(set(names)) < len(names):
        names = [f"{n} ({a.path})" for n, a in zip(names, artifacts, strict=True)]
    labels = artifacts[0].labels
    for artifact in artifacts[1:]:
        if artifact.labels != labels:
            raise ValueError(
                f"compare: {artifact.path} predicts {artifact.labels}, "
                f"{artifacts[0].path} predicts {labels}"
            )
    evaluations = [_evaluation(a, split, bootstrap, seed) for a in artifacts]
    first = evaluations[0][1].set_index("path")
    for artifact, (_, predictions) in zip(artifacts[1:], evaluations[1:], strict=True):
        if set(predictions["path"]) != set(first.index):
            raise ValueError(
                f"compare: {artifact.path} and {artifacts[0].path} were evaluated on "
                f"different images of the {split} split ({len(predictions)} vs {len(first)}); "
                "compare models trained on the same data and split seed"
            )
    paths = list(first.index)
    truth = first[labels]
    mask = truth.notna().to_numpy().astype(float)
    y = truth.fillna(0).to_numpy()
    probabilities = {
        name: predictions.set_index("path")
        .loc[paths, [f"probability_{lb}" for lb in labels]]
        .to_numpy(dtype=float)
        for name, (_, predictions) in zip(names, evaluations, strict=True)
    }
    patients = first["patient_id"].tolist() if "patient_id" in first else None
    rows = [
        _model_row(name, artifact, metrics, labels)
        for name, artifact, (metrics, _) in zip(names, artifacts, evaluations, strict=True)
    ]
    differences = {}
    for name in names[1:]:
        differences[name] = {}
        for j, label in enumerate(labels):
            known = mask[:, j] > 0
            differences[name][label] = paired_auc_difference(
                y[known, j],
                probabilities[names[0]][known, j],
                probabilities[name][known, j],
                patient_ids=None if patients is None else np.asarray(patients, dtype=object)[known],
                n_resamples=bootstrap,
                seed=seed,
            )

    out = Path(out) if out else Path("runs") / "compare" / "_vs_".join(names)
    fig_dir = out / "figures"
    figures = {
        "roc": plots.roc_comparison(
            y, probabilities, mask=mask, labels=labels, path=fig_dir / "roc.png"
        ),
        "confusion": {
            label: plots.confusion_matrices(
                {
                    name: {
                        **row["labels"][label]["confusion"],
                        "threshold": row["labels"][label]["decision"]["threshold"],
                    }
                    for name, row in zip(names, rows, strict=True)
                },
                "models' decision",
                fig_dir / f"confusion_{j}.png",
            )
            for j, label in enumerate(labels)
        },
    }
    chosen = _pick_images(truth, probabilities, images) if images > 0 else []
    figures["gradcam"] = _heatmaps_side_by_side(
        artifacts,
        names,
        [(i, paths[i]) for i in chosen],
        labels,
        probabilities,
        truth,
        fig_dir,
    )
    result = {
        "split": split,
        "images": len(paths),
        "patients": None if patients is None else len(set(patients)),
        "labels": labels,
        "models": rows,
        "auc_difference_vs": names[0],
        "auc_differences": differences,
        "bootstrap": {"resamples": bootstrap, "seed": seed, "unit": "patient"},
        "figures": figures,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(result, indent=2), encoding="utf-8")

    report = Report(f"Comparison on the {split} split: {', '.join(names)}")
    report.paragraph(
        f"{len(paths)} images"
        + (f" of {result['patients']} patients" if patients is not None else "")
        + ", the same for every model. Thresholds: each model's own decision rule, chosen "
        "on its validation split."
    )
    report.heading("Models")
    report.table(
        [
            "model",
            "backbone",
            "trainable parameters",
            "image size",
            "training time (min)",
            "decision rule",
        ],
        [
            [
                r["name"],
                r["backbone"],
                fmt(r["trainable_params"]),
                "x".join(map(str, r["image_size"])),
                fmt(None if r["training_seconds"] is None else r["training_seconds"] / 60, 1),
                r["decision_rule"],
            ]
            for r in rows
        ],
    )
    report.heading("Metrics")
    header = ["label", "model", "ROC AUC", "95% CI", "at", "threshold"]
    header += list(THRESHOLD_METRICS.values())
    table = []
    for label in labels:
        for r in rows:
            m = r["labels"][label]
            ci = m["roc_auc_ci"]
            ci_text = f"{fmt(ci[0])}-{fmt(ci[1])}" if ci and ci[0] is not None else "undefined"
            for at, values, threshold in (
                ("0.5", m["at_0.5"], 0.5),
                (r["decision_rule"], m["decision"], m["decision"]["threshold"]),
            ):
                table.append(
                    [
                        label,
                        r["name"],
                        fmt(m["roc_auc"]),
                        ci_text,
                        at,
                        fmt(threshold),
                        *(fmt(values[k]) for k in THRESHOLD_METRICS),
                    ]
                )
    report.table(header, [[fmt(v) for v in row] for row in table])
    report.paragraph("95% CIs: percentile bootstrap over patients.")
    if differences:
        report.heading(f"ROC AUC difference from {names[0]} (paired)")
        report.table(
            ["model", "label", "AUC difference", "95% CI", "resamples where better"],
            [
                [
                    name,
                    label,
                    fmt(d["difference"]),
                    "undefined" if d["low"] is None else f"{fmt(d['low'])} to {fmt(d['high'])}",
                    "undefined"
                    if d["share_b_better"] is None
                    else f"{100 * d['share_b_better']:.0f}%",
                ]
                for name, per in differences.items()
                for label, d in per.items()
            ],
        )
        report.paragraph(
            f"Both models are scored on the same {bootstrap} patient-bootstrap resamples; an "
            "interval that excludes 0 is a difference this split can show."
        )
    report.heading("Figures")
    report.image(figures["roc"], "ROC curves of every model (AUC in the legend)")
    for label, path in figures["confusion"].items():
        report.image(path, f"{label}: confusion matrices at each model's decision threshold")
    for path in figures["gradcam"]:
        report.image(path, "Grad-CAM of each model on the same film")
    (out / "report.md").write_text(report.markdown(relative_to=out), encoding="utf-8")
    (out / "report.html").write_text(report.html(), encoding="utf-8")
    result["report"] = str(out)
    log.info("comparison written to %s", out)
    return result
