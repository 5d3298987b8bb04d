"""Test-time augmentation (TTA): the model's logit averaged over the image and a few
fixed views of it (slightly zoomed, brighter or darker, shifted).

A model trained with ``model.tta: [zoom_in, zoom_out]`` is exported wrapped: one Keras
model whose output is the mean logit over the views, so ``evaluate`` (temperature and
thresholds), ``predict``, the app and every export answer with the views averaged and
cannot disagree. Grad-CAM and MC dropout work on the network inside
(:attr:`cxr_keras.artifact.store.Artifact.explain_model`): a heatmap is of the image as given.

Averaging logits, not probabilities, keeps the output a logit that temperature scaling
and the stored thresholds apply to as before.

Example:
    >>> import keras
    >>> x = keras.Input((32, 32, 1)); net = keras.Model(x, keras.layers.Dense(1)(
    ...     keras.layers.GlobalAveragePooling2D()(x)), name="net")
    >>> wrapped = with_tta(net, ["zoom_in", "zoom_out"])
    >>> base_of(wrapped).name, wrapped.output.shape
    ('net', (None, 1))
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["VIEWS", "base_of", "with_tta"]

# name -> (TestTimeView kind, amount): small changes a film taken on another day shows
VIEWS = {
    "zoom_in": ("zoom", 1.08),
    "zoom_out": ("zoom", 0.92),
    "brighter": ("gamma", 0.85),
    "darker": ("gamma", 1.15),
    "shift_left": ("shift", -0.04),
    "shift_right": ("shift", 0.04),
}


def with_tta(model, views: Sequence[str], *, probe=None):
    """``model`` wrapped so that its output is the mean logit over the unchanged image and
    each named view (:data:`VIEWS`).

    ``probe``: a model over the same layers whose first output is ``model``'s logits and
    whose further outputs (features, for the out-of-distribution detector) are computed
    on the unchanged image and returned after the mean logit, at no extra forward pass.
    """
    import keras

    from cxr_keras.models.layers import TestTimeView

    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown test-time views {unknown}; choose from {sorted(VIEWS)}")
    if not views and probe is None:
        return model
    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="image")
    if probe is None:
        outputs, extra = [model(inputs)], []
    else:
        first, *extra = probe(inputs)
        outputs = [first]
    for view in views:
        kind, amount = VIEWS[view]
        outputs.append(model(TestTimeView(kind, amount, name=f"tta_{view}")(inputs)))
    logits = keras.layers.Average(name="tta_mean_logit")(outputs) if views else outputs[0]
    return keras.Model(inputs, [logits, *extra] if extra else logits, name=f"{model.name}_tta")


def base_of(model):
    """The network inside a :func:`with_tta` wrapper (a model without views: itself)."""
    import keras

    if not model.name.endswith("_tta"):
        return model
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[0] if len(inner) == 1 else model
