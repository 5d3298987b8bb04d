"""The backbone registry: name -> how to build it flat, its input scaling, its feature layer.

Backbones are built *flat* on the model's own graph (``input_tensor=``), not nested as one
layer, so every inner layer (the last convolution for Grad-CAM, a named block to unfreeze
from) stays reachable by name from the outer model.

Example:
    >>> import keras
    >>> inputs = keras.Input((64, 64, 3))
    >>> built = build_backbone("custom_cnn", inputs, filters=[8, 16])
    >>> built.feature_layer, tuple(built.features.shape)
    ('last_conv_relu', (None, 32, 32, 16))
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cxr_keras.core.errors import ConfigError
from cxr_keras.core.paths import resolve_path

__all__ = [
    "BACKBONES",
    "BACKBONE_NAMES",
    "BackboneSpec",
    "BuiltBackbone",
    "WeightsUnavailableError",
    "build_backbone",
]


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded or read."""


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows of a backbone.

    Attributes:
        name: the config name.
        constructor: the ``keras.applications`` function, or None for the custom CNN.
        scaling: the input scaling it expects (see :class:`cxr_keras.models.layers.BackboneInput`).
        channels: input channels (ImageNet models: 3).
        min_size: the smallest input side it accepts.
        imagenet: whether ImageNet weights exist.
    """

    name: str
    constructor: Callable | None
    scaling: str
    channels: int = 3
    min_size: int = 32
    imagenet: bool = True


@dataclass
class BuiltBackbone:
    """A backbone built on a given input tensor."""

    features: object  # the KerasTensor of the last feature map
    feature_layer: str  # the layer that produces it (Grad-CAM's default target)
    layer_names: list[str]  # the backbone's own layers, input to output


def _applications(name: str) -> Callable:
    import keras

    return getattr(keras.applications, name)


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("custom_cnn", None, "tf", channels=1, min_size=16, imagenet=False),
        BackboneSpec("densenet121", lambda: _applications("DenseNet121"), "torch"),
        BackboneSpec("resnet50", lambda: _applications("ResNet50"), "caffe"),
        BackboneSpec("efficientnetb0", lambda: _applications("EfficientNetB0"), "255"),
        BackboneSpec("inceptionv3", lambda: _applications("InceptionV3"), "tf", min_size=75),
        BackboneSpec("mobilenetv3small", lambda: _applications("MobileNetV3Small"), "255"),
        BackboneSpec("mobilenetv3large", lambda: _applications("MobileNetV3Large"), "255"),
    )
}

#: the registry's names, in order: the choices of ``model.backbone``
BACKBONE_NAMES = tuple(BACKBONES)


def _weights_argument(spec: BackboneSpec, weights: str) -> str | None:
    if weights in ("none", "", None):
        return None
    if weights == "imagenet":
        if not spec.imagenet:
            raise ConfigError(
                f"model.weights: {spec.name} has no ImageNet weights; use none "
                "or the path of a weights file"
            )
        return "imagenet"
    path = resolve_path(weights)
    if not path.is_file():
        raise ConfigError(
            f"model.weights: {weights!r} is neither none, imagenet nor an existing weights file"
        )
    return str(path)


def _custom_cnn(inputs, filters: Sequence[int], normalization: str = "batch"):
    """Blocks of two 3x3 Conv-BN-ReLU (Conv-ReLU with ``normalization="none"``) and a 2x2
    max-pool; the last block is not pooled so its feature map keeps a useful resolution
    for Grad-CAM. A model over the graph's source inputs, as ``keras.applications`` builds
    with ``input_tensor``.

    Inputs arrive in [-1, 1] and convs are He-initialised so that pre-BatchNorm activations
    have roughly unit variance from the first step: BatchNorm's moving variance starts at
    1, and with inputs in [0, 1] the first layer's true variance is ~0.02, so inference
    (which uses the moving statistics) saw a collapsed network for the first ~40 steps and
    short runs scored val AUC 0.5 for three epochs. Momentum 0.9 lets the statistics keep
    up when there are few steps."""
    import keras
    from keras import layers
    from keras.src.ops.operation_utils import get_source_inputs

    batch_norm = normalization == "batch"
    x = inputs
    for b, width in enumerate(filters):
        last = b == len(filters) - 1
        for c in range(2):
            name = "last_conv" if last and c == 1 else f"block{b + 1}_conv{c + 1}"
            x = layers.Conv2D(
                width,
                3,
                padding="same",
                use_bias=not batch_norm,
                kernel_initializer="he_normal",
                name=name,
            )(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = layers.ReLU(name=f"{name}_relu")(x)
        if not last:
            x = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
    return keras.Model(get_source_inputs(inputs), x, name="custom_cnn")


def build_backbone(
    name: str,
    inputs,
    *,
    weights: str = "none",
    filters: Sequence[int] = (32, 64, 128, 256),
    normalization: str = "batch",
) -> BuiltBackbone:
    """Build the named backbone flat on ``inputs`` (a KerasTensor already scaled for it).

    ``weights``: ``none``, ``imagenet`` or a weights file path. When ImageNet weights cannot
    be downloaded (no internet), :class:`WeightsUnavailableError` says how to provide them.
    """
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone: unknown {name!r}; available: {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    size = min(int(d) for d in inputs.shape[1:3])
    if size < spec.min_size:
        raise ConfigError(
            f"image.size: {name} needs inputs of at least {spec.min_size} px, got {size}"
        )
    weights_arg = _weights_argument(spec, weights)
    before = {id(layer) for layer in _graph_layers(inputs)}
    if spec.constructor is None:
        model = _custom_cnn(inputs, filters, normalization)
        if weights_arg is not None:
            model.load_weights(weights_arg)
    else:
        kwargs = {"include_preprocessing": True} if name.startswith("mobilenetv3") else {}
        try:
            with _weights_from_file(weights_arg):
                model = spec.constructor()(
                    include_top=False,
                    weights="imagenet" if weights_arg not in (None, "imagenet") else weights_arg,
                    input_tensor=inputs,
                    **kwargs,
                )
        except Exception as exc:  # Keras raises a bare Exception on a failed download
            if weights_arg == "imagenet" and "fetch failure" in str(exc):
                url = re.search(r"https?://\S+?\.h5", str(exc))
                raise WeightsUnavailableError(
                    f"could not download the ImageNet weights of {name} (no internet?): "
                    f"{exc}. On a machine with internet, download "
                    f"{url.group(0) if url else 'the no-top weights file Keras fetches'} "
                    "and either copy it into ~/.keras/models/ (Keras then finds it offline) "
                    "or set model.weights to its path."
                ) from None
            if weights_arg not in (None, "imagenet"):
                raise WeightsUnavailableError(
                    f"could not load backbone weights {weights_arg} into {name}: {exc}"
                ) from None
            raise
    names = [layer.name for layer in model.layers if id(layer) not in before]
    if weights_arg is None:
        _track_batch_statistics(model.layers, names)
    producer = model.output._keras_history.operation
    return BuiltBackbone(model.output, producer.name, names)


FROM_SCRATCH_BN_MOMENTUM = 0.99


def _track_batch_statistics(layers, names: Sequence[str]) -> None:
    """From scratch, let BatchNorm's moving statistics follow the training ones within a
    short run: MobileNetV3 sets momentum 0.999 (made for ImageNet-length training), and
    after a few hundred steps its moving variance is still near its initial 1, so the
    model answers one constant at inference (validation AUC 0.5) while it trains well."""
    import keras

    backbone = set(names)
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name in backbone:
            layer.momentum = min(layer.momentum, FROM_SCRATCH_BN_MOMENTUM)


@contextlib.contextmanager
def _weights_from_file(path: str | None):
    """Build a ``keras.applications`` model exactly as for ``weights="imagenet"`` (some,
    like EfficientNet, add layers only then), reading the weights from a local file
    instead of downloading them."""
    if path in (None, "imagenet"):
        yield
        return
    from keras.src.utils import file_utils

    original = file_utils.get_file
    file_utils.get_file = lambda *args, **kwargs: path
    try:
        yield
    finally:
        file_utils.get_file = original


def _graph_layers(tensor) -> list:
    """The layers upstream of a KerasTensor (those built before the backbone)."""
    seen, stack, found = set(), [tensor], []
    while stack:
        node = stack.pop()._keras_history
        layer = node.operation
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        for parent in layer._inbound_nodes[node.node_index].input_tensors:
            stack.append(parent)
    return found
