"""Does test-time augmentation help this model? Validation AUC with and without views.

Takes a trained artifact (without views of its own), rebuilds its validation split, and
prints the validation ROC AUC of the network alone, with each single view of
:data:`cxr_keras.models.tta.VIEWS` added, and with the ``--views`` set, the way a recipe's
``model.tta`` would export it (:func:`cxr_keras.models.tta.with_tta`). Validation AUC only:
the choice is made on validation, never on a test set.

Usage:
    python benchmarks/tta_gain.py --model runs/learning_curve/<point> [--views zoom_in,zoom_out]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an artifact folder")
    parser.add_argument("--views", default="zoom_in,zoom_out", help="the set to try")
    args = parser.parse_args()

    import tensorflow as tf

    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.data.io import load_image
    from cxr_keras.evaluation.frames import artifact_manifest, select_split
    from cxr_keras.evaluation.metrics import roc_pr_auc
    from cxr_keras.models.tta import VIEWS, with_tta

    artifact = load_artifact(args.model)
    if artifact.tta:
        sys.exit(f"{args.model} already averages {artifact.tta}; give a model without views")
    val = select_split(artifact_manifest(artifact), "val", "the artifact's data")
    x = np.stack([load_image(p, artifact.image_spec) for p in val["path"]])
    y, mask = label_arrays(val, artifact.labels)

    def auc(views: list[str]) -> float:
        model = with_tta(artifact.model, views)
        run = tf.function(lambda v: model(v, training=False))
        logits = np.concatenate([np.asarray(run(x[i : i + 64])) for i in range(0, len(x), 64)])
        values = [
            roc_pr_auc(y[mask[:, j] > 0, j], logits[mask[:, j] > 0, j])[0]
            for j in range(len(artifact.labels))
        ]
        return float(np.mean(values))

    base = auc([])
    print(f"{len(x)} validation images, labels {artifact.labels}")
    print(f"{'views':<28}{'val AUC':>9}{'change':>9}")
    print(f"{'(none)':<28}{base:>9.4f}{0:>9.4f}")
    for view in VIEWS:
        value = auc([view])
        print(f"{view:<28}{value:>9.4f}{value - base:>+9.4f}")
    chosen = [v for v in args.views.split(",") if v]
    value = auc(chosen)
    print(f"{'+'.join(chosen):<28}{value:>9.4f}{value - base:>+9.4f}")


if __name__ == "__main__":
    main()
