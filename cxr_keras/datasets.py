"""``python -m cxr_keras.datasets summary``: the summary of a dataset.

Two forms:

- ``summary --config RECIPE``: load, verify and split the configured data, and save a
  grid of augmented training images and, for several labels, the heatmap of the training
  split's label co-occurrence, under ``runs/<name>/data/``;
- ``summary DATASET ROOT``: a named public dataset (kermany, nih, chexpert, rsna) as its
  provider ships it, or its label file alone, without reading images: counts, patients,
  views and co-occurrence of every row, under ``runs/datasets/<dataset>/``.

``download DATASET [--out DIR]`` fetches kermany, nih, nih-sample or rsna through kagglehub
(:mod:`cxr_keras.data.download`) and prints the ``summary`` command that opens it.

Both write ``summary.txt`` and ``summary.json`` (counts per split, patients, labels,
co-occurrence, skipped files by reason), ``manifest.csv`` and ``skipped.csv`` (every file
left out, with the reason).

Example:
    cxr-keras datasets summary --recipe demo
    python -m cxr_keras.datasets summary nih ~/data/NIH/Data_Entry_2017_v2020.csv
    python -m cxr_keras.datasets summary chexpert ~/CheXpert-v1.0-small --option frontal_only=true
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cxr_keras.cli import (
    DefaultsHelpFormatter,
    add_config_arguments,
    command_parser,
    config_from_args,
    run_cli,
    setup_logging,
)
from cxr_keras.data.adapters import DATASETS
from cxr_keras.data.download import DOWNLOADS, DownloadError, download
from cxr_keras.evaluation.data_summary import summarize, summarize_dataset

__all__ = ["main"]

log = logging.getLogger("cxr_keras.datasets")


def _download(name: str, out: Path | None, force: bool) -> int:
    """The ``download`` command: fetch, then say how to open what arrived."""
    try:
        folder = download(name, out, force)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{name}: {folder}")
    print(f"next: python -m cxr_keras.datasets summary {DOWNLOADS[name].adapter} {folder}")
    return 0


def _option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML (true, 3, a path stays text)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "datasets",
        __doc__,
        examples=[
            "cxr-keras datasets summary --recipe demo",
            "cxr-keras datasets summary kermany ~/chest_xray",
            "cxr-keras datasets download kermany --out data/",
        ],
    )
    sub = parser.add_subparsers(dest="command", required=True, help="what to do")
    summary = sub.add_parser(
        "summary",
        formatter_class=DefaultsHelpFormatter,
        help="counts of a configured dataset (--config) or of a named public one",
        description="Either --config RECIPE, or DATASET ROOT (a named public dataset's "
        "folder or label file).",
    )
    summary.add_argument("dataset", nargs="?", choices=sorted(DATASETS), help="named dataset")
    summary.add_argument("root", nargs="?", help="its folder as unpacked, or its label file")
    summary.add_argument(
        "--option",
        dest="options",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="an adapter option, e.g. frontal_only=true (chexpert) or task=subtype (kermany)",
    )
    add_config_arguments(summary, required=False)
    summary.add_argument("--out", type=Path, help="output folder (default runs/<name>/data)")
    summary.add_argument(
        "--grid",
        type=int,
        default=8,
        metavar="N",
        help="images per row of the augmentation grid (0: no grid)",
    )
    fetch = sub.add_parser(
        "download",
        formatter_class=DefaultsHelpFormatter,
        help="download a public dataset with kagglehub (pip install 'cxr-keras[download]')",
    )
    fetch.add_argument("dataset", help=f"one of {', '.join(sorted(DOWNLOADS))} (or chexpert)")
    fetch.add_argument("--out", type=Path, help="download here instead of kagglehub's cache")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=args.command == "summary")
    if args.command == "download":
        return _download(args.dataset, args.out, args.force)
    if (args.config is None) == (args.dataset is None):
        parser.error("summary: give either --config RECIPE or DATASET ROOT")
    if args.dataset is not None:
        if args.root is None:
            parser.error(f"summary {args.dataset}: give the dataset's folder or label file")
        result = summarize_dataset(args.dataset, args.root, args.out, **dict(args.options))
        log.info("wrote %s", result["out_dir"])
        return 0
    cfg = config_from_args(args)
    result = summarize(cfg, args.out, args.grid)
    log.info("wrote %s", result["out_dir"])
    return 0


if __name__ == "__main__":
    run_cli(main)
