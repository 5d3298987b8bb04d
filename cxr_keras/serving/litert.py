"""Running a LiteRT (``.tflite``) export: the interpreter of ``ai-edge-litert``, the LiteRT
runtime without TensorFlow (the ``[serve]`` extra), or TensorFlow's own ``tf.lite`` where
TensorFlow is installed anyway and ``ai-edge-litert`` is not (the export's check).

One interpreter holds one input shape at a time: :class:`LiteRTRunner` resizes it when a
batch of another size comes, and serialises calls (an interpreter is not thread-safe).

Example:
    >>> runner = LiteRTRunner("export/litert/model.tflite")  # doctest: +SKIP
    >>> {name: a.shape for name, a in runner.run(images).items()}  # doctest: +SKIP
    {'StatefulPartitionedCall_1:0': (4, 1), 'StatefulPartitionedCall_1:1': (4,)}
"""

from __future__ import annotations

import os
import threading

import numpy as np

from cxr_keras.core.install import MissingExtraError

__all__ = ["LiteRTRunner", "litert_interpreter"]


def litert_interpreter(path: str | os.PathLike, *, allow_tensorflow: bool = False):
    """A LiteRT interpreter of the model file at ``path``, on every core of this process.

    ``allow_tensorflow``: fall back to ``tf.lite`` when ``ai-edge-litert`` is missing (the
    serving path never does: it must not import TensorFlow)."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError:
        if not allow_tensorflow:
            raise MissingExtraError(
                "the litert runtime needs ai-edge-litert (LiteRT without TensorFlow): "
                "pip install 'cxr-keras[serve]' (Linux and macOS wheels)"
            ) from None
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 (the class, under its usual name)
    return Interpreter(model_path=str(path), num_threads=threads)


class LiteRTRunner:
    """A ``.tflite`` model behind one lock: ``run(images) -> {output name: array}``."""

    def __init__(self, path: str | os.PathLike, *, allow_tensorflow: bool = False):
        self.interpreter = litert_interpreter(path, allow_tensorflow=allow_tensorflow)
        self.input = self.interpreter.get_input_details()[0]
        self._shape: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    @property
    def output_names(self) -> list[str]:
        """The output tensors' names, highest rank first (the probabilities are rank 2;
        LiteRT does not keep Keras' output order)."""
        details = self.interpreter.get_output_details()
        return [d["name"] for d in sorted(details, key=lambda d: -len(d["shape"]))]

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images, np.float32)
        with self._lock:
            if images.shape != self._shape:
                self.interpreter.resize_tensor_input(self.input["index"], images.shape)
                self.interpreter.allocate_tensors()
                self._shape = images.shape
            self.interpreter.set_tensor(self.input["index"], images)
            self.interpreter.invoke()
            return {
                d["name"]: np.array(self.interpreter.get_tensor(d["index"]))
                for d in self.interpreter.get_output_details()
            }
