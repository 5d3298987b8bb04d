"""Run a published pipeline end to end from its recipe file.

    python -m cxr_keras.recipe --config tuner_configs/<recipe>.yaml [--smoke]
        [--set KEY=VALUE ...] [--run-name NAME] [--overwrite]

What it does and writes: :mod:`cxr_keras.workflow.recipe`, the stage this command line runs.
"""

from __future__ import annotations

import argparse
import json

from cxr_keras.cli import (
    add_config_arguments,
    run_cli,
    setup_logging,
)
from cxr_keras.workflow.recipe import run_recipe

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.recipe", description=__doc__.split("\n\n")[0]
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the recipe's quick settings on the bundled sample in the dataset's layout",
    )
    parser.add_argument("--overwrite", action="store_true", help="search and train afresh")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    overrides = [*args.overrides, *([f"name={args.run_name}"] if args.run_name else [])]
    run = run_recipe(args.config, overrides=overrides, smoke=args.smoke, overwrite=args.overwrite)
    print(json.dumps({"report": run["report"], "seconds": run["seconds"]}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
