"""``cxr-keras <command> ...`` (also ``python -m cxr_keras``): every stage's command line
under one command. ``cxr-keras <command> --help`` shows a command's options and examples.

Example:
    >>> from contextlib import redirect_stdout
    >>> import io
    >>> with redirect_stdout(io.StringIO()) as out:
    ...     code = main(["--version"])
    >>> code, out.getvalue().startswith("cxr-keras ")
    (0, True)
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

from cxr_keras import __version__
from cxr_keras.cli import run_cli

__all__ = ["COMMANDS", "main"]

#: command -> (module under cxr_keras, what it does), in the order of a project
COMMANDS = {
    "datasets": ("datasets", "summarise a dataset; download a public one"),
    "recipe": ("recipe", "run a published pipeline end to end (train, evaluate, explain)"),
    "tune": ("tune", "search hyperparameters (KerasTuner)"),
    "train": ("train", "train a model and export its artifact"),
    "evaluate": ("evaluate", "a report with confidence intervals, calibration, thresholds"),
    "compare": ("compare", "compare models on the same films"),
    "explain": ("explain", "Grad-CAM heatmaps, with sanity checks"),
    "predict": ("predict", "answers for films, folders and DICOMs"),
    "app": ("app", "a web page for one model (Gradio)"),
    "export": ("export", "SavedModel, ONNX or LiteRT for deployment"),
    "monitor": ("monitor", "a drift report from the audit log"),
    "model-card": ("model_card", "write an artifact's model card"),
    "shard": ("shard", "write a dataset as TFRecord shards"),
}


def _overview() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return (
        "usage: cxr-keras <command> [options]   (cxr-keras <command> --help for its options)\n\n"
        "Chest X-ray classification with explanations, on Keras 3.\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\nexample:\n  cxr-keras predict --model kermany_pneumonia --out answers/ chest.dcm"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cxr-keras <command> [options]``; the command's own exit code ends the process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview())
        return 0
    if argv[0] == "--version":
        print(f"cxr-keras {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(
            f"error: unknown command {command!r}{hint} (cxr-keras --help lists them)",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"cxr_keras.{COMMANDS[command][0]}")
    run_cli(module.main, rest)  # exits with the command's code
    return 0


if __name__ == "__main__":
    sys.exit(main())
