"""A small web app for one model artifact: upload a chest X-ray, see the answer and why.

    python -m cxr_keras.app --model models/<name> [--host 127.0.0.1] [--port 7860]
        [--mc-passes N] [--max-mb 64] [--examples FILE ...]
        [--log AUDIT.db | --no-log]

Every answer goes to an audit log, by default ``runs/audit/<model name>.db`` (see
:mod:`cxr_keras.artifact.audit_log`); ``python -m cxr_keras.monitor`` reports its drift.

What it does and writes: :mod:`cxr_keras.serving.app`, the stage this command line runs.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from cxr_keras.cli import (
    command_parser,
    run_cli,
    setup_logging,
)
from cxr_keras.serving.app import DEFAULT_MAX_MB, build_app, private_upload_folder

__all__ = ["main"]

log = logging.getLogger("cxr_keras.app")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "app",
        __doc__,
        examples=[
            "cxr-keras app --model kermany_pneumonia",
            "cxr-keras app --model runs/demo --port 8080 --no-log",
        ],
    )
    parser.add_argument("--model", required=True, help="an artifact folder (models/<name>)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=7860, help="the port to listen on")
    parser.add_argument("--mc-passes", type=int, help="MC-dropout passes for referral (0: off)")
    parser.add_argument(
        "--max-mb",
        type=float,
        default=DEFAULT_MAX_MB,
        help=f"largest upload accepted, in MB (default {DEFAULT_MAX_MB:g})",
    )
    parser.add_argument("--examples", nargs="+", help="example files (default: from the sample)")
    logging_choice = parser.add_mutually_exclusive_group()
    logging_choice.add_argument(
        "--log",
        metavar="AUDIT_DB",
        help="the audit log every answer is appended to (default: runs/audit/<model name>.db)",
    )
    logging_choice.add_argument(
        "--no-log", action="store_true", help="keep no audit log of the answers"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose, tensorflow=True)
    # SIGTERM (a service manager's stop) ends the server like Ctrl-C does, so the exit
    # handlers run and the uploads folder is removed
    signal.signal(signal.SIGTERM, _interrupt)
    uploads = private_upload_folder()  # before Gradio reads GRADIO_TEMP_DIR; gone at exit
    log.info("uploads go to %s and are deleted once analysed", uploads)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError(
            "the app needs the [app] extra: pip install 'cxr-keras[app]' (Gradio)"
        ) from None
    from cxr_keras.artifact.audit_log import AuditLog
    from cxr_keras.artifact.store import load_artifact

    artifact = load_artifact(args.model)
    audit = None
    if not args.no_log:
        name = artifact.meta.get("name") or artifact.path.name
        audit = AuditLog(args.log or Path("runs") / "audit" / f"{name}.db")
        log.info("answers are logged to %s (no file names, no DICOM tags)", audit.path)
    app = build_app(
        artifact,
        mc_passes=args.mc_passes,
        max_mb=args.max_mb,
        examples=args.examples,
        audit_log=audit,
    )
    log.info("model %s loaded; serving on http://%s:%d", artifact.path, args.host, args.port)
    app.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        max_file_size=app.cxr_max_bytes,
        allowed_paths=app.cxr_allowed_paths,
        show_error=False,
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
