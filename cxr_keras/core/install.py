"""Which parts of cxr-keras an install can run: the base install reads films and writes
answers (with the ``[serve]`` extra, from an exported model); everything that needs
TensorFlow, Keras or the statistics stack needs the ``[full]`` extra.

A stage that is run without ``[full]`` stops with one line that says what to install
(:func:`full_install_message`), not a traceback ending in "No module named 'keras'".
"""

from __future__ import annotations

__all__ = ["FULL_EXTRA_MODULES", "FULL_INSTALL", "MissingExtraError", "full_install_message"]

FULL_INSTALL = "pip install 'cxr-keras[full]'"

# The import names of the [full] extra's distributions (setup.cfg; a test keeps them in step).
FULL_EXTRA_MODULES = frozenset(
    {
        "tensorflow",
        "keras",
        "keras_tuner",
        "tensorboard",
        "scipy",
        "sklearn",
        "matplotlib",
        "tqdm",
    }
)


class MissingExtraError(ImportError):
    """A stage needs an extra that this install lacks; the message says what to install."""


def full_install_message(exc: ImportError, *, what: str = "this command") -> str | None:
    """The line to print when ``exc`` is a missing ``[full]`` dependency, else None.

    Example:
        >>> line = full_install_message(ModuleNotFoundError("no keras", name="keras.src"))
        >>> line.endswith("(no module named 'keras'): pip install 'cxr-keras[full]'")
        True
        >>> full_install_message(ModuleNotFoundError("no yaml", name="yaml")) is None
        True
    """
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or name not in FULL_EXTRA_MODULES:
        return None
    return (
        f"{what} needs the [full] extra (TensorFlow, Keras, scikit-learn and the rest), "
        f"which this install lacks (no module named {name!r}): {FULL_INSTALL}"
    )
