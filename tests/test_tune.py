"""Hyperparameter search: outputs, train --from-tuning, resuming, distributed workers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras_tuner as kt
import pytest
import yaml
from conftest import kill_when, subprocess_env, tiny_config

from cxr_keras.config import config_from_dict, with_values
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.training.tune import load_best_hparams, register_space, tune

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "training.learning_rate": {"float": [0.001, 0.01], "sampling": "log"},
    "model.dropout": {"float": [0.0, 0.4], "step": 0.1},
    "model.dense_units": {"choice": [0, 16]},
}


def _search_config(name: str, trials: int, **search):
    return tiny_config(
        name,
        training={"epochs": 2},
        search={"max_trials": trials, "epochs": 1, "space": SPACE, **search},
    )


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_search_writes_its_outputs_and_train_uses_the_best_trial(tmp_path):
    cfg = _search_config("search", 2)
    result = tune(cfg, run_dir=tmp_path / "search", progress=False)
    rows = _rows(tmp_path / "search" / "tune" / "trials.csv")
    assert len(rows) == 2 and all(r["status"] == "COMPLETED" for r in rows)
    assert {"objective", "epochs", "duration_s", "peak_rss_mb", *SPACE} <= set(rows[0])
    best_row = max(rows, key=lambda r: float(r["objective"]))
    best = load_best_hparams(tmp_path / "search")
    assert best == result["hyperparameters"] and set(best) == set(SPACE)
    assert best["training.learning_rate"] == pytest.approx(
        float(best_row["training.learning_rate"])
    )
    assert (tmp_path / "search" / "tune" / "objective.png").stat().st_size > 5000
    checkpoints = sorted((tmp_path / "search" / "tune" / "search").rglob("checkpoint*"))
    assert len(checkpoints) == 1 and f"trial_{best_row['trial_id']}" in str(checkpoints[0])
    # train --from-tuning takes exactly those values
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxr_keras.train",
            "--config",
            str(config),
            "--from-tuning",
            str(tmp_path / "search"),
            "--set",
            "training.epochs=1",
        ],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    trained = json.loads((tmp_path / "runs" / "search" / "cxr_model.json").read_text())["config"]
    assert trained["training"]["learning_rate"] == best["training.learning_rate"]
    assert trained["model"]["dropout"] == best["model.dropout"]
    assert trained["model"]["dense_units"] == best["model.dense_units"]


def test_interrupted_search_resumes_without_repeating_trials(tmp_path):
    cfg = _search_config("resume", 3)
    config = tmp_path / "resume.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    log = tmp_path / "runs" / "resume" / "tune" / "trial_log.jsonl"
    command = [sys.executable, "-m", "cxr_keras.tune", "--config", str(config)]
    kill_when(command, tmp_path, lambda: log.is_file() and bool(log.read_text().strip()))
    finished_before = [json.loads(line)["trial_id"] for line in log.read_text().splitlines()]
    assert 1 <= len(finished_before) < 3, "the kill came too late to test a resume"
    again = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=400
    )
    assert again.returncode == 0, again.stderr
    runs = [json.loads(line)["trial_id"] for line in log.read_text().splitlines()]
    rows = _rows(tmp_path / "runs" / "resume" / "tune" / "trials.csv")
    assert len(rows) == 3 and all(r["status"] == "COMPLETED" for r in rows)
    for trial_id in finished_before:
        assert runs.count(trial_id) == 1  # a finished trial is never run again


def test_distributed_search_runs_trials_on_both_workers(tmp_path):
    cfg = _search_config("distributed", 4)
    config = tmp_path / "distributed.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    result = subprocess.run(
        [sys.executable, "-m", "cxr_keras.tune", "--config", str(config), "--workers", "2"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=500,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(tmp_path / "runs" / "distributed" / "tune" / "trials.csv")
    assert len(rows) == 4 and all(r["status"] == "COMPLETED" for r in rows)
    assert {r["worker"] for r in rows} == {"tuner0", "tuner1"}  # both ran real trials
    assert (
        json.loads((tmp_path / "runs" / "distributed" / "best_hparams.json").read_text())["trials"]
        == 4
    )


def test_space_registration_and_conditions():
    space = {
        "training.loss": {"choice": ["bce", "focal"]},
        "training.focal_gamma": {"float": [1.0, 3.0], "when": {"training.loss": "focal"}},
        "model.dense_units": {"int": [16, 64], "step": 16},
        "augment.flip": {"boolean": True},
    }
    hp = kt.HyperParameters()
    values = register_space(hp, space)
    assert values["training.loss"] == "bce" and "training.focal_gamma" not in values
    assert values["model.dense_units"] == 16 and values["augment.flip"] is False
    hp.values.update({"training.loss": "focal", "training.focal_gamma": 2.5})  # as an oracle
    assert register_space(hp, space)["training.focal_gamma"] == 2.5


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model.dropuot": {"choice": [0.1]}}, "'model.dropuot' is not a setting"),
        ({"model.dropout": {"float": [0.5, 0.1]}}, "[min, max] with min < max"),
        ({"training.learning_rate": {"float": [0, 1], "sampling": "log"}}, "positive minimum"),
        ({"model.dropout": {"range": [0, 1]}}, "give exactly one of"),
        (
            {"training.focal_gamma": {"float": [1, 2], "when": {"training.loss": "focal"}}},
            "must be a range listed above",
        ),
        ({"name": {"choice": ["a"]}}, "name cannot be searched"),
    ],
)
def test_bad_search_spaces_are_refused(space, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(
            {"name": "t", "data": {"source": "folder", "root": "x"}, "search": {"space": space}}
        )


def test_a_changed_config_is_not_mixed_into_an_earlier_search(tmp_path):
    cfg = _search_config("changed", 1)
    tune(cfg, run_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        tune(_search_config("changed", 2), run_dir=tmp_path, progress=False)
    # the model card's words are not part of what a search computes
    carded = with_values(_search_config("changed", 1), {"card.limitations": ["Edited."]})
    assert carded.card.limitations == ["Edited."]
    tune(carded, run_dir=tmp_path, progress=False)  # continues (finished) without complaint


def test_a_trial_finished_before_a_kill_is_recognised(tmp_path):
    """Killed after a trial's process wrote its result but before the oracle recorded it:
    the resumed search takes the result from disk instead of training again."""
    from cxr_keras.training.tune import finished_before

    spec = {
        "values": {"model.dropout": 0.2},
        "epochs": 2,
        "initial_epoch": 0,
        "parent_checkpoint": None,
        "checkpoint": str(tmp_path / "checkpoint.weights.h5"),
        "result": str(tmp_path / "result_0.json"),
    }
    spec_path = tmp_path / "spec_0.json"
    spec_path.write_text(json.dumps(spec))
    assert not finished_before(spec_path, spec)  # no result yet
    (tmp_path / "result_0.json").write_text(json.dumps({"val_auc": 0.8, "epochs": 2}))
    assert not finished_before(spec_path, spec)  # no best weights
    (tmp_path / "checkpoint.weights.h5").write_bytes(b"weights")
    assert finished_before(spec_path, spec)
    assert not finished_before(spec_path, {**spec, "values": {"model.dropout": 0.3}})
    (tmp_path / "result_0.json").write_text("{trunc")
    assert not finished_before(spec_path, spec)  # a half-written result is run again


def test_tuner_state_files_are_written_whole(tmp_path, monkeypatch):
    """A kill during KerasTuner's write of oracle.json must leave the previous file, not an
    empty one (which stopped a resumed search with 'Expecting value')."""
    import os

    from keras_tuner.src import utils

    from cxr_keras.training.tune import atomic_tuner_state_writes

    atomic_tuner_state_writes()
    state = tmp_path / "oracle.json"
    utils.save_json(str(state), {"trials": 1})
    assert json.loads(state.read_text()) == {"trials": 1}

    def killed(*args):  # the process dies after writing the temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        utils.save_json(str(state), {"trials": 2})
    assert json.loads(state.read_text()) == {"trials": 1}  # the old state, whole


def test_an_isolated_trial_process_follows_its_tuner(tmp_path):
    """The trial's process sets its own parent-death signal (no code between fork and exec
    in the threaded tuner), and leaves at once if the tuner it was started by is gone."""
    from cxr_keras.training.trial_process import TRIAL_PARENT

    script = (
        "from cxr_keras.training.trial_process import die_with_parent\n"
        "die_with_parent()\n"
        "print('alive')"
    )

    def run(parent: str) -> subprocess.CompletedProcess:
        env = {**subprocess_env(), TRIAL_PARENT: parent}
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )

    ours = run(str(os.getpid()))
    assert ours.returncode == 0 and ours.stdout.strip() == "alive"
    gone = run("1")  # started by a tuner that is no longer its parent
    assert gone.returncode == 1 and "alive" not in gone.stdout


def _run_tune(tmp_path: Path, cfg) -> subprocess.CompletedProcess:
    config = tmp_path / f"{cfg.name}.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    return subprocess.run(
        [sys.executable, "-m", "cxr_keras.tune", "--config", str(config)],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_a_trial_with_a_cosine_schedule_survives_a_stalled_monitor(tmp_path):
    """Training adds ReduceLROnPlateau only for lr_schedule: plateau; a trial must too:
    Keras cannot set the rate of a schedule, so a stalled monitor failed the trial."""
    cfg = _search_config("cosine", 1, epochs=3, space={"model.dropout": {"choice": [0.1]}})
    cfg = with_values(
        cfg,
        {
            "training.lr_schedule": "cosine",
            "training.reduce_lr_patience": 1,
            "training.early_stopping_patience": 0,
            # no BatchNorm and a rate too small to move a weight: the monitor cannot improve
            "training.learning_rate": 1e-12,
            "training.min_learning_rate": 1e-15,
            "model.normalization": "none",
        },
    )
    run = _run_tune(tmp_path, cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = _rows(tmp_path / "runs" / "cosine" / "tune" / "trials.csv")
    assert [r["status"] for r in rows] == ["COMPLETED"]
    assert rows[0]["epochs"] == "3" and float(rows[0]["objective"]) >= 0


def test_a_search_whose_trials_all_fail_exits_non_zero_and_leaves_no_best_values(tmp_path):
    # a file cache where no folder can be made: every trial fails in its first epoch
    cfg = _search_config("failing", 2, space={"data.cache": {"choice": ["/proc/no/cache"]}})
    run = _run_tune(tmp_path, cfg)
    assert run.returncode != 0
    assert "no trial of the search" in run.stderr and "completed" in run.stderr
    assert not (tmp_path / "runs" / "failing" / "best_hparams.json").exists()
    # a best_hparams.json such a search wrote before is refused, not trained from
    stale = tmp_path / "stale.json"
    stale.write_text(
        json.dumps({"hyperparameters": {"model.dropout": 0.3}, "objective": {"val_auc": None}})
    )
    with pytest.raises(ValueError, match="no completed trial"):
        load_best_hparams(stale)


def _head_search(name: str, cache: str):
    """A head-only search; trials isolated as by default (each starts the data order
    afresh: the cached search, in-process, rebuilds its datasets per trial to match)."""
    return tiny_config(
        name,
        augment={"rotation": 0, "zoom": 0},  # both sides compute the same thing
        model={"freeze": "backbone"},
        training={"epochs": 2, "feature_cache": cache},
        search={"max_trials": 2, "epochs": 2, "space": SPACE},
    )


def test_a_head_only_search_on_cached_features_gives_the_same_trials(tmp_path):
    """The cached search trains each head on the frozen part's stored output, in the
    pipeline's batch order: the same trials, the same validation AUC."""
    plain = tune(_head_search("plain", "off"), run_dir=tmp_path / "plain", progress=False)
    cached = tune(_head_search("cached", "auto"), run_dir=tmp_path / "cached", progress=False)
    assert not (tmp_path / "plain" / "tune" / "feature_cache").exists()
    stored = sorted((tmp_path / "cached" / "tune" / "feature_cache").glob("*.npz"))
    assert len(stored) == 2  # the training and the validation films, computed once
    by_id = {r["trial_id"]: r for r in _rows(tmp_path / "plain" / "tune" / "trials.csv")}
    rows = _rows(tmp_path / "cached" / "tune" / "trials.csv")
    assert len(rows) == 2
    for row in rows:
        twin = by_id[row["trial_id"]]
        assert all(float(row[k]) == pytest.approx(float(twin[k])) for k in SPACE)
        assert float(row["objective"]) == pytest.approx(float(twin["objective"]), abs=0.005)
    assert cached["hyperparameters"] == plain["hyperparameters"]
    assert cached["feature_cache"]["on"] and "augmentation off" in cached["feature_cache"]["reason"]
    assert not plain["feature_cache"]["on"] and "off" in plain["feature_cache"]["reason"]


def test_cached_features_are_reused_only_for_the_same_frozen_part_and_films(tmp_path):
    from cxr_keras.data import prepare_data, split_frame
    from cxr_keras.training.feature_cache import CachedFeatures, cache_applies, split_at_head
    from cxr_keras.training.fit import build_for

    cfg = _head_search("keys", "auto")
    manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=False)
    val = split_frame(manifest, "val")
    body, _ = split_at_head(build_for(cfg, ["PNEUMONIA"], mixed_precision=False).model)
    first = CachedFeatures(body, cfg, tmp_path)
    features, rows = first.of(val)
    assert first.extracted == len(val) == len(rows) and features.shape[0] == len(val)
    again = CachedFeatures(body, cfg, tmp_path)
    reread, _ = again.of(val)
    assert again.extracted == 0 and (reread == features).all()  # from disk
    # other films, or another size, never read those features
    assert again.key(val.iloc[:-1]) != again.key(val)
    bigger = with_values(cfg, {"image.size": 72})
    assert CachedFeatures(body, bigger, tmp_path).key(val) != first.key(val)
    # what keeps a phase off the cache, said in words
    for changed, reason in (
        ({"model.freeze": "none"}, "the backbone trains"),
        ({"augment.mixup_alpha": 0.2}, "MixUp/CutMix"),
        ({"training.feature_cache": "off"}, "feature_cache: off"),
    ):
        applies, why = cache_applies(with_values(cfg, changed))
        assert not applies and reason in why
    applies, why = cache_applies(cfg, space={"image.size": {"choice": [64, 96]}})
    assert not applies and "image.size" in why
