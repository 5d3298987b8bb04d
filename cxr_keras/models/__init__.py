"""Models: the backbone registry, the head, the masked loss and metrics, and assembly.

Example:
    >>> from cxr_keras.config import ImageSpec, ModelConfig
    >>> from cxr_keras.models import build_model
    >>> built = build_model(ModelConfig(filters=[8]), spec=ImageSpec(size=32), labels=["A", "B"])
    >>> built.model.output.shape
    (None, 2)
"""

from cxr_keras.models.backbones import BACKBONES, WeightsUnavailableError, build_backbone
from cxr_keras.models.build import BuiltModel, build_model, set_trainable, trainable_summary
from cxr_keras.models.losses import LabelAUC, MaskedBinaryLoss, training_metrics

__all__ = [
    "BACKBONES",
    "BuiltModel",
    "LabelAUC",
    "MaskedBinaryLoss",
    "WeightsUnavailableError",
    "build_backbone",
    "build_model",
    "set_trainable",
    "trainable_summary",
    "training_metrics",
]
