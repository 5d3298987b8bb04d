"""Callbacks that keep their state across kill -9: best checkpoint, early stopping and the
learning-rate schedule resume from what the run wrote to disk."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cxr_keras.training.callbacks import (
    AtomicBackup,
    BestCheckpoint,
    ResumableEarlyStopping,
    ResumableReduceLROnPlateau,
    monitor_mode,
    newest_backup,
    plateau_state,
)


@pytest.fixture
def model():
    inputs = keras.Input((3,))
    m = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


def test_plateau_state_and_modes():
    assert plateau_state([0.5, 0.7, 0.6, 0.65], "max") == (0.7, 2)
    assert plateau_state([1.0, 0.8, 0.9], "min") == (0.8, 1)
    assert plateau_state([], "max") == (None, 0)
    assert monitor_mode("val_auc_edema") == "max" and monitor_mode("val_loss") == "min"


def test_best_checkpoint_keeps_the_best_and_resumes_from_its_record(model, tmp_path):
    path = tmp_path / "best.weights.h5"
    first = BestCheckpoint(path, "val_auc", "max")
    first.set_model(model)
    first.on_epoch_end(0, {"val_auc": 0.7})
    saved = [w.numpy().copy() for w in model.weights]
    model.weights[0].assign(model.weights[0] + 1.0)
    first.on_epoch_end(1, {"val_auc": 0.6})  # worse: not saved
    assert json.loads(path.with_suffix(".json").read_text()) == {
        "epoch": 0,
        "value": 0.7,
        "monitor": "val_auc",
    }
    resumed = BestCheckpoint(path, "val_auc", "max")  # a new process after a kill
    resumed.set_model(model)
    assert resumed.best == 0.7
    resumed.on_epoch_end(2, {"val_auc": 0.65})  # still worse than the recorded best
    model.load_weights(path)
    for before, after in zip(saved, model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    resumed.on_epoch_end(3, {"val_auc": 0.8})
    assert resumed.record()["epoch"] == 3
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left over


def test_early_stopping_resumes_its_patience(model):
    stop = ResumableEarlyStopping([0.8, 0.7], monitor="val_auc", mode="max", patience=3)
    stop.set_model(model)
    stop.on_train_begin()
    assert (stop.best, stop.wait) == (0.8, 1)
    stop.on_epoch_end(5, {"val_auc": 0.75})
    stop.on_epoch_end(6, {"val_auc": 0.75})
    assert model.stop_training  # 3 epochs without improvement in all, not 2


def test_learning_rate_schedule_resumes_after_a_drop(model):
    rates = [0.01, 0.01, 0.005, 0.005]
    reduce = ResumableReduceLROnPlateau(
        [0.6, 0.7, 0.65, 0.66], rates, monitor="val_auc", mode="max", patience=2, factor=0.5
    )
    reduce.set_model(model)
    reduce.on_train_begin()
    # best 0.7 two epochs ago, but the rate dropped one epoch ago: the wait restarted then
    assert reduce.best == 0.7 and reduce.wait == 2 - 0


def _fit(model, folder, epochs: int) -> int:
    """Fit with the backup callback; returns the epoch the fit began at."""
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[AtomicBackup(folder)])
    return epochs - len(history.history["loss"])


def _weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def _names(folder):
    return {
        key: folder / name
        for key, name in (
            ("latest", "latest.weights.h5"),
            ("previous", "previous.weights.h5"),
            ("new", ".new.weights.h5"),
            ("meta", "training_metadata.json"),
            ("meta_previous", "previous_metadata.json"),
            ("meta_new", ".new_metadata.json"),
        )
    }


def _while_saving_epoch_two(f):
    """Back to the moment the pair of epoch 2 was written but not yet renamed."""
    f["latest"].replace(f["new"])
    f["meta"].replace(f["meta_new"])
    f["previous"].replace(f["latest"])
    f["meta_previous"].replace(f["meta"])


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# the renames that put a written pair in place, in AtomicBackup's order
RENAMES = [
    ("latest", "previous"),
    ("meta", "meta_previous"),
    ("new", "latest"),
    ("meta_new", "meta"),
]


def _after_renames(count: int):
    def kill(f):
        _while_saving_epoch_two(f)
        for source, target in RENAMES[:count]:
            f[source].replace(f[target])

    return kill


def _half_written(f):
    _while_saving_epoch_two(f)
    f["meta_new"].unlink()
    _cut(f["new"])


# (the moment of the kill, how it leaves the backup folder, the epoch a resume continues at)
KILLS = [
    ("while the new weights were written", _half_written, 1),
    *((f"after {n} of the {len(RENAMES)} renames", _after_renames(n), 2) for n in range(4)),
    ("weights written in place and cut short (Keras' own way)", lambda f: _cut(f["latest"]), 1),
    ("metadata cut short", lambda f: f["meta"].write_text('{"epoch": 2, "ba'), 1),
]


@pytest.mark.parametrize(("moment", "kill", "resume_at"), KILLS, ids=[k[0] for k in KILLS])
def test_a_kill_at_any_moment_of_a_backup_resumes_from_a_whole_one(
    moment, kill, resume_at, tmp_path
):
    import shutil

    def fresh():
        inputs = keras.Input((3,))
        m = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return m

    model = fresh()
    clean = tmp_path / "clean"
    assert _fit(model, clean, 1) == 0
    weights = {1: _weights(model)}
    assert _fit(model, clean, 2) == 1  # resumed: one epoch left
    weights[2] = _weights(model)
    record = json.loads((clean / "training_metadata.json").read_text())
    assert record["epoch"] == 2 and len(record["weights_sha256"]) == 64
    assert newest_backup(clean) == (clean / "latest.weights.h5", 2)

    folder = tmp_path / "killed"
    shutil.copytree(clean, folder)
    kill(_names(folder))
    assert newest_backup(folder)[1] == resume_at, moment
    restored = fresh()
    backup = AtomicBackup(folder)
    backup.set_model(restored)
    backup.on_train_begin()
    assert restored._initial_epoch == resume_at
    for got, want in zip(_weights(restored), weights[resume_at], strict=True):
        np.testing.assert_array_equal(got, want)
    assert _fit(restored, folder, 3) == resume_at  # and training goes on from there
    assert newest_backup(folder)[1] == 3
