"""Training callbacks that survive ``kill -9`` and resumption.

Keras' own ModelCheckpoint, EarlyStopping and ReduceLROnPlateau keep their state (the
best value so far, epochs without improvement) in memory only; after a restart they start
from scratch. The versions here take that state from what the run wrote to disk, so a
resumed run saves, stops and lowers the learning rate as the uninterrupted run would.

Example:
    >>> monitor_mode("val_auc"), monitor_mode("val_loss")
    ('max', 'min')
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

__all__ = [
    "BestCheckpoint",
    "LogLearningRate",
    "ResumableEarlyStopping",
    "ResumableReduceLROnPlateau",
    "monitor_mode",
    "plateau_state",
]


def monitor_mode(monitor: str) -> str:
    """``min`` for losses, ``max`` for the other metrics (AUC, precision, ...)."""
    return "min" if monitor.endswith("loss") else "max"


def _better(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def plateau_state(values: list[float], mode: str) -> tuple[float | None, int]:
    """(best value, epochs since it) of a metric's history, as the Keras callbacks count.

    Example:
        >>> plateau_state([0.6, 0.8, 0.7, 0.75], "max")
        (0.8, 2)
    """
    best, wait = None, 0
    for value in values:
        if _better(value, best, mode):
            best, wait = value, 0
        else:
            wait += 1
    return best, wait


class LogLearningRate(keras.callbacks.Callback):
    """Put the learning rate in the epoch logs (before the CSV logger writes them)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class BestCheckpoint(keras.callbacks.Callback):
    """Keep the weights of the best epoch by ``monitor``, written atomically, with
    ``best.json`` (epoch and value) beside them; a resumed run continues from that record,
    so a better epoch is never lost and a worse one never overwrites the best."""

    def __init__(self, weights_path: str | os.PathLike, monitor: str, mode: str):
        super().__init__()
        self.weights_path = Path(weights_path)
        self.record_path = self.weights_path.with_suffix(".json")
        self.monitor, self.mode = monitor, mode
        record = self.record()
        self.best = record["value"] if record else None

    def record(self) -> dict | None:
        """The saved best epoch and value, or None."""
        if not self.record_path.is_file() or not self.weights_path.is_file():
            return None
        return json.loads(self.record_path.read_text(encoding="utf-8"))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not _better(float(value), self.best, self.mode):
            return
        tmp = self.weights_path.with_name(f".{self.weights_path.stem}.tmp.weights.h5")
        self.model.save_weights(tmp)
        os.replace(tmp, self.weights_path)
        record = self.record_path.with_name(f".{self.record_path.name}.tmp")
        record.write_text(
            json.dumps({"epoch": int(epoch), "value": float(value), "monitor": self.monitor}),
            encoding="utf-8",
        )
        os.replace(record, self.record_path)
        self.best = float(value)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that starts from the best value and wait of the phase so far
    (``mode`` must be ``max`` or ``min``)."""

    def __init__(self, history: list[float], **kwargs):
        super().__init__(**kwargs)
        self._history = list(history)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best, wait = plateau_state(self._history, self.mode)
        if best is not None:
            self.best, self.wait = best, wait


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that starts from the best value and wait of the phase so far (a
    learning-rate drop, visible in the logged rates, restarts the wait as Keras does)."""

    def __init__(self, history: list[float], rates: list[float], **kwargs):
        super().__init__(**kwargs)
        self._history, self._rates = list(history), list(rates)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best, wait = plateau_state(self._history, self.mode)
        last_drop = max(
            (i for i in range(1, len(self._rates)) if self._rates[i] < self._rates[i - 1]),
            default=None,
        )
        if last_drop is not None:
            wait = min(wait, len(self._history) - last_drop)
        if best is not None:
            self.best, self.wait = best, wait
