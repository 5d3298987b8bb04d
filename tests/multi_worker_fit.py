"""One worker of a two-worker ``MultiWorkerMirroredStrategy`` job, run by
tests/test_multi_worker.py: ``python tests/multi_worker_fit.py OUT_DIR`` with ``TF_CONFIG``
set. It trains the toolkit's model with Keras ``fit`` on the bundled sample, read from
shards with the stated auto-shard policy, and writes ``OUT_DIR/worker-<index>.json``: the
loss and a checksum of the weights, or the error that stopped it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    import tensorflow as tf

    # the strategy must exist before any other TensorFlow op runs in this process
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    import keras
    import numpy as np

    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data import prepare_data, split_frame
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.data.settings import DataConfig
    from cxr_keras.models import MaskedBinaryLoss, build_model
    from cxr_keras.models.settings import ModelConfig

    out, shards = Path(sys.argv[1]), sys.argv[2]
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    spec = ImageSpec(size=32)
    train = split_frame(prepare_data(DataConfig(source="shards", root=shards), spec), "train")
    ds = make_dataset(train, spec, batch_size=16, training=True, seed=1, cache="none", repeat=True)
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_model(
            ModelConfig(filters=[4, 8]), spec=spec, labels=["PNEUMONIA"], seed=1
        ).model
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=MaskedBinaryLoss())
    result: dict = {"replicas": strategy.num_replicas_in_sync}
    try:
        history = model.fit(ds, epochs=1, steps_per_epoch=4, verbose=0)
        result["ok"] = True
        result["loss"] = float(history.history["loss"][-1])
        result["weights"] = float(sum(np.abs(w).sum() for w in model.get_weights()))
    except Exception as exc:  # the test reads what stopped the worker
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"[:3000]
    (out / f"worker-{index}.json").write_text(json.dumps(result))


if __name__ == "__main__":  # pytest's doctest collection imports this file: run nothing then
    main()
