"""Training callbacks that survive ``kill -9`` and resumption.

Keras' own ModelCheckpoint, EarlyStopping and ReduceLROnPlateau keep their state (the
best value so far, epochs without improvement) in memory only; after a restart they start
from scratch. The versions here take that state from what the run wrote to disk, so a
resumed run saves, stops and lowers the learning rate as the uninterrupted run would.

Keras' BackupAndRestore writes its weights file in place: a kill during the write leaves
a truncated HDF5 file, and its fallback to the previous backup catches only ``OSError``
(h5py raises ``RuntimeError`` on such a file), so the resume crashed. :class:`AtomicBackup`
writes each backup under a temporary name and records the weights' SHA-256 in its
metadata; a resume takes the newest weights and metadata that agree.

Example:
    >>> monitor_mode("val_auc"), monitor_mode("val_loss")
    ('max', 'min')
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import keras

__all__ = [
    "AtomicBackup",
    "BestCheckpoint",
    "LogLearningRate",
    "ResumableEarlyStopping",
    "ResumableReduceLROnPlateau",
    "backup_candidates",
    "monitor_mode",
    "newest_backup",
    "plateau_state",
]

log = logging.getLogger("cxr_keras.train")

# a backup folder's files: the newest pair, the one before it, and one being written
BACKUP_WEIGHTS = ("latest.weights.h5", "previous.weights.h5", ".new.weights.h5")
BACKUP_METADATA = ("training_metadata.json", "previous_metadata.json", ".new_metadata.json")
# what Keras' own BackupAndRestore(double_checkpoint=True) wrote (runs started before)
KERAS_PAIRS = (
    ("latest.weights.h5", "training_metadata.json"),
    ("latest.weights.h5.bkp", "training_metadata.json.bkp"),
)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_metadata(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) and isinstance(meta.get("epoch"), int) else None
    except (OSError, ValueError):  # missing, or cut short by a kill
        return None


def backup_candidates(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """(weights file, epoch) of every consistent backup in ``folder``, newest first: a
    metadata file whose recorded SHA-256 matches a weights file (or, for a run started
    with Keras' own BackupAndRestore, its pairs as they are).

    Example:
        >>> backup_candidates("runs/demo/train/backup_0")  # doctest: +SKIP
        [(PosixPath('runs/demo/train/backup_0/latest.weights.h5'), 3),
         (PosixPath('runs/demo/train/backup_0/previous.weights.h5'), 2)]
    """
    folder = Path(folder)
    found, hashes = [], {}
    for meta_name in BACKUP_METADATA:
        meta = _read_metadata(folder / meta_name)
        if meta is None or "weights_sha256" not in meta:
            continue
        for weights_name in BACKUP_WEIGHTS:
            weights = folder / weights_name
            if weights.is_file() and weights_name not in hashes:
                hashes[weights_name] = _sha256(weights)
            if hashes.get(weights_name) == meta["weights_sha256"]:
                found.append((weights, meta["epoch"]))
                break
    for weights_name, meta_name in KERAS_PAIRS:
        meta = _read_metadata(folder / meta_name)
        if meta is not None and "weights_sha256" not in meta and (folder / weights_name).is_file():
            found.append((folder / weights_name, meta["epoch"]))
    return sorted(found, key=lambda pair: -pair[1])


def newest_backup(folder: str | os.PathLike) -> tuple[Path, int] | None:
    """(weights file, epoch to continue at) of the newest consistent backup, or None.

    Example:
        >>> newest_backup("runs/demo/train/backup_0")  # doctest: +SKIP
        (PosixPath('runs/demo/train/backup_0/latest.weights.h5'), 3)
    """
    candidates = backup_candidates(folder)
    return candidates[0] if candidates else None


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (per epoch, kept after training) whose backups survive a
    kill at any moment (see the module docstring): the weights and their metadata are
    written under temporary names, the metadata records the weights' SHA-256, and the
    pair then replaces the newest, which becomes the previous one. A resume loads the
    newest pair that agrees; a backup that fails to load is logged and the one before
    it is tried."""

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)

    def on_train_begin(self, logs=None):
        for weights, epoch in backup_candidates(self.backup_dir):
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            try:
                self.model.load_weights(weights)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("backup %s does not load (%s); trying the one before", weights, exc)
                continue
            self.model._initial_epoch = epoch  # what BackupAndRestore sets to resume
            return

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (latest, previous, new), (meta_latest, meta_previous, meta_new) = (
            [folder / name for name in BACKUP_WEIGHTS],
            [folder / name for name in BACKUP_METADATA],
        )
        self.model.save_weights(new, overwrite=True)
        meta_new.write_text(
            json.dumps(
                {
                    "epoch": self._current_epoch,
                    "batch": self._last_batch_seen,
                    "weights_sha256": _sha256(new),
                }
            ),
            encoding="utf-8",
        )
        # every state between these renames keeps a pair that agrees (by its hash)
        for current, older in ((latest, previous), (meta_latest, meta_previous)):
            if current.is_file():
                os.replace(current, older)
        os.replace(new, latest)
        os.replace(meta_new, meta_latest)


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

    def __init__(
        self, weights_path: str | os.PathLike, monitor: str, mode: str, *, saved_model=None
    ):
        """``saved_model``: the model whose weights are kept (default: the one being fit;
        a head trained on cached features keeps its full model's, whose layers it shares)."""
        super().__init__()
        self.saved_model = saved_model
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
        (self.saved_model or self.model).save_weights(tmp)
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
