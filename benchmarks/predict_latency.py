"""Cold start and throughput of ``python -m cxr_keras.predict``: the full path (the Keras
model, TensorFlow) against the lightweight ones (``--runtime onnx``: the ONNX export
through onnxruntime; ``--runtime litert``: the LiteRT export through ai-edge-litert; no
TensorFlow on either), side by side in one run.

Each measurement is a fresh process, as a PACS hook or a serverless function starts one:
**cold start** is the wall time of ``predict`` on one film, from launch to exit (imports,
loading the model, reading the film, answering, writing predictions.csv/.json);
**throughput** is films per second over 100 films once started, from the difference
between a 100-film and a 1-film run. The paths alternate, ``--repeats`` times, and the
medians are printed (after one uncounted run of each, which fills the disk cache), then
``ratio:`` (full cold start / ONNX cold start; target >= 5) and the same for LiteRT.

Usage:
    python benchmarks/predict_latency.py [--model kermany_pneumonia] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "cxr_keras" / "pretrained" / "kermany_pneumonia"
RUNTIMES = {"keras": "full (Keras, TensorFlow)", "onnx": "light (ONNX)", "litert": "light (LiteRT)"}


def run_predict(model: Path, films: list[Path], runtime: str, out: Path) -> float:
    """Wall seconds of one predict process over ``films``."""
    command = [sys.executable, "-m", "cxr_keras.predict", "--model", str(model)]
    command += ["--out", str(out), "--runtime", runtime, *map(str, films)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"predict --runtime {runtime} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for fmt, file in (("onnx", "model.onnx"), ("litert", "model.tflite")):
        if not (args.model / "export" / fmt / file).is_file():
            sys.exit(f"{args.model}: export it first (python -m cxr_keras.export --format {fmt})")
    films = sorted((args.data / "kermany_pneumonia" / "val").glob("*/*.jpeg"))[:100]
    if len(films) < 100:
        sys.exit(f"needs 100 real films under {args.data / 'kermany_pneumonia' / 'val'}")
    work = Path(tempfile.mkdtemp(prefix="cxr_predict_latency_"))
    for runtime in RUNTIMES:  # not counted: fills the disk cache for every side
        run_predict(args.model, films, runtime, work / f"{runtime}_warm_up")
    cold = {runtime: [] for runtime in RUNTIMES}
    rate = {runtime: [] for runtime in RUNTIMES}
    for repeat in range(args.repeats):
        for runtime in RUNTIMES:
            one = run_predict(args.model, films[:1], runtime, work / f"{runtime}_{repeat}_1")
            many = run_predict(args.model, films, runtime, work / f"{runtime}_{repeat}_100")
            cold[runtime].append(one)
            rate[runtime].append((len(films) - 1) / max(many - one, 1e-9))
            print(
                f"run {repeat + 1} {runtime}: cold start {one:.2f} s, 100 films {many:.2f} s "
                f"({rate[runtime][-1]:.1f} films/s once started)"
            )
    for runtime, name in RUNTIMES.items():
        print(
            f"{name}: cold start median {statistics.median(cold[runtime]):.2f} s, "
            f"throughput median {statistics.median(rate[runtime]):.1f} films/s"
        )
    print(f"machine: {os.cpu_count()} CPU cores; model {args.model.name}")
    full = statistics.median(cold["keras"])
    litert = full / statistics.median(cold["litert"])
    print(f"litert: {litert:.2f} (full cold start / LiteRT cold start)")
    ratio = full / statistics.median(cold["onnx"])
    print(f"ratio: {ratio:.2f} (full cold start / ONNX cold start)")


if __name__ == "__main__":
    main()
