"""Reach inside a Keras functional model: find a layer by name in nested models, and
rebuild the graph flat so any inner layer's output is a model output.

``keras.Model(outer.input, nested.get_layer(name).output)`` fails for a backbone wrapped as
one nested layer (``Output ... is not connected to inputs``, the case that breaks the Keras
Grad-CAM example); re-running the graph layer by layer on a fresh input, descending into
nested functional and Sequential models, gives one flat graph over the same layer objects
(same weights) in which every layer output is reachable.

Example:
    >>> import keras
    >>> inner_in = keras.Input((8, 8, 1)); conv = keras.layers.Conv2D(2, 3, name="conv")
    >>> inner = keras.Model(inner_in, conv(inner_in), name="backbone")
    >>> x = keras.Input((8, 8, 1)); y = keras.layers.GlobalAveragePooling2D()(inner(x))
    >>> outer = keras.Model(x, keras.layers.Dense(1, name="logits")(y))
    >>> flat = rebuild(outer, ["conv"])
    >>> [tuple(o.shape) for o in flat.outputs]
    [(None, 6, 6, 2), (None, 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["find_layer", "rebuild", "spatial_layers", "split_before", "walk_layers"]


def _functional(layer):
    """The functional graph a layer runs (itself, a Sequential's inner one), or None."""
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    if isinstance(layer, Sequential):
        return getattr(layer, "_functional", None)
    if isinstance(layer, Functional):
        return layer
    return None


def walk_layers(model):
    """Every layer of a model, nested models' layers in place of the nested model."""
    for layer in model.layers:
        inner = _functional(layer)
        if inner is not None:
            yield from walk_layers(inner)
        else:
            yield layer


def find_layer(model, name: str):
    """The layer called ``name`` anywhere in ``model`` (nested models included); a
    ``ValueError`` listing close names if there is none."""
    import difflib

    layers = {layer.name: layer for layer in walk_layers(model)}
    if name not in layers:
        close = difflib.get_close_matches(name, list(layers), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"no layer named {name!r} in model {model.name!r}{hint}")
    return layers[name]


def spatial_layers(model) -> list[str]:
    """Names of layers whose output is a 4-D feature map (batch, H, W, C) with H, W > 1,
    in graph order: the candidates for Grad-CAM."""
    names = []
    for layer in walk_layers(model):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer used several times, or never
            continue
        if len(shape) == 4 and (shape[1] or 2) > 1 and (shape[2] or 2) > 1:
            names.append(layer.name)
    return names


def _run(model, inputs, seen: dict, training_for: Callable | None, fed: dict | None = None):
    """Run ``model``'s graph on ``inputs`` one layer at a time, nested models inlined;
    record each layer's output in ``seen`` (and its call arguments in ``fed``) by name."""

    def operation_fn(op):
        inner = _functional(op)

        def call(*args, **kwargs):
            if fed is not None:
                fed[op.name] = args
            if inner is not None:
                out = _run(
                    inner, args[0] if len(args) == 1 else list(args), seen, training_for, fed
                )
            else:
                if training_for is not None and "training" in getattr(
                    op, "_call_context_args", {"training"}
                ):
                    kwargs["training"] = training_for(op)
                out = op(*args, **kwargs)
            seen[op.name] = out
            return out

        return call

    # the same private walk Keras' own Functional.call uses (keras/src/ops/function.py)
    outputs = model._run_through_graph(inputs, operation_fn=operation_fn)
    return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


def rebuild(model, capture: Sequence[str] = (), training_for: Callable | None = None):
    """A flat functional model over the same layers whose outputs are the ``capture``
    layers' outputs followed by the model's own output.

    ``training_for(layer) -> bool | None`` fixes the ``training`` argument of each layer
    call (e.g. True for Dropout only, for Monte Carlo dropout).
    """
    import keras

    for name in capture:
        find_layer(model, name)  # a clear error before any graph work
    inner = _functional(model) or model
    fresh = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"{t.name}_") for t in inner.inputs]
    seen: dict = {}
    inputs = fresh[0] if len(fresh) == 1 else fresh  # called as the original is
    output = _run(inner, inputs, seen, training_for)
    outputs = [*(seen[name] for name in capture), output] if capture else output
    return keras.Model(inputs, outputs, name=f"{model.name}_flat")


def split_before(model, first: Callable, training_for: Callable | None = None):
    """``(trunk, head)`` with ``head(trunk(x)) == model(x)``: the flat graph cut at the
    input of the first layer (in graph order) for which ``first(layer)`` is true, e.g. the
    first Dropout, so that Monte Carlo dropout runs the trunk once and only the head per
    pass. ``None`` when no layer matches or the head needs more than that one tensor (a
    connection that skips over the cut). ``training_for`` as in :func:`rebuild`.

    Example:
        >>> import keras
        >>> x = keras.Input((4,)); h = keras.layers.Dense(3, name="hidden")(x)
        >>> y = keras.layers.Dense(1, name="out")(keras.layers.Dropout(0.5, name="drop")(h))
        >>> trunk, head = split_before(keras.Model(x, y), lambda layer: layer.name == "drop")
        >>> tuple(trunk.output.shape), [layer.name for layer in head.layers][1:]
        ((None, 3), ['drop', 'out'])
    """
    import keras

    inner = _functional(model) or model
    fresh = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"{t.name}_") for t in inner.inputs]
    seen: dict = {}
    fed: dict = {}
    inputs = fresh[0] if len(fresh) == 1 else fresh
    output = _run(inner, inputs, seen, training_for, fed)
    flat = keras.Model(inputs, output, name=f"{model.name}_flat")
    cut_layer = next((layer for layer in flat.layers if first(layer)), None)
    if cut_layer is None or len(fed[cut_layer.name]) != 1:
        return None
    cut = fed[cut_layer.name][0]
    try:
        head = keras.Model(cut, output, name=f"{model.name}_head")
    except ValueError:  # the output also depends on tensors before the cut
        return None
    return keras.Model(inputs, cut, name=f"{model.name}_trunk"), head
