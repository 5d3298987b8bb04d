"""Explain a model's answers: Grad-CAM overlays, uncertainty and referral flags.

    python -m cxr_keras.explain --model runs/<name> IMAGES... [--label L]
        [--layers a,b] [--method gradcam|gradcam++] [--mc-passes 20] [--out DIR]

What it does and writes: :mod:`cxr_keras.explanation.explain`, the stage this command line runs.
"""

from __future__ import annotations

import json

from cxr_keras.cli import (
    command_parser,
    run_cli,
    setup_logging,
)
from cxr_keras.explanation.explain import explain

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "explain",
        __doc__,
        examples=[
            "cxr-keras explain --model kermany_pneumonia chest.png study.dcm",
            "cxr-keras explain --model runs/demo --checks --out runs/demo/explain",
        ],
    )
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument("images", nargs="+", help="image or DICOM files")
    parser.add_argument("--label", action="append", help="a label to explain (repeatable)")
    parser.add_argument("--layers", help="comma-separated target layers (default: the last conv)")
    parser.add_argument(
        "--method",
        default="gradcam",
        choices=["gradcam", "gradcam++"],
        help="the heatmap method",
    )
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes (0: off)")
    parser.add_argument("--out", help="output folder (default runs/<name>/explain)")
    parser.add_argument("--boxes", help="a CSV of boxes (NIH bbox.csv layout) to score against")
    parser.add_argument(
        "--checks", action="store_true", help="randomisation check and deletion/insertion"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    summary = explain(
        args.model,
        args.images,
        labels=args.label,
        layers=args.layers.split(",") if args.layers else None,
        method=args.method,
        out=args.out,
        mc_passes=args.mc_passes,
        boxes=args.boxes,
        checks=args.checks,
    )
    for entry in summary["images"]:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in entry["probabilities"].items())
        flag = "  REFER" if entry["refer"] else ""
        print(f"{entry['path']}: {probs}{flag}")
    for entry in summary["skipped"]:
        print(f"{entry['path']}: skipped ({entry['reason']})")
    for key in ("localisation", "faithfulness", "randomization_check"):
        if key in summary:
            print(f"{key}: {json.dumps(summary[key])}")
    return 0 if summary["images"] else 1


if __name__ == "__main__":
    run_cli(main)
