"""Training end to end: the artifact, reloading, resuming after kill -9, phases, strategy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import kill_when, subprocess_env, tiny_config

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.artifact.store import load_artifact
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.data.io import load_image
from cxr_keras.sample_data import sample_files
from cxr_keras.training.callbacks import newest_backup
from cxr_keras.training.train import train

REPO = Path(__file__).resolve().parents[1]


def test_artifact_describes_the_model(trained_artifact):
    meta = trained_artifact.meta
    assert meta["schema_version"] == 1 and meta["labels"] == ["PNEUMONIA"]
    assert meta["image_spec"]["size"] == [64, 64]
    assert meta["thresholds"] == {"default": {"PNEUMONIA": 0.5}}
    assert meta["decision_rule"] == "default" and meta["temperature"] == 1.0
    assert meta["model"]["feature_layer"] == "last_conv_relu"
    assert set(meta["versions"]) >= {"tensorflow", "keras", "cxr_keras"}
    assert meta["training"]["epochs_run"] == 3 and len(meta["training"]["history"]) == 3
    assert 0.0 <= meta["metrics"]["validation"]["auc"] <= 1.0
    assert meta["data"]["split_seed"] == 7
    assert meta["data"]["summary"]["splits"]["val"]["images"] > 0
    work = trained_artifact.path / "train"
    assert {"config.yaml", "manifest.csv", "log.csv", "best.weights.h5"} <= {
        p.name for p in work.iterdir()
    }


def test_artifact_reloads_in_a_fresh_process_with_identical_predictions(trained_artifact, tmp_path):
    files = sample_files("kermany")[:6]
    images = np.stack([load_image(f, trained_artifact.image_spec) for f in files])
    np.save(tmp_path / "images.npy", images)
    here = trained_artifact.model.predict(images, verbose=0)
    script = (
        "import sys, numpy as np\n"
        "from cxr_keras.artifact.store import load_artifact\n"
        "a = load_artifact(sys.argv[1])\n"
        "np.save(sys.argv[3], a.model.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(trained_artifact.path),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npy"),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), here)


def test_the_saved_model_answers_the_same_however_it_is_called(trained_artifact):
    """``model(x)`` without ``training=False``, as most user code calls a Keras model:
    no augmentation, no BatchNorm update, the same logits as ``predict``."""
    import keras

    model = keras.models.load_model(trained_artifact.path / "model.keras", safe_mode=True)
    files = sample_files("kermany")[:8]
    images = np.stack([load_image(f, trained_artifact.image_spec) for f in files])
    before = model.predict(images, verbose=0)
    plain = [np.asarray(model(images)) for _ in range(2)]
    np.testing.assert_allclose(plain[0], before, atol=1e-5)
    np.testing.assert_allclose(plain[1], before, atol=1e-5)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)  # stats kept
    # in training, the augmentation inside still runs
    assert not np.allclose(np.asarray(model(images, training=True)), before, atol=1e-3)


def test_predictor_turns_logits_into_probabilities_and_decisions(trained_artifact):
    predictor = Predictor(trained_artifact)
    files = sample_files("kermany")[:4]
    result = predictor.predict_files(files)
    images = np.stack([load_image(f, predictor.spec) for f in files])
    logits = trained_artifact.model.predict(images, verbose=0)
    np.testing.assert_allclose(result.logits, logits, atol=1e-6)
    np.testing.assert_allclose(result.probabilities, 1 / (1 + np.exp(-logits)), atol=1e-6)
    np.testing.assert_array_equal(result.decisions, result.probabilities >= 0.5)


def test_finished_run_is_not_trained_again_and_a_changed_config_is_refused(trained_artifact):
    run_dir = trained_artifact.path
    before = (run_dir / "model.keras").stat().st_mtime_ns
    again = train(tiny_config(), run_dir=run_dir, progress=False)
    assert (run_dir / "model.keras").stat().st_mtime_ns == before
    assert again.meta["created"] == trained_artifact.meta["created"]
    with pytest.raises(ConfigError, match=r"different config \(sections \['training'\]"):
        train(tiny_config(training={"epochs": 4}), run_dir=run_dir, progress=False)


def test_killed_training_resumes_at_the_next_epoch(tmp_path):
    cfg = tiny_config("resume", training={"epochs": 6, "early_stopping_patience": 0})
    config = tmp_path / "resume.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    log = tmp_path / "runs" / "resume" / "train" / "log.csv"
    command = [sys.executable, "-m", "cxr_keras.train", "--config", str(config)]
    # wait for two finished epochs (header + 2 rows)
    kill_when(command, tmp_path, lambda: log.is_file() and len(log.read_text().splitlines()) >= 3)
    rows_at_kill = len(log.read_text().splitlines()) - 1
    assert 2 <= rows_at_kill < 6, "the kill came too late to test a resume"
    # The kill that matters: an epoch's row reached the log, its backup did not. Make that
    # state: a row for the epoch the backup resumes at, with values no epoch gives.
    resume_at = newest_backup(tmp_path / "runs" / "resume" / "train" / "backup_0")[1]
    lines = log.read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    phantom = dict(zip(header, last, strict=True))
    phantom.update(epoch=str(resume_at), loss="12345.0", val_auc="0.0")
    lines = [ln for ln in lines if not ln.startswith(f"{resume_at},")]
    log.write_text("\n".join([*lines, ",".join(phantom[k] for k in header)]) + "\n")
    state = tmp_path / "runs" / "resume" / "train" / "state.json"
    first_s = json.loads(state.read_text())["wall_time_s"]  # the first process's kept epochs
    began = time.time()
    second = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    second_s = time.time() - began
    assert second.returncode == 0, second.stderr
    started = int(
        next(line for line in second.stdout.splitlines() if line.startswith("Epoch "))
        .split()[1]
        .split("/")[0]
    )
    assert started >= rows_at_kill  # resumed from its backup: finished epochs kept
    rows = log.read_text().splitlines()[1:]
    epochs = [int(line.split(",")[0]) for line in rows]
    assert epochs == list(range(6))  # every epoch once, in order, none lost
    assert not any("12345.0" in line for line in rows)  # the unsaved epoch ran again
    meta = json.loads((tmp_path / "runs" / "resume" / "cxr_model.json").read_text())
    assert meta["training"]["epochs_run"] == 6
    # the wall time counts both processes' work, not only the resumed one's
    assert meta["training"]["processes"] == 2
    assert first_s > 0
    assert first_s < meta["training"]["wall_time_s"] < first_s + second_s
    assert "over 2 processes" in (tmp_path / "runs" / "resume" / "MODEL_CARD.md").read_text()
    # the command that reproduces the run, for the model card
    assert meta["training"]["command"] == f"python -m cxr_keras.train --config {config}"
    assert (
        meta["training"]["command"] in (tmp_path / "runs" / "resume" / "MODEL_CARD.md").read_text()
    )


def test_two_phases_and_export(tmp_path):
    cfg = tiny_config(
        "phases",
        model={"freeze": "backbone"},
        training={"epochs": 1, "fine_tune": {"epochs": 1, "learning_rate": 1e-4}},
    )
    import keras

    seen = []

    class Recorder(keras.callbacks.Callback):
        """A stand-in for an MLflow or W&B logger: what each epoch reported."""

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs or {})))

    artifact = train(
        cfg,
        run_dir=tmp_path / "run",
        export_to=tmp_path / "models" / "phases",
        progress=False,
        callbacks=[Recorder()],
    )
    # the caller's callback saw both phases' epochs, with the validation metrics
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert all("val_auc" in keys and "loss" in keys for _, keys in seen), seen
    rates = [row["learning_rate"] for row in artifact.meta["training"]["history"]]
    assert rates == pytest.approx([0.003, 1e-4])
    assert [p["name"] for p in artifact.meta["training"]["phases"]] == ["train", "fine_tune"]
    assert artifact.meta["model"]["frozen_layers"] == 0  # fine-tuning unfroze everything
    exported = load_artifact(tmp_path / "models" / "phases")
    assert exported.meta["created"] == artifact.meta["created"]
    assert (tmp_path / "models" / "phases" / "MODEL_CARD.md").is_file()  # copied with it


def test_mirrored_strategy_trains(tmp_path):
    cfg = tiny_config("mirrored", training={"epochs": 1, "strategy": "mirrored"})
    artifact = train(cfg, run_dir=tmp_path / "run", progress=False)
    assert artifact.meta["training"]["epochs_run"] == 1


def test_same_seed_with_op_determinism_gives_the_same_model(tmp_path):
    cfg = tiny_config("det", training={"epochs": 1, "deterministic": True})
    config = tmp_path / "det.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    outputs = []
    for run in ("a", "b"):  # separate processes: op determinism is process-wide
        result = subprocess.run(
            [sys.executable, "-m", "cxr_keras.train", "--config", str(config), "--run-name", run],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads((tmp_path / "runs" / run / "cxr_model.json").read_text()))
    first, second = (o["training"]["history"] for o in outputs)
    assert first == second  # every logged loss and metric, to the last digit


def test_a_loss_monitor_exports_the_lowest_loss_epoch(tmp_path):
    cfg = tiny_config(
        "lossmonitor", training={"epochs": 3, "monitor": "val_loss", "early_stopping_patience": 0}
    )
    artifact = train(cfg, run_dir=tmp_path / "run", progress=False)
    losses = [row["val_loss"] for row in artifact.meta["training"]["history"]]
    assert artifact.meta["training"]["best_epoch"] == int(np.argmin(losses)) + 1
    # the exported weights are that epoch's: its validation loss is reproduced
    assert artifact.meta["metrics"]["validation"]["loss"] == pytest.approx(min(losses), rel=1e-4)


def test_settings_that_would_fail_late_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="is not logged; choose one of"):
        train(
            tiny_config("m1", training={"monitor": "val_acc"}),
            run_dir=tmp_path / "a",
            progress=False,
        )
    cfg = tiny_config("m2", training={"fine_tune": {"epochs": 1, "unfreeze_from": "block2_cnv1"}})
    with pytest.raises(ConfigError, match="did you mean"):
        train(cfg, run_dir=tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "train" / "log.csv").exists()  # no epoch was spent


def test_cosine_schedule_warms_up_then_decays_without_plateau_drops(tmp_path):
    cfg = tiny_config(
        "cosine",
        training={
            "epochs": 4,
            "lr_schedule": "cosine",
            "warmup_epochs": 1,
            "learning_rate": 0.003,
            "min_learning_rate": 1e-5,
            "reduce_lr_patience": 1,  # ignored: a schedule owns the learning rate
        },
    )
    artifact = train(cfg, run_dir=tmp_path / "cosine", progress=False)
    rates = [row["learning_rate"] for row in artifact.meta["training"]["history"]]
    # logged at the end of each epoch: the peak after warm-up, then a strict cosine decline
    assert rates[0] == pytest.approx(0.003, rel=1e-3)
    assert rates[0] > rates[1] > rates[2] > rates[3] >= 1e-5
    assert rates[1] == pytest.approx(1e-5 + (0.003 - 1e-5) * (1 + np.cos(np.pi / 3)) / 2, rel=0.02)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        tiny_config("bad", training={"epochs": 2, "warmup_epochs": 2})


def test_run_eagerly_compiles_every_phase_eagerly(tmp_path, monkeypatch):
    import keras

    seen = []
    original = keras.Model.compile

    def compile_and_record(self, *args, **kwargs):
        seen.append(kwargs.get("run_eagerly"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", compile_and_record)
    cfg = tiny_config("eager", training={"epochs": 1, "run_eagerly": True})
    artifact = train(cfg, run_dir=tmp_path / "run", progress=False)
    assert seen and all(flag is True for flag in seen)  # the phase and the final evaluation
    assert len(artifact.meta["training"]["history"]) == 1


def test_a_frozen_backbone_phase_trains_its_head_on_cached_features(tmp_path):
    """The head-only phase reads the frozen part's output computed once: the same epochs
    as running the whole model every step, a full model exported, the card saying so;
    the fine-tuning phase after it trains on images as before."""

    def config(name, cache):
        return tiny_config(
            name,
            augment={"rotation": 0, "zoom": 0},  # both sides compute the same thing
            model={"freeze": "backbone", "dense_units": 16},
            training={
                "epochs": 2,
                "feature_cache": cache,
                "fine_tune": {"epochs": 1, "learning_rate": 0.0003},
            },
        )

    plain = train(config("plain", "off"), run_dir=tmp_path / "plain", progress=False)
    cached = train(config("cached", "auto"), run_dir=tmp_path / "cached", progress=False)
    assert (tmp_path / "cached" / "train" / "feature_cache").is_dir()
    assert not (tmp_path / "plain" / "train" / "feature_cache").exists()
    runs = {}
    for artifact in (plain, cached):
        history = artifact.meta["training"]["history"]
        runs[artifact.meta["name"]] = [row["val_auc"] for row in history]
    assert len(runs["plain"]) == len(runs["cached"]) == 3
    np.testing.assert_allclose(runs["cached"], runs["plain"], atol=0.005)
    entries = cached.meta["training"]["feature_cache"]
    assert entries["train"]["on"] and not entries["fine_tune"]["on"]
    assert not plain.meta["training"]["feature_cache"]["train"]["on"]
    assert "feature cache" in (tmp_path / "cached" / "MODEL_CARD.md").read_text()
    # the exported artifact is the whole model and answers as the plain one's would
    films = sample_files("kermany")[:4]
    assert cached.model.count_params() == plain.model.count_params()
    answers = Predictor(cached).predict_files(films).probabilities
    assert answers.shape == (4, 1) and np.isfinite(answers).all()


def test_a_killed_cached_phase_resumes_without_computing_its_features_again(tmp_path):
    epochs = 150  # a head on cached features runs an epoch in a fraction of a second
    cfg = tiny_config(
        "cached_resume",
        augment={"rotation": 0, "zoom": 0},
        model={"freeze": "backbone"},
        training={"epochs": epochs, "early_stopping_patience": 0, "tensorboard": False},
    )
    config = tmp_path / "cached_resume.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    work = tmp_path / "runs" / "cached_resume" / "train"
    log = work / "log.csv"
    command = [sys.executable, "-m", "cxr_keras.train", "--config", str(config)]
    kill_when(command, tmp_path, lambda: log.is_file() and len(log.read_text().splitlines()) >= 4)
    rows_at_kill = len(log.read_text().splitlines()) - 1
    assert 3 <= rows_at_kill < epochs, "the kill came too late to test a resume"
    stored = sorted((work / "feature_cache").glob("*.npz"))
    assert len(stored) == 2
    second = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "feature cache on" in second.stderr  # the phase's log line: the cache was used
    assert "frozen part's output for" not in second.stderr  # read from disk, not computed
    rows = log.read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in rows] == list(range(epochs))
    meta = json.loads((tmp_path / "runs" / "cached_resume" / "cxr_model.json").read_text())
    assert meta["training"]["processes"] == 2 and meta["training"]["feature_cache"]["train"]["on"]
    artifact = load_artifact(tmp_path / "runs" / "cached_resume")
    answers = Predictor(artifact).predict_files(sample_files("kermany")[:2]).probabilities
    assert np.isfinite(answers).all()
