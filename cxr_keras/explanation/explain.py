"""Explain a model's answers: Grad-CAM overlays, uncertainty and referral flags
(``python -m cxr_keras.explain``).

For each image: the probabilities and decisions (temperature and thresholds from the
artifact), the out-of-distribution verdict with its reasons (see
:mod:`cxr_keras.artifact.ood`; a flagged image is referred and its overlay's title says
so), Monte Carlo dropout statistics and the referral flag (rule stored in the
artifact), and for each explained label (default: every label at or above its threshold,
else the most probable one) a PNG with the X-ray and one Grad-CAM overlay per target layer
at the original image size, plus the raw maps as ``.npy``. A file that cannot be read is
skipped with its reason and counted; ``summary.json`` lists everything. Output goes to
``runs/<name>/explain/`` unless ``--out``.

Example:
    >>> summary = explain("runs/demo", ["chest.png"])  # doctest: +SKIP
    >>> summary["images"][0]["explained"][0]["overlay"]  # doctest: +SKIP
    'runs/demo/explain/chest_PNEUMONIA.png'
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["explain"]

log = logging.getLogger("cxr_keras.explain")


def _safe_stem(path: Path, taken: set[str]) -> str:
    """A file-name stem for outputs, unique within the run."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem) or "image"
    candidate, k = stem, 2
    while candidate in taken:
        candidate, k = f"{stem}_{k}", k + 1
    taken.add(candidate)
    return candidate


POINTING_TOLERANCE = 15  # px, as in the pointing game of Zhang et al. 2018


def _read_boxes(path, labels: Sequence[str]) -> dict[str, list[dict]]:
    """Boxes by image file name, for findings the model predicts."""
    import pandas as pd

    from cxr_keras.data.labels import canonical_label

    table = pd.read_csv(path)
    key = "path" if "path" in table.columns else "image_index"
    missing = {key, "finding", "x", "y", "w", "h"} - set(table.columns)
    if missing:
        raise ValueError(f"--boxes {path}: missing columns {sorted(missing)}")
    out: dict[str, list[dict]] = {}
    for row in table.itertuples(index=False):
        finding = canonical_label(row.finding)
        if finding in labels:
            box = {"finding": finding, **{k: float(getattr(row, k)) for k in "xywh"}}
            out.setdefault(Path(str(getattr(row, key))).name, []).append(box)
    return out


def _box(b: dict) -> tuple[float, float, float, float]:
    return b["x"], b["y"], b["w"], b["h"]


def _aggregate(images: list[dict]) -> dict:
    """Averages over the explained images: localisation and faithfulness."""
    out = {}
    scored = [box for e in images for x in e["explained"] for box in x.get("boxes", [])]
    if scored:
        out["localisation"] = {
            "boxes": len(scored),
            "pointing_game_hit_rate": float(np.mean([b["pointing_game"] for b in scored])),
            "mean_iou": float(np.mean([b["iou"] for b in scored])),
            "tolerance_px": POINTING_TOLERANCE,
            "iou_threshold": "0.5 of the map's maximum",
        }
    curves = [x["faithfulness"] for e in images for x in e["explained"] if "faithfulness" in x]
    if curves:
        out["faithfulness"] = {
            "maps": len(curves),
            "mean_deletion_auc": float(np.mean([c["deletion_auc"] for c in curves])),
            "mean_insertion_auc": float(np.mean([c["insertion_auc"] for c in curves])),
        }
    return out


def explain(
    model,
    images: Sequence[str | os.PathLike],
    *,
    labels: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    method: str = "gradcam",
    out: str | os.PathLike | None = None,
    mc_passes: int | None = None,
    batch_size: int = 16,
    boxes: str | os.PathLike | None = None,
    checks: bool = False,
) -> dict:
    """Explain image files with an artifact (or its folder); returns ``summary.json``.

    ``boxes``: a CSV of ground-truth boxes (``path`` or ``image_index``, ``finding``, ``x``,
    ``y``, ``w``, ``h`` in pixels of the image file, as the NIH ``bbox.csv``): the boxed
    finding is explained for its image and scored by the pointing game and IoU.
    ``checks``: also run the model-randomisation check and deletion/insertion curves.
    """
    from cxr_keras.artifact.predictor import Predictor, file_facts
    from cxr_keras.artifact.referral import refer, rule_of
    from cxr_keras.artifact.store import Artifact, load_artifact
    from cxr_keras.data.io import ImageDecodeError, load_image, read_film
    from cxr_keras.explanation.gradcam import GradCam, default_layer
    from cxr_keras.explanation.overlays import save_overlay, to_original
    from cxr_keras.explanation.saliency_checks import (
        box_iou,
        deletion_insertion,
        pointing_game,
        randomization_check,
    )
    from cxr_keras.explanation.uncertainty import mc_dropout

    artifact = model if isinstance(model, Artifact) else load_artifact(model)
    predictor = Predictor(artifact)
    names = artifact.labels
    labels = [labels] if isinstance(labels, str) else labels
    for label in labels or []:
        if label not in names:
            raise ValueError(f"--label {label!r}: the model predicts {names}")
    network = artifact.explain_model  # without test-time views: maps of the image
    layers = list(layers) if layers else [default_layer(network, artifact.meta)]
    explainer = GradCam(network, layers, method)
    rule = rule_of(artifact.meta)
    passes = int(mc_passes if mc_passes is not None else rule["passes"])
    out = Path(out) if out else Path("runs") / artifact.path.resolve().name / "explain"
    out.mkdir(parents=True, exist_ok=True)

    box_table = _read_boxes(boxes, names) if boxes else {}
    loaded, skipped = [], []
    for path in map(Path, images):
        try:
            loaded.append((path, load_image(path, artifact.image_spec)))
        except (ImageDecodeError, OSError) as exc:
            log.warning("skipped %s: %s", path, exc)
            skipped.append({"path": str(path), "reason": str(exc)})
    summary = {
        "model": str(artifact.path),
        "method": method,
        "layers": layers,
        "mc_passes": passes,
        "referral_rule": {k: rule[k] for k in ("band", "max_std")},
        "images": [],
        "skipped": skipped,
    }
    taken: set[str] = set()
    indices = list(range(len(names)))
    for start in range(0, len(loaded), batch_size):
        chunk = loaded[start : start + batch_size]
        x = np.stack([image for _, image in chunk])
        _, maps = explainer(x, indices)
        colour, aspect = file_facts([path for path, _ in chunk])
        # the answer: test-time views averaged, the detector's features from the same pass
        answers = predictor.answer(predictor.outputs(x), colour=colour, aspect=aspect)
        mc = (
            mc_dropout(network, x, temperatures=predictor.temperatures, passes=passes)
            if passes > 1
            else None
        )
        flags = refer(
            answers.probabilities, answers.thresholds, std=None if mc is None else mc.std, rule=rule
        )
        for i, (path, _) in enumerate(chunk):
            probs = answers.probabilities[i]
            chosen = (
                list(labels)
                if labels
                else [n for j, n in enumerate(names) if answers.decisions[i, j]]
                or [names[int(np.argmax(probs))]]
            )
            image_boxes = box_table.get(path.name, [])
            chosen += [b["finding"] for b in image_boxes if b["finding"] not in chosen]
            stem = _safe_stem(path, taken)
            original, (top, left) = read_film(path, artifact.image_spec)
            if top or left:  # boxes are in the file's pixels; the film lost a frame
                image_boxes = [{**b, "x": b["x"] - left, "y": b["y"] - top} for b in image_boxes]
            ood_score = float(answers.ood_scores[i])
            entry = {
                "path": str(path),
                "probabilities": dict(zip(names, map(float, probs), strict=True)),
                "decisions": dict(zip(names, map(bool, answers.decisions[i]), strict=True)),
                "ood": bool(answers.ood_reasons[i]),
                "ood_score": None if np.isnan(ood_score) else ood_score,
                "ood_reasons": answers.ood_reasons[i],
                "refer": bool(flags[i].any()) or bool(answers.ood_reasons[i]),
                "refer_labels": [n for j, n in enumerate(names) if flags[i, j]],
                "explained": [],
            }
            if mc is not None:
                entry["mc_dropout"] = {
                    n: {
                        "mean": float(mc.mean[i, j]),
                        "std": float(mc.std[i, j]),
                        "entropy": float(mc.entropy[i, j]),
                    }
                    for j, n in enumerate(names)
                }
            for name in chosen:
                j = names.index(name)
                full = [
                    to_original(
                        maps[layer][i, j],
                        artifact.image_spec,
                        height=original.shape[0],
                        width=original.shape[1],
                    )
                    for layer in layers
                ]
                decided = "positive" if answers.decisions[i, j] else "below threshold"
                title = (
                    f"{name}: p = {probs[j]:.3f} ({decided}, threshold {answers.thresholds[j]:.3f})"
                )
                if entry["ood"]:
                    title += "; OUT OF DISTRIBUTION: unlike the training films, refer"
                elif entry["refer"]:
                    title += "; refer to a radiologist"
                png = save_overlay(
                    original,
                    full,
                    titles=[f"{method} @ {layer}" for layer in layers],
                    path=out / f"{stem}_{name}.png",
                    suptitle=title,
                )
                arrays = {}
                for layer, heat in zip(layers, full, strict=True):
                    target = out / f"{stem}_{name}_{layer}.npy"
                    np.save(target, heat.astype(np.float16))
                    arrays[layer] = str(target)
                explained = {"label": name, "overlay": png, "heatmaps": arrays}
                explained["boxes"] = [
                    {
                        "box": [b["x"], b["y"], b["w"], b["h"]],
                        "pointing_game": pointing_game(full[-1], _box(b), POINTING_TOLERANCE),
                        "iou": box_iou(full[-1], _box(b)),
                    }
                    for b in image_boxes
                    if b["finding"] == name
                ]
                if checks:
                    explained["faithfulness"] = deletion_insertion(
                        lambda images: predictor.predict(images).probabilities,
                        x[i],
                        maps[layers[-1]][i, j],
                        label_index=j,
                    )
                entry["explained"].append(explained)
            summary["images"].append(entry)
        if checks and start == 0:  # the randomisation check, on the first batch
            explained = [names.index(e["explained"][0]["label"]) for e in summary["images"]]
            target = max(set(explained), key=explained.count)
            summary["randomization_check"] = {
                "label": names[target],
                "layer": layers[-1],
                "images": len(chunk),
                "stages": randomization_check(
                    network, x, layer=layers[-1], label_index=target, method=method
                ),
            }
    summary.update(_aggregate(summary["images"]))
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("explained %d images (%d skipped) into %s", len(summary["images"]), len(skipped), out)
    return summary
