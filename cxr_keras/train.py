"""``python -m cxr_keras.train``: train a classifier from one config and export its artifact.

    cxr-keras train --recipe NAME|FILE [--data PATH] [--set training.epochs=5]
        [--run-name NAME] [--overwrite] [--export models/NAME]

What it does and writes: :mod:`cxr_keras.training.train`, the stage this command line runs.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys

from cxr_keras.cli import (
    add_config_arguments,
    command_parser,
    config_from_args,
    run_cli,
    setup_logging,
)
from cxr_keras.config import with_values

__all__ = ["main"]

log = logging.getLogger("cxr_keras.train")


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "train",
        __doc__,
        examples=[
            "cxr-keras train --recipe demo",
            "cxr-keras train --config my_run.yaml --set training.epochs=5 --run-name quick",
            "cxr-keras train --recipe demo --from-tuning runs/demo",
        ],
    )
    add_config_arguments(parser, smoke=True)
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run")
    parser.add_argument(
        "--export", metavar="DIR", help="also copy the artifact there, e.g. models/<name>"
    )
    tuned = parser.add_mutually_exclusive_group()
    tuned.add_argument(
        "--hparams", metavar="FILE", help="a best_hparams.json whose values override the config"
    )
    tuned.add_argument(
        "--from-tuning",
        metavar="RUN_DIR",
        help="a tuning run (runs/<name>) whose best values override the config",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = config_from_args(args, tensorflow=True)
    if args.hparams or args.from_tuning:
        from cxr_keras.training.tune import load_best_hparams

        values = load_best_hparams(args.hparams or args.from_tuning)
        cfg = with_values(cfg, values)
        log.info("hyperparameters from tuning: %s", values)
    from cxr_keras.training.train import train

    command = shlex.join(["python", "-m", "cxr_keras.train", *(argv or sys.argv[1:])])
    artifact = train(cfg, overwrite=args.overwrite, export_to=args.export, command=command)
    metrics = artifact.meta["metrics"]["validation"]
    print(json.dumps({"artifact": str(artifact.path), "validation": metrics}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
