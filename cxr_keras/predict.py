"""Predict image files, folders and DICOMs with a model artifact.

    python -m cxr_keras.predict --model models/<name> --out DIR PATHS... [--gradcam]
        [--mc-passes N] [--batch-size 32] [--adapt-prior | --prevalence [LABEL=]P ...]

What it does and writes: :mod:`cxr_keras.serving.predict`, the stage this command line runs.
"""

from __future__ import annotations

import argparse

from cxr_keras.artifact.label_shift import MIN_IMAGES
from cxr_keras.cli import (
    run_cli,
    setup_logging,
)
from cxr_keras.serving.predict import predict

__all__ = ["main"]


def _declared(values: list[str] | None) -> dict[str, float] | float | None:
    """``--prevalence``: ``0.3`` (every label) or ``LABEL=0.3 ...``."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _share(values[0])
    declared = {}
    for value in values:
        label, sep, share = value.partition("=")
        if not sep:
            raise ValueError(f"--prevalence {value!r}: LABEL=P for each label, or one P")
        declared[label] = _share(share)
    return declared


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--prevalence: a share in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise ValueError(f"--prevalence: a share in (0, 1), got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="an artifact folder (models/<name>)")
    parser.add_argument("--out", required=True, help="folder for predictions.csv/.json")
    parser.add_argument("paths", nargs="+", help="image files, DICOMs or folders")
    parser.add_argument("--gradcam", action="store_true", help="also write Grad-CAM overlays")
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes (0: off)")
    parser.add_argument("--batch-size", type=int, default=32)
    shift = parser.add_mutually_exclusive_group()
    shift.add_argument(
        "--adapt-prior",
        action="store_true",
        help="re-estimate each label's prevalence in these images (EM; at least "
        f"{MIN_IMAGES} in distribution), correct probabilities and decisions, write "
        "prevalence.json",
    )
    shift.add_argument(
        "--prevalence",
        nargs="+",
        metavar="[LABEL=]P",
        help="a declared prevalence per label where the model is used (a bare number: "
        "every label); probabilities and decisions are corrected to it",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    document = predict(
        args.model,
        args.paths,
        out=args.out,
        gradcam=args.gradcam,
        mc_passes=args.mc_passes,
        batch_size=args.batch_size,
        adapt_prior=args.adapt_prior,
        prevalence=_declared(args.prevalence),
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
