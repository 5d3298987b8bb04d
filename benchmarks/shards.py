"""Reading TFRecord shards against reading the same images from a folder, in one run.

The same real images (by default 1000 of the Kermany pack's 512-px JPEGs, at 224 px) are
read as training batches (shuffled, no cache: every epoch decodes) two ways: from the
folder by cxr-keras' pipeline, and from shards written once by ``write_shards`` (16-bit
PNG of the resized image). Epochs of the two alternate (this machine's speed jumps for
seconds at a time), and the medians are compared. Writing the shards is timed too.

Prints images/s of each and ``ratio: X`` = shards over folder images/s.

Usage:
    python benchmarks/shards.py [--images 1000] [--epochs 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _epoch_seconds(ds) -> float:
    start = time.perf_counter()
    for _ in ds:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "kermany_pneumonia"
    )
    parser.add_argument(
        "--layout",
        help="instead of --data: the bundled sample written in a dataset's layout "
        "(rsna: DICOM files; nih: JPEGs under Data_Entry_2017.csv)",
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shard-size", type=int, default=250)
    args = parser.parse_args()

    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data import prepare_data, split_frame
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.data.settings import DataConfig, SplitConfig
    from cxr_keras.data.shard_writer import write_shards

    spec = ImageSpec(size=args.size)
    if args.layout:
        from cxr_keras.data.sample_layouts import write_layout

        root = write_layout(args.layout, Path(tempfile.gettempdir()) / f"cxr_{args.layout}")
        data = DataConfig(
            source=args.layout, root=root["data.root"], split=SplitConfig(method="patient", val=0.0)
        )
    else:
        data = DataConfig(
            source="folder", root=str(args.data), split=SplitConfig(method="patient", val=0.0)
        )
    manifest = prepare_data(data, spec)
    manifest = manifest.sample(n=min(args.images, len(manifest)), random_state=0)
    manifest = manifest.reset_index(drop=True).assign(split="train")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_shards(
            None, spec, out=Path(tmp) / "shards", shard_size=args.shard_size, manifest=manifest
        )
        written = time.perf_counter() - start
        sharded = prepare_data(DataConfig(source="shards", root=str(Path(tmp) / "shards")), spec)
        train = split_frame(sharded, "train")
        folder = make_dataset(manifest, spec, batch_size=32, training=True, seed=0, cache="none")
        shards = make_dataset(train, spec, batch_size=32, training=True, seed=0, cache="none")
        times = {"folder": [], "shards": []}
        for _ in range(args.epochs):
            times["folder"].append(_epoch_seconds(folder))
            times["shards"].append(_epoch_seconds(shards))
    n = len(manifest)
    speed = {k: n / statistics.median(v) for k, v in times.items()}
    print(f"images: {n} at {args.size} px, {args.epochs} alternating epochs each (no cache)")
    print(f"writing the shards: {written:.1f} s ({n / written:.0f} images/s, once)")
    for name, value in speed.items():
        print(
            f"{name}: {value:.0f} images/s (epochs: {', '.join(f'{t:.1f}' for t in times[name])} s)"
        )
    print(f"ratio: {speed['shards'] / speed['folder']:.2f}")


if __name__ == "__main__":
    main()
