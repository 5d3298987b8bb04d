"""Shared command-line plumbing: the common options, logging, and quiet TensorFlow logs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from cxr_keras.artifact.label_shift import MIN_IMAGES
from cxr_keras.config import Config, load_config
from cxr_keras.core.errors import ConfigError, RunFailedError
from cxr_keras.core.install import MissingExtraError, full_install_message

__all__ = [
    "add_config_arguments",
    "add_override_argument",
    "add_prior_arguments",
    "config_from_args",
    "declared_prevalence",
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


def add_prior_arguments(parser: argparse.ArgumentParser, *, effect: str) -> None:
    """``--adapt-prior`` or ``--prevalence [LABEL=]P ...`` (one or the other): the
    prevalence where the model is used, estimated or declared; ``effect`` says what the
    command does with it. :func:`declared_prevalence` reads ``args.prevalence``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_prior_arguments(parser, effect="report it")
        >>> args = parser.parse_args(["--prevalence", "PNEUMONIA=0.6"])
        >>> args.adapt_prior, declared_prevalence(args.prevalence)
        (False, {'PNEUMONIA': 0.6})
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--adapt-prior",
        action="store_true",
        help="re-estimate each label's prevalence in these images (EM on bias-corrected "
        f"temperature scaling; at least {MIN_IMAGES} in distribution) and {effect}",
    )
    group.add_argument(
        "--prevalence",
        nargs="+",
        metavar="[LABEL=]P",
        help="a declared prevalence per label where the model is used (a bare number: "
        f"every label), and {effect}",
    )


def declared_prevalence(values: list[str] | None) -> dict[str, float] | float | None:
    """``--prevalence``: ``0.3`` (every label) or ``LABEL=0.3 ...``; None when not given.

    Example:
        >>> declared_prevalence(["PNEUMONIA=0.6"]), declared_prevalence(["0.3"])
        ({'PNEUMONIA': 0.6}, 0.3)
    """
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


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated config of the parsed arguments (overrides and run name applied)."""
    overrides = list(args.overrides)
    if getattr(args, "run_name", None):
        overrides.append(f"name={args.run_name}")
    return load_config(args.config, overrides)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI ``main``: user errors (bad config, bad data, a stage the install lacks
    the [full] extra for) print one clear line and exit 2; a run that ended without its
    result (:class:`RunFailedError`) does so with exit 1."""
    try:
        code = main(argv)
    except (ConfigError, ValueError, FileNotFoundError, RunFailedError) as exc:
        logging.getLogger("cxr_keras").debug("error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        code = 1 if isinstance(exc, RunFailedError) else 2
    except (MissingExtraError, ModuleNotFoundError) as exc:
        # a base install (e.g. only [serve]) running a stage that needs TensorFlow
        message = str(exc) if isinstance(exc, MissingExtraError) else full_install_message(exc)
        if message is None:
            raise
        logging.getLogger("cxr_keras").debug("error", exc_info=True)
        print(f"error: {message}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
