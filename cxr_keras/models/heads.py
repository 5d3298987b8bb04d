"""The classification head: [1x1 conv transition] -> pooling -> dropout -> optional
Dense(relu, L2) -> Dense(n) logits.

The last layer is named ``logits`` and stays float32 under mixed precision; the model
outputs logits (losses use ``from_logits=True``) and the Predictor turns them into
probabilities and decisions.

Example:
    >>> import keras
    >>> features = keras.Input((7, 7, 32))
    >>> logits = build_head(features, n_labels=3, pooling="lse", dense_units=16, transition=8)
    >>> head = keras.Model(features, logits)
    >>> head.output.shape, head.get_layer("transition").output.shape
    ((None, 3), (None, 7, 7, 8))
"""

from __future__ import annotations

__all__ = ["build_head"]


def build_head(
    features,
    n_labels: int,
    *,
    pooling: str = "avg",
    lse_r: float = 10.0,
    dropout: float = 0.0,
    dense_units: int = 0,
    dense_l2: float = 0.0,
    seed=None,
    transition: int = 0,
):
    """Apply the head to a feature map (B, h, w, c) and return the logits tensor (B, n).

    ``transition`` > 0 first maps the feature map to that many channels with a 1x1
    convolution (ReLU), the "transition layer" of Wang et al. (ChestX-ray8, 2017) that
    brings ResNet-50's 2048 channels to 1024 before pooling; Grad-CAM can target it by
    its name, ``transition``.
    """
    import keras
    from keras import layers

    from cxr_keras.models.layers import LogSumExpPooling

    if n_labels < 1:
        raise ValueError(f"a model needs at least one label, got {n_labels}")
    if transition < 0:
        raise ValueError(f"transition channels must be >= 0, got {transition}")
    if transition:
        features = layers.Conv2D(transition, 1, activation="relu", name="transition")(features)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pool_avg")(features)
    elif pooling == "lse":
        x = LogSumExpPooling(r=lse_r, name="pool_lse")(features)
    else:
        raise ValueError(f"pooling must be avg or lse, got {pooling!r}")
    if dropout > 0:
        x = layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    if dense_units > 0:
        x = layers.Dense(
            dense_units,
            activation="relu",
            name="head_dense",
            kernel_regularizer=keras.regularizers.L2(dense_l2) if dense_l2 else None,
        )(x)
        if dropout > 0:
            x = layers.Dropout(dropout, seed=seed, name="head_dense_dropout")(x)
    return layers.Dense(n_labels, dtype="float32", name="logits")(x)
