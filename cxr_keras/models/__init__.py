"""Models: the backbone registry, the head, the masked loss and metrics, and assembly.

Example:
    >>> from cxr_keras.config import ImageSpec, ModelConfig
    >>> from cxr_keras.models import build_model
    >>> built = build_model(ModelConfig(filters=[8]), spec=ImageSpec(size=32), labels=["A", "B"])
    >>> built.model.output.shape
    (None, 2)
"""

from __future__ import annotations

from cxr_keras.core.lazy import lazy_exports

#: public name -> the module that defines it. Imported on first use: the run's config
#: reads this package's settings, and reading a config must not load TensorFlow.
_EXPORTS = {
    "BACKBONES": "cxr_keras.models.backbones",
    "WeightsUnavailableError": "cxr_keras.models.backbones",
    "build_backbone": "cxr_keras.models.backbones",
    "BuiltModel": "cxr_keras.models.build",
    "build_model": "cxr_keras.models.build",
    "set_trainable": "cxr_keras.models.build",
    "trainable_summary": "cxr_keras.models.build",
    "LabelAUC": "cxr_keras.models.losses",
    "MaskedBinaryLoss": "cxr_keras.models.losses",
    "training_metrics": "cxr_keras.models.losses",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
