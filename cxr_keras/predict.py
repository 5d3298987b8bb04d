"""Predict image files, folders and DICOMs with a model artifact.

    python -m cxr_keras.predict --model models/<name> --out DIR PATHS... [--gradcam]
        [--mc-passes N] [--batch-size 32] [--adapt-prior | --prevalence [LABEL=]P ...]
        [--log AUDIT.db] [--runtime {keras,onnx,litert}]

What it does and writes: :mod:`cxr_keras.serving.predict`, the stage this command line runs.
"""

from __future__ import annotations

from cxr_keras.cli import (
    add_prior_arguments,
    command_parser,
    declared_prevalence,
    run_cli,
    setup_logging,
)
from cxr_keras.serving.predict import RUNTIMES, predict

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "predict",
        __doc__,
        examples=[
            "cxr-keras predict --model kermany_pneumonia --out answers/ scans/",
            "cxr-keras predict --model runs/demo --out answers/ --gradcam chest.dcm",
            "cxr-keras predict --model kermany_pneumonia --out answers/ --runtime onnx scans/",
        ],
    )
    parser.add_argument("--model", required=True, help="an artifact folder (models/<name>)")
    parser.add_argument("--out", required=True, help="folder for predictions.csv/.json")
    parser.add_argument("paths", nargs="+", help="image files, DICOMs or folders")
    parser.add_argument(
        "--gradcam",
        action="store_true",
        help="also write Grad-CAM overlays (the keras runtime only)",
    )
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes (0: off)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument(
        "--runtime",
        choices=list(RUNTIMES),
        default="keras",
        help="; ".join(f"{name}: {text}" for name, text in RUNTIMES.items())
        + " (export the model first: python -m cxr_keras.export --format onnx|litert)",
    )
    parser.add_argument(
        "--log",
        metavar="AUDIT_DB",
        help="append every answer to this audit log (SQLite; no file names, no DICOM tags)",
    )
    add_prior_arguments(
        parser, effect="correct probabilities and decisions to it (writes prevalence.json)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=args.runtime == "keras")
    document = predict(
        args.model,
        args.paths,
        out=args.out,
        gradcam=args.gradcam,
        mc_passes=args.mc_passes,
        batch_size=args.batch_size,
        adapt_prior=args.adapt_prior,
        prevalence=declared_prevalence(args.prevalence),
        log=args.log,
        runtime=args.runtime,
    )
    for entry in document["files"]:
        probabilities = ", ".join(f"{k} {v:.3f}" for k, v in entry["probabilities"].items())
        flag = "  REFER" if entry["refer"] else ""
        if entry["ood"]:  # said first: the answer is not to be trusted
            flag = "  OUT OF DISTRIBUTION (" + "; ".join(entry["ood_reasons"]) + ")" + flag
        print(f"{entry['path']}: {entry['decision']} ({probabilities}){flag}")
    flagged = sum(entry["ood"] for entry in document["files"])
    print(
        f"{len(document['files'])} predicted ({flagged} out of distribution), "
        f"{len(document['problems'])} not usable; written to {args.out}"
    )
    return 0 if document["files"] else 1


if __name__ == "__main__":
    run_cli(main)
