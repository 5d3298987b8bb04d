"""Peak memory of one training epoch over 1x and 10x the real images, without a cache.

A streaming pipeline's memory must not grow with the dataset: the 10x run reads every
image ten times more, and should need no more memory than the 1x run. Each run is a fresh
process: the Kermany TRAIN images of both packs (5216), repeated ``factor`` times as
manifest rows, one epoch of a small custom CNN at 128 px fed by ``make_dataset`` with
``cache: none`` (decode every image, shuffle the file list) as training runs it.

Prints the peak RSS of each run and ``ratio: X`` = 10x over 1x (goal <= 1.2).

Usage:
    python benchmarks/memory.py [--factor 10] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PACKS = [
    REPO.parent / "shared" / "data" / name
    for name in ("kermany_pneumonia", "kermany_pneumonia_224")
]


def child(factor: int, size: int) -> dict:
    """One epoch over ``factor`` x the images; returns images, seconds and peak RSS."""
    import keras
    import pandas as pd

    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data import load_manifest
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.data.settings import DataConfig
    from cxr_keras.models import MaskedBinaryLoss, build_model
    from cxr_keras.models.settings import ModelConfig

    spec = ImageSpec(size=size)
    manifest = load_manifest(DataConfig(source="folder", root=[str(p) for p in PACKS]))
    repeated = pd.concat([manifest] * factor, ignore_index=True)
    repeated.attrs = dict(manifest.attrs)
    ds = make_dataset(repeated, spec, batch_size=64, training=True, seed=0, cache="none")
    model = build_model(ModelConfig(filters=[16, 32, 64]), spec=spec, labels=["PNEUMONIA"]).model
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=MaskedBinaryLoss())
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"images": len(repeated), "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size)))
        return
    runs = {}
    for factor in (1, args.factor):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(factor), "--size", str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs[factor] = json.loads(out.stdout.strip().splitlines()[-1])
        r = runs[factor]
        print(
            f"{factor}x: {r['images']} images, one epoch {r['seconds']:.0f} s "
            f"({r['images'] / r['seconds']:.0f} images/s), peak RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    print(f"ratio: {runs[args.factor]['peak_rss_mb'] / runs[1]['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
