"""The drift report of a deployed model: its audit log against its reference profile.

    python -m cxr_keras.monitor --model models/<name> --log AUDIT.db --out DIR
        [--since DATE] [--until DATE] [--window 1d] [--export-csv]
        [--fail-on {watch,drift}]

Exits 3 when the overall verdict is at least ``--fail-on`` (for a scheduler to alert).
What it does and writes: :mod:`cxr_keras.serving.monitor`, the stage this command line runs.
"""

from __future__ import annotations

from cxr_keras.cli import command_parser, run_cli, setup_logging
from cxr_keras.evaluation.drift import VERDICTS
from cxr_keras.serving.monitor import monitor

__all__ = ["DRIFT_EXIT_CODE", "main"]

DRIFT_EXIT_CODE = 3  # 1 and 2 already say the run failed or was misused


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "monitor",
        __doc__,
        examples=[
            "cxr-keras monitor --model kermany_pneumonia --log runs/audit/kermany_pneumonia.db "
            "--out runs/drift",
            "cxr-keras monitor --model runs/demo --log audit.db --out drift/ --since 2026-12-01 "
            "--fail-on drift",
        ],
    )
    parser.add_argument("--model", required=True, help="the artifact folder that answered")
    parser.add_argument("--log", required=True, help="its audit log (predict --log, the app)")
    parser.add_argument("--out", required=True, help="folder for the drift report")
    parser.add_argument("--since", help="first date or time to include (UTC unless zoned)")
    parser.add_argument("--until", help="first date or time to leave out")
    parser.add_argument("--window", default="1d", help="the time window of the plots (1d)")
    parser.add_argument(
        "--export-csv", action="store_true", help="also write the period's rows as CSV"
    )
    parser.add_argument(
        "--fail-on",
        choices=VERDICTS[1:],
        help=f"exit {DRIFT_EXIT_CODE} when the verdict is this or worse",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    result = monitor(
        args.model,
        log=args.log,
        out=args.out,
        since=args.since,
        until=args.until,
        window=args.window,
        export_csv=args.export_csv,
    )
    for label, entry in result["labels"].items():
        print(f"{label}: {entry['verdict']} (PSI {entry['psi']}, p {entry['p_value']})")
    for name, entry in {**result["rates"], **result["image"]}.items():
        print(f"{name}: {entry['verdict']}")
    print(
        f"{result['answers']} answers: {result['verdict'].upper()}; report in "
        f"{args.out}/drift_report.html"
    )
    alarm = args.fail_on and result["verdict"] in VERDICTS
    if alarm and VERDICTS.index(result["verdict"]) >= VERDICTS.index(args.fail_on):
        return DRIFT_EXIT_CODE
    return 0


if __name__ == "__main__":
    run_cli(main)
