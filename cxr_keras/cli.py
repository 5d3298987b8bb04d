"""Shared command-line plumbing: the common options, logging, and quiet TensorFlow logs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cxr_keras import __version__
from cxr_keras.artifact.label_shift import MIN_IMAGES
from cxr_keras.config import Config, load_config
from cxr_keras.core.errors import ConfigError, RunFailedError
from cxr_keras.core.install import MissingExtraError, full_install_message
from cxr_keras.core.paths import SAMPLE_PREFIX
from cxr_keras.recipes import find_recipe, recipe_names

__all__ = [
    "DefaultsHelpFormatter",
    "add_config_arguments",
    "add_override_argument",
    "add_prior_arguments",
    "command_parser",
    "config_from_args",
    "config_overrides",
    "config_path",
    "declared_prevalence",
    "import_tensorflow_quietly",
    "run_cli",
    "setup_logging",
]


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each option's default where it has a real one (not None, False or
    an empty list), and the description and examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default in (None, False, argparse.SUPPRESS)
            or (isinstance(default, list | tuple) and not default)
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


def _plain(text: str) -> str:
    """A docstring paragraph without reST markup: ``code`` -> code, :mod:`x` -> x."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def command_parser(
    stage: str, doc: str | None, *, examples: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The parser of ``cxr-keras <stage>`` (also ``python -m cxr_keras.<stage>``): its
    description is the module docstring's first paragraph, its epilog the examples; it
    shows defaults and answers ``--version``.

    Example:
        >>> parser = command_parser("predict", "Predict films.", examples=["cxr-keras predict"])
        >>> parser.prog, parser.epilog.splitlines()[0]
        ('cxr-keras predict', 'examples:')
    """
    description = _plain((doc or "").split("\n\n")[0].strip())
    # "python -m cxr_keras.train: train a model" -> "Train a model": the usage line names it
    description = re.sub(r"^python -m cxr_keras\.\w+(?: \w+)?: ", "", description)
    description = description[:1].upper() + description[1:]
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    parser = argparse.ArgumentParser(
        prog=f"cxr-keras {stage}",
        description=description,
        epilog=epilog,
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cxr-keras {__version__}")
    return parser


def setup_logging(verbose: bool = False, *, tensorflow: bool = False) -> None:
    """Log to stderr with times. TensorFlow's C++ start-up lines (oneDNN, CPU instructions,
    and on a machine without a GPU "failed call to cuInit: CUDA error") are hidden unless
    ``verbose``: they are not errors of the run. ``tensorflow``: the command needs it, so
    import it now, quietly (:func:`import_tensorflow_quietly`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if tensorflow and not verbose:
        import_tensorflow_quietly()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and let it look for devices with the process's stderr pointed at
    /dev/null. ``TF_CPP_MIN_LOG_LEVEL`` does not reach what TensorFlow writes before its
    logging starts ("All log messages before absl::InitializeLog() is called are written
    to STDERR", the oneDNN and CUDA lines), so the file descriptor is silenced instead.
    Python exceptions are unaffected; a missing TensorFlow is left to the stage, which
    says what to install."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    except ImportError:
        pass
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def add_config_arguments(
    parser: argparse.ArgumentParser, required: bool = True, *, smoke: bool = False
) -> None:
    """``--recipe NAME`` or ``--config FILE`` (the same option: a shipped recipe's name or
    any config file), ``--data PATH...`` (the dataset's folder: ``data.root``), ``--set
    KEY=VALUE`` (repeatable), ``--run-name``, ``--verbose``; with ``smoke``, ``--smoke``."""
    parser.add_argument(
        "--recipe",
        "--config",
        dest="config",
        metavar="RECIPE",
        required=required,
        help=f"a shipped recipe ({', '.join(recipe_names())}; "
        "a unique beginning is enough) or a YAML config file",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="the dataset's folder or label file (sets data.root; several folders: one dataset)",
    )
    add_override_argument(parser)
    parser.add_argument("--run-name", help="name of the run folder under runs/ (default: name)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    if smoke:
        parser.add_argument(
            "--smoke",
            action="store_true",
            help="the recipe's smoke settings (recipe.smoke: tiny and fast, on the bundled "
            "sample where the recipe names a layout) under <name>_smoke: checks an install",
        )


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


def config_from_args(args: argparse.Namespace, *, tensorflow: bool = False) -> Config:
    """The validated config of the parsed arguments (recipe found, data root, overrides
    and run name applied; ``--smoke``: the recipe's smoke settings). ``tensorflow``: the
    command needs it, so import it quietly next, once the config has been read (a typo in
    it fails at once)."""
    if getattr(args, "smoke", False):
        from cxr_keras.workflow.recipe import recipe_config

        cfg = recipe_config(config_path(args), config_overrides(args), smoke=True)
    else:
        cfg = load_config(config_path(args), config_overrides(args))
    if tensorflow and not getattr(args, "verbose", False):
        import_tensorflow_quietly()
    return cfg


def config_path(args: argparse.Namespace) -> Path:
    """The config file of ``--recipe``/``--config``: a file as given, else a shipped recipe."""
    return find_recipe(args.config)


def config_overrides(args: argparse.Namespace) -> list[str]:
    """``--data`` (as ``data.root``, relative to the working directory), then ``--set``
    overrides, then ``--run-name``."""
    overrides = []
    if getattr(args, "data", None):
        roots = [_from_here(path) for path in args.data]
        value = roots[0] if len(roots) == 1 else roots
        overrides.append("data.root=" + json.dumps(value))  # JSON is YAML: any path stays text
    overrides += list(args.overrides)
    if getattr(args, "run_name", None):
        overrides.append(f"name={args.run_name}")
    return overrides


def _from_here(path: str) -> str:
    """A path typed on the command line, made absolute (``sample:`` and URLs as given)."""
    if path.startswith(SAMPLE_PREFIX) or "://" in path:
        return path
    return str(Path(os.path.expanduser(path)).absolute())


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
    except (FileExistsError, NotADirectoryError) as exc:  # e.g. --out names a file
        logging.getLogger("cxr_keras").debug("error", exc_info=True)
        print(f"error: {exc.filename}: a file where a folder is expected", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
