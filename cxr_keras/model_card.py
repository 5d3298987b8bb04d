"""The model card: ``MODEL_CARD.md`` beside an artifact, written from its ``cxr_model.json``.

Everything in it comes from the artifact, so it cannot drift from the model: the data
(sources, split counts, licence and citations from the recipe's ``card`` section), the
preprocessing, the network, the command that trained it, the validation figures with
their confidence intervals, the thresholds and decision rule, the calibration, the
referral rule and the known limits. ``train`` writes it, ``evaluate`` rewrites it when it
stores new thresholds or figures, and this command regenerates it:

    python -m cxr_keras.model_card --model models/<name>

Example:
    >>> path = write_model_card(load_artifact("runs/demo"))  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'MODEL_CARD.md'
"""

from __future__ import annotations

import argparse

from cxr_keras.artifact.model_card import write_model_card
from cxr_keras.cli import (
    run_cli,
    setup_logging,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from cxr_keras.artifact.store import load_artifact

    parser = argparse.ArgumentParser(
        prog="python -m cxr_keras.model_card", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    print(write_model_card(load_artifact(args.model)))
    return 0


if __name__ == "__main__":
    run_cli(main)
