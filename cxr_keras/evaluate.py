"""Evaluate a model artifact: a report with confidence intervals, operating points and
calibration.

    python -m cxr_keras.evaluate --model runs/<name> [--data DATA] [--split test]
        [--calibrate [--calibrate-on val|stressed]] [--min-sensitivity 0.95]
        [--decision-rule youden]
        [--bootstrap 1000] [--out DIR] [--update-model] [--refit-ood] [--ood-quantile Q]
        [--stress [--stress-images 400]] [--stressed-thresholds]
        [--adapt-prior | --prevalence [LABEL=]P ...]

What it does and writes: :mod:`cxr_keras.evaluation.evaluate`, the stage this command line runs.
"""

from __future__ import annotations

import argparse
import json

from cxr_keras.cli import (
    add_prior_arguments,
    command_parser,
    declared_prevalence,
    run_cli,
    setup_logging,
)
from cxr_keras.core.result_names import THRESHOLD_RULES, check_decision_rule
from cxr_keras.evaluation.evaluate import evaluate

__all__ = ["main"]


def _decision_rule(text: str) -> str:
    """``--decision-rule``, checked before any model is loaded."""
    try:
        return check_decision_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "evaluate",
        __doc__,
        examples=[
            "cxr-keras evaluate --model runs/demo --calibrate",
            "cxr-keras evaluate --model runs/demo --decision-rule sensitivity_0.9",
            "cxr-keras evaluate --model kermany_pneumonia --data ~/chest_xray/test",
        ],
    )
    parser.add_argument(
        "--model", required=True, help="an artifact folder (runs/<name>, models/<name>)"
    )
    parser.add_argument(
        "--data", help="a dataset config (.yaml), manifest (.csv) or class-folder tree"
    )
    parser.add_argument("--split", default="test", help="train, val, test or all (default test)")
    parser.add_argument("--out", help="report folder (default <artifact>/evaluation/<split>)")
    parser.add_argument("--calibrate", action="store_true", help="fit temperatures on validation")
    parser.add_argument(
        "--min-sensitivity",
        type=float,
        default=0.95,
        help="the sensitivity floor of the screening threshold (rule sensitivity_<X>)",
    )
    parser.add_argument(
        "--referral-band", type=float, help="refer within this distance of the threshold"
    )
    parser.add_argument(
        "--referral-max-std", type=float, help="refer above this MC-dropout std deviation"
    )
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes for referral")
    parser.add_argument(
        "--decision-rule",
        type=_decision_rule,
        metavar="RULE",
        help="the rule predict and the app use: "
        + "; ".join(f"{name}: {text}" for name, text in THRESHOLD_RULES.items())
        + " (default youden; without a validation split, the artifact's own)",
    )
    parser.add_argument(
        "--threshold-estimate",
        choices=["point", "bootstrap"],
        default="point",
        help="store each rule's threshold as the validation point value, or from "
        "patient-level bootstrap resamples (steadier: the median; for the screening rule "
        "the 2.5th percentile, so its sensitivity floor holds in 97.5%% of them)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument(
        "--update-model", action="store_true", help="allow updating an artifact under models/"
    )
    parser.add_argument(
        "--refit-ood",
        action="store_true",
        help="fit the out-of-distribution detector again (it is fitted when missing)",
    )
    parser.add_argument(
        "--ood-quantile",
        type=float,
        help="quantile of the validation films' scores the detector flags above "
        "(default 0.995); implies --refit-ood",
    )
    parser.add_argument(
        "--stress",
        action="store_true",
        help="also re-score the films under acquisition shifts (exposure, blur, noise, JPEG, "
        "borders, rotation, ...): see cxr_keras.evaluation.stress",
    )
    parser.add_argument(
        "--stress-images", type=int, default=400, help="films re-scored by --stress (default 400)"
    )
    parser.add_argument(
        "--stressed-thresholds",
        action="store_true",
        help="also choose the youden_stressed and sensitivity_<X>_stressed rules on "
        "--stress-images validation films pooled with their copies under every shift of "
        "--stress (a decision rule meant to hold on other devices and exposures)",
    )
    parser.add_argument(
        "--calibrate-on",
        choices=["val", "stressed"],
        default="val",
        help="with --calibrate: fit the temperatures on the validation films as they are "
        "(val), or on --stress-images of them pooled with their copies under every shift "
        "of --stress (stressed: fitted to how the scores behave under those shifts too)",
    )
    add_prior_arguments(parser, effect="also report the metrics after correcting the answers to it")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    declared = declared_prevalence(args.prevalence)  # refused before a model loads
    result = evaluate(
        args.model,
        data=args.data,
        split=args.split,
        out=args.out,
        calibrate=args.calibrate,
        calibrate_on=args.calibrate_on,
        min_sensitivity=args.min_sensitivity,
        decision_rule=args.decision_rule,
        bootstrap=args.bootstrap,
        seed=args.seed,
        update_model=args.update_model,
        batch_size=args.batch_size,
        referral={
            key: value
            for key, value in (
                ("band", args.referral_band),
                ("max_std", args.referral_max_std),
                ("passes", args.mc_passes),
            )
            if value is not None
        },
        threshold_estimate=args.threshold_estimate,
        refit_ood=args.refit_ood,
        ood_quantile=args.ood_quantile,
        stress=args.stress,
        stress_images=args.stress_images,
        adapt_prior=args.adapt_prior,
        prevalence=declared,
        stressed_thresholds=args.stressed_thresholds,
    )
    macro = result["discrimination"]["macro"]
    print(
        json.dumps(
            {
                "report": result["report"],
                "images": result["evaluated"]["images"],
                "macro_roc_auc": macro["roc_auc"],
                "macro_roc_auc_ci": macro["roc_auc_ci"],
                "decision_rule": result["decision_rule"],
                "thresholds": result["thresholds"][result["decision_rule"]],
                **(
                    {
                        "prevalence": {
                            label: block["prevalence"]
                            for label, block in result["prior_adaptation"]["labels"].items()
                        }
                    }
                    if result.get("prior_adaptation")
                    else {}
                ),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
