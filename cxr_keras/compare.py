"""Compare models on the same images, in one report.

    python -m cxr_keras.compare --models runs/a runs/b [--split test] [--out DIR]
        [--images 4] [--bootstrap 1000]

What it does and writes: :mod:`cxr_keras.evaluation.compare`, the stage this command line runs.
"""

from __future__ import annotations

from cxr_keras.cli import (
    command_parser,
    run_cli,
    setup_logging,
)
from cxr_keras.evaluation.compare import compare

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "compare",
        __doc__,
        examples=[
            "cxr-keras compare --models runs/resnet runs/custom_cnn --out runs/comparison",
        ],
    )
    parser.add_argument("--models", nargs="+", required=True, help="artifact folders (2 or more)")
    parser.add_argument("--split", default="test", help="the split to compare on (default test)")
    parser.add_argument("--out", help="report folder (default runs/compare/<names>)")
    parser.add_argument("--images", type=int, default=4, help="films with side-by-side Grad-CAM")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
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
