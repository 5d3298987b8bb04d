"""The model card: ``MODEL_CARD.md`` beside an artifact, written from its ``cxr_model.json``.

What it does and writes: :mod:`cxr_keras.artifact.model_card`, the stage this command line runs.
"""

from __future__ import annotations

from cxr_keras.artifact.model_card import write_model_card
from cxr_keras.cli import (
    command_parser,
    run_cli,
    setup_logging,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from cxr_keras.artifact.store import load_artifact

    parser = command_parser(
        "model-card",
        __doc__,
        examples=[
            "cxr-keras model-card --model runs/demo",
        ],
    )
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    print(write_model_card(load_artifact(args.model)))
    return 0


if __name__ == "__main__":
    run_cli(main)
