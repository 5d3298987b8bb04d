"""Run a published pipeline end to end from its recipe file.

    cxr-keras recipe --recipe NAME|FILE [--data PATH] [--smoke]
        [--set KEY=VALUE ...] [--run-name NAME] [--overwrite]

What it does and writes: :mod:`cxr_keras.workflow.recipe`, the stage this command line runs.
"""

from __future__ import annotations

import json

from cxr_keras.cli import (
    add_config_arguments,
    command_parser,
    config_overrides,
    config_path,
    run_cli,
    setup_logging,
)
from cxr_keras.workflow.recipe import run_recipe

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "recipe",
        __doc__,
        examples=[
            "cxr-keras recipe --recipe kermany_resnet50_tuned --data ~/chest_xray",
            "cxr-keras recipe --recipe nih14_resnet50_lse --smoke",
        ],
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the recipe's quick settings on the bundled sample in the dataset's layout",
    )
    parser.add_argument("--overwrite", action="store_true", help="search and train afresh")
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    run = run_recipe(
        config_path(args),
        overrides=config_overrides(args),
        smoke=args.smoke,
        overwrite=args.overwrite,
    )
    print(json.dumps({"report": run["report"], "seconds": run["seconds"]}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
