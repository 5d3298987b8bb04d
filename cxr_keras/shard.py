"""``python -m cxr_keras.shard``: write a config's data as TFRecord shards.

    cxr-keras shard --data configs/nih_multilabel.yaml --out runs/shards/nih \
        [--shard-size 1000] [--set KEY=VALUE ...]

The config's data is read, verified and split by patient as training would; each image is
decoded and resized once to the config's image spec and stored, with its labels and
manifest row, in ``<split>-NNNNN-of-MMMMM.tfrecord`` files, beside ``manifest.csv`` and
``index.json`` (:mod:`cxr_keras.data.shard_reader`). ``--out`` may be any ``tf.io.gfile`` path.
Train from it with ``--set data.source=shards --set data.root=OUT`` (same image spec).
"""

from __future__ import annotations

from cxr_keras.cli import (
    add_override_argument,
    command_parser,
    config_from_args,
    run_cli,
    setup_logging,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "shard",
        __doc__,
        examples=[
            "cxr-keras shard --data my_run.yaml --out shards/ --shard-size 1000",
        ],
    )
    parser.add_argument("--data", dest="config", required=True, help="a config (YAML)")
    parser.add_argument("--out", required=True, help="the shard folder to write")
    parser.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    add_override_argument(parser)
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging and TensorFlow's own messages"
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = config_from_args(args, tensorflow=True)
    from cxr_keras.data.shard_writer import write_shards

    write_shards(
        cfg.data, cfg.image, out=args.out, shard_size=args.shard_size, seed=cfg.seed, progress=True
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
