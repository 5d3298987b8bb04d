"""Predict image files, folders and DICOMs with a model artifact (``python -m cxr_keras.predict``).

Writes ``DIR/predictions.csv`` (one row per file: path, one probability column per label
named after the label, the decision, the referral flag, ``ood`` (True/False) and
``ood_score``) and ``DIR/predictions.json`` (per file: probabilities with the artifact's
temperature applied, decisions at its stored thresholds, the out-of-distribution verdict
with its reasons, the referral flag with its reasons, the heatmap paths with
``--gradcam``). With ``--log FILE`` every answer is also appended to an audit log
(:mod:`cxr_keras.artifact.audit_log`: no file name, no DICOM tag, the pixels by a keyed
hash), which ``python -m cxr_keras.monitor`` reads. An input that is out of distribution (see
:mod:`cxr_keras.artifact.ood`) is always referred: its answer is not to be trusted.
Folders are searched recursively. A file that cannot be used is reported by its file name
with the reason (in the JSON, the log and the exit summary) and the others still get
answers. Identifying DICOM tags are never read into any output.

Example:
    >>> answers = predict("kermany_pneumonia", ["chest.png"], out="out")  # doctest: +SKIP
    >>> answers["files"][0]["decision"]  # doctest: +SKIP
    'PNEUMONIA'
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.core.install import MissingExtraError, full_install_message

__all__ = ["collect_files", "predict"]

logger = logging.getLogger("cxr_keras.predict")

NEGATIVE = "negative"  # the decision column when no label is at or above its threshold
RUNTIMES = {
    "keras": "the artifact's Keras model (TensorFlow): everything, Grad-CAM included",
    "onnx": "its ONNX export through onnxruntime, without TensorFlow: the same answers in a "
    "fraction of the start-up time; no Grad-CAM, no MC-dropout referral",
    "litert": "its LiteRT export through ai-edge-litert, without TensorFlow: as onnx",
}

# what a prior correction does to decisions, as predictions.json says it
PRIOR_FREE_NOTE = (
    "probabilities: calibrated (bias-corrected temperature scaling) and moved to the new "
    "prevalence by Bayes' rule. Decisions are unchanged: the decision rule's threshold "
    "(Youden, F1 or a sensitivity floor, chosen on validation) is a cut on the model's "
    "score whose sensitivity and specificity do not depend on the prevalence"
)
DEFAULT_RULE_NOTE = (
    "probabilities: calibrated (bias-corrected temperature scaling) and moved to the new "
    "prevalence by Bayes' rule; decisions: the most probable class at that prevalence "
    "(corrected probability >= 0.5)"
)


def collect_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[dict]]:
    """The files to predict (folders searched recursively) and the problems found on the
    way (a missing path, a non-image file in a folder), each ``{"file", "reason"}``."""
    from cxr_keras.data.sources import image_files

    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found, skipped = image_files(path)
            files += found
            problems += [{"file": Path(s[0]).name, "reason": s[2]} for s in skipped]
        elif path.is_file():
            files.append(path)
        else:
            problems.append({"file": path.name, "reason": "no such file or folder"})
    unique = list(dict.fromkeys(files))  # the same file named twice is predicted once
    return unique, problems


def _answers(artifact, manifest, answers, rule: dict, passes: int) -> list[dict]:
    """Per file: probabilities, decisions, the out-of-distribution verdict, the referral
    flag and its reasons."""
    from cxr_keras.artifact.referral import referral_reasons

    labels = artifact.labels
    std = None
    if passes >= 2:  # the Keras model's dropout: the full path only
        from cxr_keras.data.io import load_image
        from cxr_keras.explanation.uncertainty import mc_dropout

        images = np.stack([load_image(p, artifact.image_spec) for p in manifest["path"]])
        temperatures = np.asarray(artifact.temperatures, np.float64)
        std = mc_dropout(
            artifact.explain_model, images, temperatures=temperatures, passes=passes
        ).std
    results = []
    for i, path in enumerate(manifest["path"]):
        probabilities = answers.probabilities[i]
        positive = [label for j, label in enumerate(labels) if answers.decisions[i, j]]
        reasons = referral_reasons(
            labels,
            probabilities,
            thresholds=answers.thresholds,
            std=None if std is None else std[i],
            rule=rule,
            ood_reasons=answers.ood_reasons[i],
        )
        score = answers.ood_scores[i]
        entry = {
            "path": path,
            "probabilities": {label: float(probabilities[j]) for j, label in enumerate(labels)},
            "decisions": {label: bool(answers.decisions[i, j]) for j, label in enumerate(labels)},
            "decision": "|".join(positive) or NEGATIVE,
            "ood": bool(answers.ood_reasons[i]),
            "ood_score": None if np.isnan(score) else float(score),
            "ood_reasons": answers.ood_reasons[i],
            "refer": bool(reasons),
            "referral_reasons": reasons,
        }
        if std is not None:
            entry["mc_dropout_std"] = {label: float(std[i, j]) for j, label in enumerate(labels)}
        results.append(entry)
    return results


def predict(
    model,
    paths: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    gradcam: bool = False,
    mc_passes: int | None = None,
    batch_size: int = 32,
    adapt_prior: bool = False,
    prevalence: dict[str, float] | float | None = None,
    log: str | os.PathLike | None = None,
    runtime: str = "keras",
) -> dict:
    """Answers for files and folders, written under ``out`` (see the module docstring);
    returns the ``predictions.json`` content.

    ``adapt_prior``: re-estimate each label's prevalence among the in-distribution
    answers and correct probabilities and decisions to it (:mod:`cxr_keras.artifact.
    label_shift`); ``prevalence``: correct to a declared prevalence instead (one share
    for every label, or ``{label: share}``). Either writes ``prevalence.json``:
    ``{label: {"estimated": p, "ci95": [lo, hi] (None when declared), "training": p0}}``.
    ``log``: an audit-log file to append one row per answer to (created when missing).
    ``runtime``: ``keras`` (the artifact's model), ``onnx`` or ``litert`` (its ONNX or
    LiteRT export, without importing TensorFlow: :mod:`cxr_keras.serving.light_predictor`;
    no Grad-CAM and no MC-dropout referral, which need the Keras model).
    """
    if adapt_prior and prevalence is not None:
        raise ValueError("--adapt-prior estimates the prevalence; --prevalence declares it")
    from cxr_keras.artifact.audit_log import AuditLog
    from cxr_keras.artifact.predictor import Predictor, file_formats, manifest_sizes
    from cxr_keras.artifact.referral import rule_of
    from cxr_keras.artifact.store import Artifact, load_artifact
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.data.verify import verify_files

    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime: one of {list(RUNTIMES)}, got {runtime!r}")
    light = runtime != "keras"
    if light and gradcam:
        raise ValueError("--gradcam needs the Keras model's gradients: use --runtime keras")
    if light and mc_passes:
        raise ValueError("--mc-passes needs the Keras model's dropout: use --runtime keras")
    files, problems = collect_files(paths)  # before the model loads: a typo fails at once
    if not files:
        found = "; ".join(f"{p['file']}: {p['reason']}" for p in problems[:5])
        raise ValueError(
            f"nothing to predict in {', '.join(map(str, paths))}: no PNG, JPEG or DICOM file"
            + (f" ({found})" if found else "")
        )
    audit = AuditLog(log) if log is not None else None  # opened first: a bad path fails early
    if light:
        from cxr_keras.serving.light_predictor import ExportedPredictor, light_artifact

        artifact = light_artifact(model.path if isinstance(model, Artifact) else model)
        predictor = ExportedPredictor(artifact, runtime=runtime, audit_log=audit, channel="predict")
    else:
        try:
            artifact = model if isinstance(model, Artifact) else load_artifact(model)
        except ModuleNotFoundError as exc:
            message = full_install_message(exc, what="--runtime keras (the default)")
            if message is None:
                raise
            raise MissingExtraError(
                f"{message}; answers without TensorFlow: --runtime onnx or litert, on the "
                "model's export"
            ) from exc
        predictor = Predictor(artifact, audit_log=audit, channel="predict")
    labels = artifact.labels
    rule = rule_of(artifact.meta)
    passes = 0 if light else int(rule["passes"] if mc_passes is None else mc_passes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    shift = None
    manifest = new_manifest([{"path": str(f)} for f in files], labels=[])
    if len(manifest):
        manifest = verify_files(manifest, artifact.image_spec)  # header check, reasons kept
        skipped = manifest.attrs.get("skipped", [])
        problems += [{"file": Path(s[0]).name, "reason": s[2]} for s in skipped]
    results = []
    if len(manifest):
        started = time.perf_counter()
        answers, decoded = predictor.predict_manifest(manifest, batch_size)
        for path in manifest["path"][~decoded]:
            problems.append({"file": Path(path).name, "reason": "its image data cannot be decoded"})
        manifest = manifest[decoded].reset_index(drop=True)
        results = _answers(artifact, manifest, answers, rule, passes)
        if adapt_prior or prevalence is not None:  # referral stays at the stored rule
            shift = _adapt_prior(artifact, answers, declared=prevalence)
            for i, entry in enumerate(results):
                entry["probabilities_before_adaptation"] = entry["probabilities"]
                entry["probabilities"] = {
                    label: float(answers.probabilities[i, j]) for j, label in enumerate(labels)
                }
                entry["decisions"] = {
                    label: bool(answers.decisions[i, j]) for j, label in enumerate(labels)
                }
                positive = [label for label, yes in entry["decisions"].items() if yes]
                entry["decision"] = "|".join(positive) or NEGATIVE
        if audit is not None and results:  # the answers as given, each its share of the time
            predictor.record(
                answers,
                sizes=manifest_sizes(manifest),
                sources=file_formats(manifest["path"]),
                latency_s=(time.perf_counter() - started) / len(results),
                referral_reasons=[e["referral_reasons"] for e in results],
            )
    if audit is not None:
        audit.close()
    if gradcam and results:
        from cxr_keras.explanation.explain import explain

        summary = explain(artifact, [e["path"] for e in results], out=out / "gradcam", mc_passes=0)
        explained = {e["path"]: e["explained"] for e in summary["images"]}
        for entry in results:
            overlays = explained.get(entry["path"], [])
            entry["heatmaps"] = {x["label"]: x["overlay"] for x in overlays}

    table = pd.DataFrame(
        [
            {
                "path": e["path"],
                **{label: e["probabilities"][label] for label in labels},  # whole, not rounded
                "decision": e["decision"],
                "refer": e["refer"],
                "ood": e["ood"],
                "ood_score": e["ood_score"],
            }
            for e in results
        ],
        columns=["path", *labels, "decision", "refer", "ood", "ood_score"],
    )
    if shift is not None:  # the answers as the model gave them, beside the corrected ones
        for label in labels:
            table[f"{label}_before_adaptation"] = [
                e["probabilities_before_adaptation"][label] for e in results
            ]
        (out / "prevalence.json").write_text(
            json.dumps(shift["prevalence"], indent=2), encoding="utf-8"
        )
    table.to_csv(out / "predictions.csv", index=False)
    document = {
        "model": str(artifact.path),
        "labels": labels,
        "thresholds": dict(zip(labels, predictor.thresholds, strict=True)),
        "decision_rule": artifact.decision_rule,
        "referral_rule": rule,
        "ood_detector": _detector_summary(predictor),
        "prior_adaptation": None if shift is None else shift["summary"],
        "runtime": runtime,
        "mc_passes": passes if passes >= 2 else 0,
        **(
            {
                "referral_note": "the rule's MC-dropout check needs the Keras model: not applied "
                f"on the {runtime} runtime (band and out-of-distribution referral only)"
            }
            if light and int(rule["passes"]) >= 2
            else {}
        ),
        "audit_log": None if audit is None else str(audit.path),
        "files": results,
        "problems": problems,
    }
    (out / "predictions.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    for problem in problems:
        logger.warning("%s: %s", problem["file"], problem["reason"])
    return document


def _adapt_prior(artifact, answers, *, declared) -> dict:
    """Correct ``answers`` in place to the prevalence estimated among its in-distribution
    rows (``declared`` None) or declared; returns prevalence.json's content, a summary
    and the probabilities before."""
    from cxr_keras.artifact.label_shift import correct_prior

    before = answers.probabilities.copy()
    fixed = correct_prior(
        artifact,
        logits=answers.logits,
        probabilities=answers.probabilities,
        in_scope=~answers.ood,
        declared=declared,
    )
    answers.probabilities = fixed.probabilities
    rule = artifact.decision_rule
    if rule == "default":  # a cut at 0.5: the most probable class, at the new prevalence
        answers.decisions = answers.probabilities >= 0.5
    summary = {
        "method": fixed.method,
        "images": fixed.images,
        "prevalence": fixed.prevalence,
        "notes": fixed.notes,
        "note": PRIOR_FREE_NOTE if rule != "default" else DEFAULT_RULE_NOTE,
    }
    return {"prevalence": fixed.prevalence, "summary": summary, "before": before}


def _detector_summary(predictor) -> dict:
    """What predictions.json says about the out-of-distribution detector it used."""
    checks = predictor.checks.to_dict()
    if predictor.detector is None:
        return {
            "fitted": False,
            "input_checks": checks,
            "note": "no detector in this artifact: only the input checks ran; fit one with "
            "python -m cxr_keras.evaluate --model M --update-model",
        }
    return {
        "fitted": True,
        "threshold": predictor.detector.threshold,
        "quantile": predictor.detector.quantile,
        "layers": predictor.detector.layers,
        "input_checks": checks,
    }
