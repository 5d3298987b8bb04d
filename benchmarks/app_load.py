"""The web app under load: concurrent clients through its HTTP API, on loopback.

Starts ``python -m cxr_keras.app`` on a free 127.0.0.1 port with a model artifact
(``--model``; by default a 224 px custom CNN with random weights, saved to a temporary
folder: the cost of an answer does not depend on the weights), then ``--clients`` threads,
each with its own ``gradio_client.Client``, send ``--requests`` requests in all to
``/analyze``, cycling over real films: Kermany JPEGs from the shared data and the real
chest DICOMs (MONOCHROME1 JPEG 2000, uncompressed, and the SIIM one). Every answer is one
upload, its analysis (probabilities, MC-dropout referral with the artifact's passes,
Grad-CAM overlay) and the download of the result.

Two apps run side by side, one writing every answer to an audit log and one with
``--no-log``; the requests go in alternating rounds (off, on, off, on), so a noisy machine
slows both alike. A request is an error when the client raises, or when the page's status
shows a message (a real film must never be refused). Prints per side the latency
p50/p95/max and the throughput, the rows the log holds (one per answer), ``ratio:`` (p50
with the log / p50 without; target <= 1.05) and a last line ``errors: N`` (target: zero).

Usage:
    python benchmarks/app_load.py [--model models/<name>] [--clients 4] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


ROUNDS = 4  # off, on, off, on, ...: the machine's noise falls on both sides


def random_weights_artifact(folder: Path) -> Path:
    """A 224 px custom-CNN artifact with random weights (for timing only)."""
    from cxr_keras.artifact.store import save_artifact
    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.core.serialize import config_to_dict
    from cxr_keras.models.build import build_model
    from cxr_keras.models.settings import ModelConfig

    spec = ImageSpec(size=224)
    built = build_model(ModelConfig(backbone="custom_cnn"), spec=spec, labels=["PNEUMONIA"], seed=0)
    meta = {
        "name": "app-load-random-cnn",
        "labels": ["PNEUMONIA"],
        "image_spec": config_to_dict(spec),
        "model": {"feature_layer": built.feature_layer},
    }
    return save_artifact(built.model, meta, folder / "random_cnn")


def films(data: Path, count: int) -> list[Path]:
    """Real films to send: Kermany JPEGs (spread over both classes) and the real DICOMs."""
    from cxr_keras.data.sources import folder_source

    jpegs = list(folder_source(data / "kermany_pneumonia").sample(n=count, random_state=0)["path"])
    dicoms = sorted((data / "dicom").glob("*.dcm"))
    return [Path(p) for p in jpegs] + dicoms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: Path, port: int, log_path: Path, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "cxr_keras.app", "--model", str(model)]
    command += ["--port", str(port), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return process
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    sys.exit(f"the app did not start:\n{log_path.read_text()[-3000:]}")


def run_round(url: str, films: list[Path], requests: int, clients: int, offset: int):
    """``requests`` requests from ``clients`` threads; returns (latencies, errors, wall)."""
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(offset, offset + requests))

    def client_loop() -> None:
        client = Client(url, verbose=False)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            film = films[i % len(films)]
            start = time.perf_counter()
            try:
                outputs = client.predict(handle_file(str(film)), api_name="/analyze")
                status, details = outputs[0], outputs[6]  # the page's status, the API's JSON
                problem = status or ("no result" if not details else "")
            except Exception as exc:  # a failed request is counted, not fatal
                problem = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(f"{film.name}: {problem}")

    begin = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an artifact (default: random 224 px CNN)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--mc-passes", type=int, help="passed to the app (default: the rule's)")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="cxr_app_load_"))
    model = args.model or random_weights_artifact(work)
    inputs = films(args.data, 60)
    extra = [] if args.mc_passes is None else ["--mc-passes", str(args.mc_passes)]
    audit = work / "audit.db"
    sides = {"log off": ["--no-log"], "log on": ["--log", str(audit)]}
    processes, urls = {}, {}
    started = time.perf_counter()
    try:
        for side, flags in sides.items():
            port = free_port()
            processes[side] = start_app(model, port, work / f"{side}.log", [*extra, *flags])
            urls[side] = f"http://127.0.0.1:{port}/"
            # the first answer builds the model's functions: not timed
            Client(urls[side], verbose=False).predict(
                handle_file(str(inputs[0])), api_name="/analyze"
            )
        print(
            f"apps up in {time.perf_counter() - started:.1f} s (model {model.name}); "
            f"{args.clients} clients, {args.requests} requests per side over {len(inputs)} "
            f"real films, in {ROUNDS} alternating rounds; {os.cpu_count()} CPU cores"
        )
        results = {side: ([], [], 0.0) for side in sides}
        per_round = max(1, args.requests // ROUNDS)
        for round_index in range(ROUNDS):
            for side in sides:
                latencies, errors, wall = run_round(
                    urls[side], inputs, per_round, args.clients, round_index * per_round
                )
                kept = results[side]
                results[side] = (kept[0] + latencies, kept[1] + errors, kept[2] + wall)
    finally:
        for process in processes.values():
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    medians = {}
    all_errors = []
    for side, (latencies, errors, wall) in results.items():
        ordered = sorted(latencies)
        medians[side] = statistics.median(ordered)
        p95 = statistics.quantiles(ordered, n=20)[18]
        print(
            f"{side}: {len(ordered)} requests in {wall:.1f} s ({len(ordered) / wall:.2f} per s); "
            f"p50 {medians[side]:.3f} s, p95 {p95:.3f} s, max {ordered[-1]:.3f} s; "
            f"errors {len(errors)}"
        )
        all_errors += errors
    import sqlite3

    with sqlite3.connect(audit) as db:
        rows = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    answered = len(results["log on"][0]) - len(results["log on"][1]) + 1  # + the warm-up
    print(f"audit log rows: {rows} for {answered} answers given with the log on")
    print(f"ratio: {medians['log on'] / medians['log off']:.3f} (p50 with the log / without)")
    for error in all_errors[:10]:
        print(f"  error: {error}")
    print(f"errors: {len(all_errors)}")


if __name__ == "__main__":
    main()
