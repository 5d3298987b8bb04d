"""Callbacks that keep their state across kill -9: best checkpoint, early stopping and the
learning-rate schedule resume from what the run wrote to disk."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cxr_keras.training.callbacks import (
    BestCheckpoint,
    ResumableEarlyStopping,
    ResumableReduceLROnPlateau,
    monitor_mode,
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
