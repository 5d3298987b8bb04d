"""cxr-keras: chest X-ray classification with explanations, on Keras 3 and TensorFlow.

Stages (each a subcommand of the ``cxr-keras`` command, and a module with its own command
line, ``python -m cxr_keras.<stage>``) share one config format (:mod:`cxr_keras.config`)
and one data layer (:mod:`cxr_keras.data`).
"""

__version__ = "0.1.0"
