"""Compare models on the same images, in one report.

    python -m cxr_keras.compare --models runs/a runs/b [--split test] [--out DIR]
        [--images 4] [--bootstrap 1000]

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

import argparse

from cxr_keras.cli import (
    run_cli,
    setup_logging,
)
from cxr_keras.evaluation.compare import compare

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--models", nargs="+", required=True, help="artifact folders (2 or more)")
    parser.add_argument("--split", default="test", help="the split to compare on (default test)")
    parser.add_argument("--out", help="report folder (default runs/compare/<names>)")
    parser.add_argument("--images", type=int, default=4, help="films with side-by-side Grad-CAM")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    result = compare(
        args.models,
        split=args.split,
        out=args.out,
        images=args.images,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    print(f"report: {result['report']}/report.md")
    return 0


if __name__ == "__main__":
    run_cli(main)
