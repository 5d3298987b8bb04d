"""Explanation cost: predict vs. predict + Grad-CAM for a batch of 32 real films at 224 px.

For each backbone (random weights: the cost does not depend on them), the same batch of 32
real Kermany images is timed, alternately and ``--repeats`` times:

- predict: the artifact's forward pass (``model.predict_on_batch``), what the Predictor runs;
- predict + Grad-CAM: :class:`cxr_keras.explanation.gradcam.GradCam`, which returns the
  logits and the heatmaps of the last convolutional layer from one forward pass plus a backward pass
  through the head (what ``explain`` and the app run);
- for reference, predict followed by a separate Grad-CAM pass (a second forward), as
  explainers that cannot reuse the prediction work.

Prints the medians per backbone and a last line ``ratio: X``: predict + Grad-CAM over
predict, for the backbone where it is largest.

Usage:
    python benchmarks/explain_speed.py [--data ../shared/data/kermany_pneumonia]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 32
SIZE = 224


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "kermany_pneumonia"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--backbones", default="custom_cnn,mobilenetv3small,efficientnetb0,densenet121"
    )
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from cxr_keras.core.image_spec import ImageSpec
    from cxr_keras.data.io import load_image
    from cxr_keras.data.sources import folder_source
    from cxr_keras.explanation.gradcam import GradCam
    from cxr_keras.models.build import build_model
    from cxr_keras.models.settings import ModelConfig

    spec = ImageSpec(size=SIZE)
    paths = folder_source(args.data).sample(n=BATCH, random_state=0)["path"]
    x = np.stack([load_image(p, spec) for p in paths])
    print(
        f"{BATCH} real images from {args.data.name} at {SIZE} px; median of {args.repeats} "
        f"alternating rounds; TF {tf.__version__}, {os.cpu_count()} CPU cores"
    )
    print(f"{'backbone':<18}{'predict s':>11}{'+Grad-CAM s':>13}{'ratio':>7}{'2 passes':>10}")
    ratios = {}
    for name in args.backbones.split(","):
        built = build_model(ModelConfig(backbone=name), spec=spec, labels=["PNEUMONIA"])
        model = built.model
        explainer = GradCam(model, [built.feature_layer])
        predict = tf.function(lambda images, model=model: model(images, training=False))
        predict(x)  # trace both before timing
        explainer(x, [0])
        times = {"predict": [], "explain": [], "separate": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            np.asarray(predict(x))
            times["predict"].append(time.perf_counter() - start)
            start = time.perf_counter()
            explainer(x, [0])
            times["explain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            np.asarray(predict(x))
            explainer(x, [0])
            times["separate"].append(time.perf_counter() - start)
        median = {k: statistics.median(v) for k, v in times.items()}
        ratios[name] = median["explain"] / median["predict"]
        print(
            f"{name:<18}{median['predict']:>11.3f}{median['explain']:>13.3f}"
            f"{ratios[name]:>7.2f}{median['separate'] / median['predict']:>10.2f}"
        )
    worst = max(ratios, key=ratios.get)
    print(f"largest: {worst}")
    print(f"ratio: {ratios[worst]:.2f}")


if __name__ == "__main__":
    main()
