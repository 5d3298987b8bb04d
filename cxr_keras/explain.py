"""Explain a model's answers: Grad-CAM overlays, uncertainty and referral flags.

    python -m cxr_keras.explain --model runs/<name> IMAGES... [--label L]
        [--layers a,b] [--method gradcam|gradcam++] [--mc-passes 20] [--out DIR]

For each image: the probabilities and decisions (temperature and thresholds from the
artifact), Monte Carlo dropout statistics and the referral flag (rule stored in the
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

import argparse
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxr_keras.cli import run_cli, setup_logging

__all__ = ["explain", "main"]

log = logging.getLogger("cxr_keras.explain")


def _safe_stem(path: Path, taken: set[str]) -> str:
    """A file-name stem for outputs, unique within the run."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem) or "image"
    candidate, k = stem, 2
    while candidate in taken:
        candidate, k = f"{stem}_{k}", k + 1
    taken.add(candidate)
    return candidate


def explain(
    model,
    images: Sequence[str | os.PathLike],
    labels: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    method: str = "gradcam",
    out: str | os.PathLike | None = None,
    mc_passes: int | None = None,
    batch_size: int = 16,
) -> dict:
    """Explain image files with an artifact (or its folder); returns ``summary.json``."""
    from cxr_keras.artifact import Artifact, load_artifact
    from cxr_keras.data.io import ImageDecodeError, load_image, read_image
    from cxr_keras.gradcam import GradCam, default_layer
    from cxr_keras.overlays import save_overlay, to_original
    from cxr_keras.predictor import Predictor
    from cxr_keras.uncertainty import mc_dropout, refer, rule_of

    artifact = model if isinstance(model, Artifact) else load_artifact(model)
    predictor = Predictor(artifact)
    names = artifact.labels
    for label in labels or []:
        if label not in names:
            raise ValueError(f"--label {label!r}: the model predicts {names}")
    layers = list(layers) if layers else [default_layer(artifact.model, artifact.meta)]
    explainer = GradCam(artifact.model, layers, method)
    rule = rule_of(artifact.meta)
    passes = int(mc_passes if mc_passes is not None else rule["passes"])
    out = Path(out) if out else Path("runs") / artifact.path.resolve().name / "explain"
    out.mkdir(parents=True, exist_ok=True)

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
        logits, maps = explainer(x, indices)  # answers and maps from one forward pass
        answers = predictor.from_logits(logits)
        mc = mc_dropout(artifact.model, x, predictor.temperatures, passes) if passes > 1 else None
        flags = refer(
            answers.probabilities, answers.thresholds, None if mc is None else mc.std, rule
        )
        for i, (path, _) in enumerate(chunk):
            probs = answers.probabilities[i]
            chosen = (
                list(labels)
                if labels
                else [n for j, n in enumerate(names) if answers.decisions[i, j]]
                or [names[int(np.argmax(probs))]]
            )
            stem = _safe_stem(path, taken)
            original = read_image(path, artifact.image_spec)
            entry = {
                "path": str(path),
                "probabilities": dict(zip(names, map(float, probs), strict=True)),
                "decisions": dict(zip(names, map(bool, answers.decisions[i]), strict=True)),
                "refer": bool(flags[i].any()),
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
                    to_original(maps[layer][i, j], artifact.image_spec, *original.shape[:2])
                    for layer in layers
                ]
                decided = "positive" if answers.decisions[i, j] else "below threshold"
                title = (
                    f"{name}: p = {probs[j]:.3f} ({decided}, threshold {answers.thresholds[j]:.3f})"
                )
                if entry["refer"]:
                    title += "; refer to a radiologist"
                png = save_overlay(
                    original,
                    full,
                    [f"{method} @ {layer}" for layer in layers],
                    out / f"{stem}_{name}.png",
                    title,
                )
                arrays = {}
                for layer, heat in zip(layers, full, strict=True):
                    target = out / f"{stem}_{name}_{layer}.npy"
                    np.save(target, heat.astype(np.float16))
                    arrays[layer] = str(target)
                entry["explained"].append({"label": name, "overlay": png, "heatmaps": arrays})
            summary["images"].append(entry)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("explained %d images (%d skipped) into %s", len(summary["images"]), len(skipped), out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.explain", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument("images", nargs="+", help="image or DICOM files")
    parser.add_argument("--label", action="append", help="a label to explain (repeatable)")
    parser.add_argument("--layers", help="comma-separated target layers (default: the last conv)")
    parser.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes (0: off)")
    parser.add_argument("--out", help="output folder (default runs/<name>/explain)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    summary = explain(
        args.model,
        args.images,
        args.label,
        args.layers.split(",") if args.layers else None,
        args.method,
        args.out,
        args.mc_passes,
    )
    for entry in summary["images"]:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in entry["probabilities"].items())
        flag = "  REFER" if entry["refer"] else ""
        print(f"{entry['path']}: {probs}{flag}")
    for entry in summary["skipped"]:
        print(f"{entry['path']}: skipped ({entry['reason']})")
    return 0 if summary["images"] else 1


if __name__ == "__main__":
    run_cli(main)
