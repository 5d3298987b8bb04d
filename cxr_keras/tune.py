"""``python -m cxr_keras.tune``: hyperparameter search with KerasTuner, from the same config
as training; then ``python -m cxr_keras.train --from-tuning runs/<name>``.

    cxr-keras tune --recipe NAME|FILE [--data PATH] [--set ...]
        [--run-name NAME] [--overwrite] [--workers N]

What it does and writes: :mod:`cxr_keras.training.tune`, the stage this command line runs.
"""

from __future__ import annotations

import json
import os
import sys

from cxr_keras.cli import (
    add_config_arguments,
    command_parser,
    config_from_args,
    import_tensorflow_quietly,
    run_cli,
    setup_logging,
)
from cxr_keras.training.trial_process import die_with_parent

__all__ = ["main"]


def _without_options(argv: list[str]) -> list[str]:
    """The command line for the chief and workers: the launcher's own options removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif arg != "--overwrite" and not arg.startswith("--workers="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv[:1] == ["--run-trial"] and len(argv) == 2:  # one isolated trial (internal)
        die_with_parent()
        setup_logging(False)
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0":  # the search was not --verbose
            import_tensorflow_quietly()
        from cxr_keras.training.tune import run_trial_process

        run_trial_process(argv[1])
        return 0
    parser = command_parser(
        "tune",
        __doc__,
        examples=[
            "cxr-keras tune --recipe demo",
            "cxr-keras tune --recipe kermany_resnet50_tuned --data ~/chest_xray --workers 2",
        ],
    )
    add_config_arguments(parser, smoke=True)
    parser.add_argument("--overwrite", action="store_true", help="discard an earlier search")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="distributed: a chief and N workers on this machine",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = config_from_args(args, tensorflow=True)
    from cxr_keras.training.tune import tune, tune_distributed

    if args.workers > 0:
        result = tune_distributed(
            _without_options(argv),
            cfg,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    else:
        result = tune(cfg, overwrite=args.overwrite)
        if not result:
            return 0
    print(json.dumps({k: result[k] for k in ("hyperparameters", "objective", "trials")}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
