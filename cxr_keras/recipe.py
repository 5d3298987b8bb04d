"""Run a published pipeline end to end from its recipe file.

    python -m cxr_keras.recipe --config tuner_configs/<recipe>.yaml [--smoke]
        [--set KEY=VALUE ...] [--run-name NAME] [--overwrite]

In order, all under ``runs/<name>/`` (``runs/<name>_smoke/`` with ``--smoke``):

1. the data summary (``data/``: counts per split, the augmentation grid and, for several
   labels, the training split's co-occurrence heatmap);
2. the hyperparameter search, when the recipe has a ``search:`` section (``tune/``);
3. training with the best values found (the artifact: ``model.keras``, ...);
4. evaluation on ``recipe.evaluate_split`` (``evaluation/<split>/``: ROC/PR curves with
   the operating points, metrics at 0.5 and at each rule's threshold, confusion
   matrices, a sample-prediction grid, calibration, training curves);
5. Grad-CAM on films of that split at ``recipe.explain_layers``, side by side
   (``explain/``);
6. each recipe of ``recipe.compare_with`` run the same way, and one comparison report
   (``compare/``, :mod:`cxr_keras.compare`);

then ``recipe/report.md`` and ``report.html``, which gather the numbers and figures of
every step, with the time each took. A finished step is not redone (training resumes or
returns its artifact); ``--overwrite`` starts the search and training afresh.

``--smoke`` runs the same steps in about a minute on a CPU: the recipe's
``recipe.smoke`` settings replace its own (fewer epochs, smaller images, a two-trial
search), and the bundled sample is written in the dataset's own layout
(``recipe.smoke_layout``, :mod:`cxr_keras.data.sample_layouts`) and read through the
recipe's real adapter. A smoke run checks the pipeline, not the model.

Example:
    >>> run = run_recipe("tuner_configs/rsna_resnet50_binary.yaml", smoke=True)  # doctest: +SKIP
    >>> run["report"]  # doctest: +SKIP
    'runs/rsna_resnet50_binary_smoke/recipe/report.md'
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
