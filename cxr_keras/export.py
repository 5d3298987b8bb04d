"""Export an artifact for deployment with Keras' own ``model.export``.

    python -m cxr_keras.export --model runs/<name> --format tf_saved_model|onnx|litert
        [--out DIR] [--check N]

What it does and writes: :mod:`cxr_keras.serving.export`, the stage this command line runs.
"""

from __future__ import annotations

import json
import sys

from cxr_keras.cli import (
    command_parser,
    run_cli,
    setup_logging,
)
from cxr_keras.serving.export import FORMATS, SIDECAR, ExportError, export_model

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "export",
        __doc__,
        examples=[
            "cxr-keras export --model runs/demo --format onnx",
            "cxr-keras export --model runs/demo --format litert --out deploy/",
        ],
    )
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument(
        "--format", required=True, choices=sorted(FORMATS), help="the exported format"
    )
    parser.add_argument("--out", help="output folder (default <artifact>/export/<format>)")
    parser.add_argument("--check", type=int, default=8, help="real films to compare (0: none)")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    try:
        target = export_model(args.model, args.format, out=args.out, check=args.check)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sidecar = json.loads((target.parent / SIDECAR).read_text(encoding="utf-8"))
    print(json.dumps({"exported": str(target), "check": sidecar.get("check")}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
