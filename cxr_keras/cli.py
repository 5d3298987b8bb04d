"""Shared command-line plumbing: the common options, logging, and quiet TensorFlow logs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from cxr_keras.config import Config, load_config
from cxr_keras.core.errors import ConfigError, RunFailedError

__all__ = [
    "add_config_arguments",
    "add_override_argument",
    "config_from_args",
    "run_cli",
    "setup_logging",
]


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr with times; hide TensorFlow's C++ info/warning chatter unless verbose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--config FILE``, ``--set KEY=VALUE`` (repeatable), ``--run-name``, ``--verbose``."""
    parser.add_argument(
        "--config", required=required, help="YAML recipe, e.g. tuner_configs/demo.yaml"
    )
    add_override_argument(parser)
    parser.add_argument("--run-name", help="name of the run folder under runs/ (default: name)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def add_override_argument(
    parser: argparse.ArgumentParser, help: str = "override a config value, e.g. data.batch_size=16"
) -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated config of the parsed arguments (overrides and run name applied)."""
    overrides = list(args.overrides)
    if getattr(args, "run_name", None):
        overrides.append(f"name={args.run_name}")
    return load_config(args.config, overrides)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI ``main``: user errors (bad config, bad data) print one clear line and exit
    2; a run that ended without its result (:class:`RunFailedError`) does so with exit 1."""
    try:
        code = main(argv)
    except (ConfigError, ValueError, FileNotFoundError, RunFailedError) as exc:
        logging.getLogger("cxr_keras").debug("error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        code = 1 if isinstance(exc, RunFailedError) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
