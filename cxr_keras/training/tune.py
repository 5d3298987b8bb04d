"""Tuning: hyperparameter search with KerasTuner, from the same config as training
(``python -m cxr_keras.tune``; then ``python -m cxr_keras.train --from-tuning runs/<name>``).

The config's ``search:`` section names the oracle (random, hyperband, bayesian), the
objective (default ``val_auc``, max) and the space: config paths with their ranges. Every
trial builds the model and the tf.data pipeline exactly as ``train`` does (same data
split, same loss, metrics, early stopping and learning-rate schedule), after clearing the
Keras session, and only the best trial's weights are kept.

A search in which only the head trains (``model.freeze: backbone``, every searched setting
acting on the head or the optimiser) computes the frozen part's output once per film and
trains each trial's head on it, in-process, with augmentation off
(:mod:`cxr_keras.training.feature_cache`; ``training.feature_cache: off`` turns it off):
the run log and ``best_hparams.json`` say which.

Writes to ``runs/<name>/``: ``best_hparams.json`` (the best trial's values, by config
path), ``tune/trials.csv`` (every trial: values, objective, epochs, duration, worker, peak
memory), ``tune/objective.png``, and KerasTuner's own project under ``tune/search/``.
Running the command again continues an interrupted search without redoing finished
trials.

Distributed search uses KerasTuner's own mode: one chief process serves the oracle and
workers run trials, configured by ``KERASTUNER_TUNER_ID`` (``chief``, ``tuner0``, ...),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``, all sharing the run folder.
``--workers N`` starts a chief and N workers on this machine.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cxr_keras.config import Config, changed_sections, config_from_dict, with_values
from cxr_keras.core.errors import ConfigError, RunFailedError
from cxr_keras.core.figures import pyplot, save_figure
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.data import prepare_data, split_frame
from cxr_keras.data.manifest import manifest_labels, read_manifest, save_manifest
from cxr_keras.training.feature_cache import (
    CachedFeatures,
    cache_applies,
    feature_datasets,
    split_at_head,
)
from cxr_keras.training.fit import (
    build_for,
    class_weights_for,
    compile_for,
    fit_datasets,
    learning_rate_for,
    make_loss,
    progress_bars,
    quiet_dataset_notes,
    schedule_callbacks,
    steps_per_epoch,
    use_mixed_precision,
)
from cxr_keras.training.trial_process import TRIAL_PARENT

__all__ = [
    "best_completed_trial",
    "best_hparams_path",
    "finished_before",
    "load_best_hparams",
    "run_trial_process",
    "tune",
    "tune_distributed",
]

log = logging.getLogger("cxr_keras.tune")
PROJECT = "search"


def best_hparams_path(run_dir: str | os.PathLike) -> Path:
    """Where a tuning run writes its best values: ``<run_dir>/best_hparams.json``."""
    return Path(run_dir) / "best_hparams.json"


def load_best_hparams(path: str | os.PathLike) -> dict:
    """The best values of a search, by config path, from ``best_hparams.json`` or from a
    tuning run folder holding it.

    Example:
        >>> load_best_hparams("runs/demo")  # doctest: +SKIP
        {'model.dropout': 0.2, 'training.learning_rate': 0.0031}
    """
    path = Path(path)
    if path.is_dir():
        path = best_hparams_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path}: no best hyperparameters; run python -m cxr_keras.tune first"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data.get("hyperparameters"), dict):
        raise ValueError(f"{path}: expected a 'hyperparameters' mapping")
    scores = list((data.get("objective") or {}).values())
    if "objective" in data and (not scores or any(score is None for score in scores)):
        raise ValueError(
            f"{path}: the search has no completed trial (objective {data['objective']}); "
            "tune again, or train without --from-tuning"
        )
    return dict(data["hyperparameters"])


# --------------------------------------------------------------------------- the model


def _hyperparameter(hp, path: str, spec: dict):
    kind = next(k for k in ("choice", "int", "float", "boolean") if k in spec)
    if kind == "choice":
        return hp.Choice(path, spec["choice"])
    if kind == "boolean":
        return hp.Boolean(path)
    low, high = spec[kind]
    make = hp.Int if kind == "int" else hp.Float
    return make(path, low, high, step=spec.get("step"), sampling=spec.get("sampling", "linear"))


def register_space(hp, space: dict) -> dict:
    """Declare the search space on a KerasTuner ``HyperParameters`` and return the active
    values by config path (conditional ranges only when their ``when`` holds)."""
    values = {}
    for path, spec in space.items():
        when = spec.get("when") or {}
        if when:
            parent, allowed = next(iter(when.items()))
            allowed = allowed if isinstance(allowed, list) else [allowed]
            with hp.conditional_scope(parent, allowed):
                value = _hyperparameter(hp, path, spec)
            if values.get(parent) in allowed:
                values[path] = value
        else:
            values[path] = _hyperparameter(hp, path, spec)
    return values


class _HyperModel:
    """Builds and fits one trial's model from the base config plus the trial's values.

    The data are prepared once (one split for every trial); the tf.data pipelines are
    kept per image size so later trials read the cached, decoded images.
    """

    def __init__(self, cfg: Config, manifest, progress: bool, *, cache_dir: Path | None = None):
        import keras_tuner as kt

        self.cfg, self.manifest, self.progress = cfg, manifest, progress
        self._datasets: dict = {}
        # only the head trains: its trials read the frozen part's output, computed once
        self.cached, self.cache_reason = cache_applies(cfg, space=cfg.search.space)
        self.cached = self.cached and cache_dir is not None
        self.cache_dir = cache_dir
        self._features: CachedFeatures | None = None
        outer = self

        class HyperModel(kt.HyperModel):
            def build(self, hp):
                return outer.build(hp)

            def fit(self, hp, model, *args, **kwargs):
                return outer.fit(hp, model, **kwargs)

        self.hypermodel = HyperModel()

    def trial_config(self, hp) -> Config:
        return with_values(self.cfg, register_space(hp, self.cfg.search.space))

    def build(self, hp):
        import keras

        cfg = self.trial_config(hp)
        keras.utils.set_random_seed(cfg.seed)
        labels = manifest_labels(self.manifest)
        built = build_for(
            cfg, labels, mixed_precision=use_mixed_precision(cfg.training.mixed_precision)
        )
        model = built.model
        if self.cached:  # the trial trains its head on the frozen part's cached output
            body, model = split_at_head(built.model)
            self._features = CachedFeatures(body, cfg, self.cache_dir)
        train = split_frame(self.manifest, "train")
        steps = steps_per_epoch(cfg, len(train))
        compile_for(
            model,
            cfg,
            labels=labels,
            loss=make_loss(cfg, class_weights_for(cfg, train)),
            learning_rate=learning_rate_for(
                cfg, cfg.training.learning_rate, epochs=cfg.search.epochs, steps_per_epoch=steps
            ),
        )
        return model

    def datasets(self, cfg: Config):
        key = json.dumps(
            [config_to_dict(cfg.image), cfg.data.batch_size, config_to_dict(cfg.augment)]
        )
        if key not in self._datasets:
            self._datasets[key] = fit_datasets(
                cfg, split_frame(self.manifest, "train"), split_frame(self.manifest, "val")
            )
        return self._datasets[key]

    def fit(self, hp, model, **kwargs):
        quiet_dataset_notes()
        cfg = self.trial_config(hp)
        if self.cached:
            train_ds, val_ds, steps = feature_datasets(
                self._features,
                cfg,
                train_df=split_frame(self.manifest, "train"),
                val_df=split_frame(self.manifest, "val"),
                labels=manifest_labels(self.manifest),
            )
        else:
            train_ds, val_ds, steps = self.datasets(cfg)
        # training's learning-rate schedule and early stopping, on the search objective
        schedule = schedule_callbacks(cfg, monitor=cfg.search.objective, mode=cfg.search.direction)
        callbacks = [*kwargs.pop("callbacks", []), *schedule]
        return model.fit(
            train_ds,
            validation_data=val_ds,
            steps_per_epoch=steps,
            callbacks=callbacks,
            epochs=kwargs.pop("epochs", cfg.search.epochs),
            initial_epoch=kwargs.pop("initial_epoch", 0),
            verbose=1 if self.progress else 2,
        )


# --------------------------------------------------------------------------- isolated trials


def finished_before(spec_path: Path, spec: dict) -> bool:
    """True when this very execution (same values, epochs and parent) already finished:
    its spec and result are on disk. A search killed between a trial's end and the
    oracle's record of it then does not train that trial again."""
    if not (spec_path.is_file() and Path(spec["result"]).is_file()):
        return False
    try:
        old = json.loads(spec_path.read_text(encoding="utf-8"))
        json.loads(Path(spec["result"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    keys = ("values", "epochs", "initial_epoch", "parent_checkpoint", "checkpoint")
    return all(old.get(k) == spec.get(k) for k in keys) and Path(spec["checkpoint"]).exists()


def _isolated_trial(tuner, trial, cfg: Config, directory: Path, kwargs: dict) -> list[dict]:
    """Run one trial in a fresh Python process and return its best epoch's metrics.

    Keras/TensorFlow keep about 20 MB per fitted model after it is gone, whatever
    ``clear_session`` does (keras-team/keras#17458, #20552); a process per trial keeps the
    tuner's memory flat over any number of trials. Decoded images are shared between
    trials through a tf.data file cache.
    """
    import keras_tuner as kt

    trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
    trial_dir.mkdir(parents=True, exist_ok=True)
    values = dict(trial.hyperparameters.values)
    parent = values.get("tuner/trial_id")
    results = []
    for execution in range(cfg.search.executions_per_trial):
        spec = {
            "config": config_to_dict(cfg),
            "values": {k: v for k, v in values.items() if k in cfg.search.space},
            "manifest": str(directory / "manifest.csv"),
            # each worker of a distributed search has its own cache: caches have one writer
            "cache": str(directory / "cache" / os.environ.get("KERASTUNER_TUNER_ID", "local")),
            "checkpoint": tuner._get_checkpoint_fname(trial.trial_id),
            "parent_checkpoint": tuner._get_checkpoint_fname(parent) if parent else None,
            "epochs": kwargs.get("epochs", values.get("tuner/epochs", cfg.search.epochs)),
            "initial_epoch": kwargs.get("initial_epoch", values.get("tuner/initial_epoch", 0)),
            "best_so_far": max((r[cfg.search.objective] for r in results), default=None)
            if cfg.search.direction == "max"
            else min((r[cfg.search.objective] for r in results), default=None),
            "result": str(trial_dir / f"result_{execution}.json"),
            "progress": tuner.hypermodel_progress,
        }
        spec_path = trial_dir / f"spec_{execution}.json"
        if finished_before(spec_path, spec):  # killed after training, before the oracle
            results.append(json.loads(Path(spec["result"]).read_text(encoding="utf-8")))
            continue  # its result and best weights are on disk: keep them
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        Path(spec["result"]).unlink(missing_ok=True)
        code = subprocess.call(
            [sys.executable, "-m", "cxr_keras.tune", "--run-trial", str(spec_path)],
            env={**os.environ, TRIAL_PARENT: str(os.getpid())},
        )
        if code != 0 or not Path(spec["result"]).is_file():
            raise kt.errors.FailedTrialError(
                f"trial {trial.trial_id}: its process exited with code {code}"
            )
        results.append(json.loads(Path(spec["result"]).read_text(encoding="utf-8")))
    return results


def run_trial_process(spec_path: str | os.PathLike) -> dict:
    """Train one trial as :func:`_isolated_trial` describes it (the child process)."""
    import keras

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    cfg = with_values(config_from_dict(spec["config"]), spec["values"])
    if cfg.data.cache == "memory":  # decoded once for all trials, then read from files
        cfg = with_values(cfg, {"data.cache": spec["cache"]})
    manifest = read_manifest(spec["manifest"])
    hypermodel = _HyperModel(cfg, manifest, spec["progress"])
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for path, value in spec["values"].items():
        hp.Fixed(path, value)
    model = hypermodel.build(hp)
    if spec["parent_checkpoint"]:  # Hyperband: continue the parent trial's training
        model.load_weights(spec["parent_checkpoint"])
    objective, mode = cfg.search.objective, cfg.search.direction
    checkpoint = keras.callbacks.ModelCheckpoint(
        spec["checkpoint"],
        monitor=objective,
        mode=mode,
        save_best_only=True,
        save_weights_only=True,
        initial_value_threshold=spec["best_so_far"],
    )
    history = hypermodel.fit(
        hp,
        model,
        callbacks=[checkpoint],
        epochs=spec["epochs"],
        initial_epoch=spec["initial_epoch"],
    ).history
    scores = history[objective]
    best = (max if mode == "max" else min)(range(len(scores)), key=scores.__getitem__)
    result = {k: float(v[best]) for k, v in history.items()}
    result.update({"epochs": len(scores), "peak_rss_mb": round(_peak_rss_mb(), 1)})
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return result


# --------------------------------------------------------------------------- the tuner


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def atomic_tuner_state_writes() -> None:
    """Make KerasTuner write its state files (oracle.json, trial.json, build configs)
    whole: to a temporary file, then renamed over the old one. It writes them in place, so
    a kill -9 during a write left an empty oracle.json and the resumed search stopped with
    "Expecting value: line 1 column 1". Every KerasTuner JSON write goes through
    ``keras_tuner.src.utils.save_json`` (keras-tuner 1.4), which this replaces once per
    process."""
    from keras_tuner.src import utils

    if getattr(utils.save_json, "cxr_atomic", False):
        return

    def save_json(path, obj):
        text = json.dumps(obj)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return text

    save_json.cxr_atomic = True
    utils.save_json = save_json


def _make_tuner(
    cfg: Config, hypermodel, directory: Path, progress: bool = True, *, isolate: bool = True
):
    """A KerasTuner tuner of the configured oracle that clears the Keras session before
    each trial, records each trial's time, epochs, worker and peak memory, and keeps only
    the best trial's weights (Hyperband, which resumes trials from their parents'
    weights, is pruned once the search ends). Its state files are written atomically.
    ``isolate``: False runs trials in this process even when the config isolates them (a
    head trained on cached features costs less than a fresh process)."""
    import keras
    import keras_tuner as kt

    atomic_tuner_state_writes()

    search = cfg.search
    base = {
        "random": kt.RandomSearch,
        "hyperband": kt.Hyperband,
        "bayesian": kt.BayesianOptimization,
    }[search.oracle]
    log_path = directory / "trial_log.jsonl"

    class Tuner(base):
        hypermodel_progress = progress

        def run_trial(self, trial, *args, **kwargs):
            started = time.time()
            if search.isolate_trials and isolate:
                results = _isolated_trial(self, trial, cfg, directory, kwargs)
                epochs = max(r["epochs"] for r in results)
                peak = max(r["peak_rss_mb"] for r in results)
            else:
                keras.backend.clear_session()
                results = super().run_trial(trial, *args, **kwargs)
                epochs = max(
                    (len(h.history.get("loss", [])) for h in results if hasattr(h, "history")),
                    default=0,
                )
                peak = _peak_rss_mb()
            record = {
                "trial_id": trial.trial_id,
                "seconds": round(time.time() - started, 1),
                "epochs": epochs,
                "worker": os.environ.get("KERASTUNER_TUNER_ID", "local"),
                "peak_rss_mb": round(peak, 1),
                "tuner_rss_mb": round(_current_rss_mb(), 1),
            }
            logged = log_path.is_file() and any(
                json.loads(line)["trial_id"] == trial.trial_id
                for line in log_path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            )
            if not logged:  # a trial recovered from disk after a kill is logged once
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            return results

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if search.oracle != "hyperband":
                prune_checkpoints(self)

    objective = kt.Objective(search.objective, direction=search.direction)
    common = {
        "hypermodel": hypermodel,
        "objective": objective,
        "directory": str(directory),
        "project_name": PROJECT,
        "overwrite": False,
        "seed": cfg.seed,
    }
    if search.oracle == "hyperband":
        return Tuner(max_epochs=search.epochs, factor=search.hyperband_factor, **common)
    return Tuner(
        max_trials=search.max_trials, executions_per_trial=search.executions_per_trial, **common
    )


def best_completed_trial(oracle):
    """The best trial that completed with a score, or None. KerasTuner's own
    ``get_best_trials`` pads its answer with unfinished and failed trials when too few
    completed, so a search whose trials all failed would report a failed trial as the
    best. Completed trials come first in that answer, so the first one tells."""
    best = oracle.get_best_trials(1)
    if best and str(best[0].status) == "COMPLETED" and best[0].score is not None:
        return best[0]
    return None


def prune_checkpoints(tuner) -> int:
    """Delete the weights of every finished trial but the best; returns how many.

    Works from any process of a distributed search: trials are found on the shared disk
    and their status asked of the oracle, so a trial another worker is still training is
    left alone.
    """
    best = best_completed_trial(tuner.oracle)
    keep = best.trial_id if best else None
    removed = 0
    project = Path(tuner.project_dir)
    for trial_dir in project.glob("trial_*"):
        trial_id = trial_dir.name[len("trial_") :]
        files = list(trial_dir.glob("checkpoint*"))
        if trial_id == keep or not files:
            continue
        try:
            status = tuner.oracle.get_trial(trial_id).status
        except (KeyError, ValueError):
            continue
        if status in ("COMPLETED", "INVALID", "FAILED"):
            for path in files:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# --------------------------------------------------------------------------- outputs


def _trial_rows(tuner, directory: Path) -> list[dict]:
    records = {}
    log_path = directory / "trial_log.jsonl"
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["trial_id"]] = record  # a re-run trial: its last record
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        values = {
            k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
        }
        record = records.get(trial_id, {})
        rows.append(
            {
                "trial_id": trial_id,
                "status": str(trial.status),
                "objective": trial.score,
                **values,
                "epochs": record.get(
                    "epochs", trial.best_step + 1 if trial.best_step is not None else None
                ),
                "duration_s": record.get("seconds"),
                "worker": record.get("worker"),
                "peak_rss_mb": record.get("peak_rss_mb"),
                "tuner_rss_mb": record.get("tuner_rss_mb"),
            }
        )
    return rows


def _write_outputs(cfg: Config, tuner, run_dir: Path, *, feature_cache: dict) -> dict:
    directory = run_dir / "tune"
    rows = _trial_rows(tuner, directory)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(directory / "trials.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    best = best_completed_trial(tuner.oracle)
    if best is None:
        best_hparams_path(run_dir).unlink(missing_ok=True)
        raise RunFailedError(
            f"no trial of the search in {directory} completed ({len(rows)} failed): nothing "
            f"to train from; see {directory / 'trials.csv'} and the trial errors above"
        )
    space = cfg.search.space
    values = {k: v for k, v in best.hyperparameters.values.items() if k in space}
    result = {
        "hyperparameters": values,
        "objective": {cfg.search.objective: best.score},
        "trial_id": best.trial_id,
        "oracle": cfg.search.oracle,
        "trials": len(rows),
        "feature_cache": feature_cache,  # on or off, and why (augmentation is off when on)
        "config": config_to_dict(cfg),
    }
    best_hparams_path(run_dir).write_text(json.dumps(result, indent=2), encoding="utf-8")
    _plot(rows, cfg, directory / "objective.png")
    return result


def _plot(rows: list[dict], cfg: Config, path: Path) -> None:
    plt = pyplot()
    scored = [(i, r["objective"]) for i, r in enumerate(rows) if r["objective"] is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(rows) + 2), 3.2))
    if scored:
        xs, ys = zip(*scored, strict=True)
        ax.plot(xs, ys, "o-", color="tab:blue", label="trial")
        pick = max if cfg.search.direction == "max" else min
        best_i, best_y = pick(scored, key=lambda s: s[1])
        ax.plot([best_i], [best_y], "*", color="tab:red", markersize=14, label="best")
        running = []
        for _, y in scored:
            running.append(y if not running else pick(running[-1], y))
        ax.step(xs, running, where="post", color="tab:gray", alpha=0.6, label="best so far")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["trial_id"] for r in rows], fontsize=7)
    ax.set_xlabel("trial")
    ax.set_ylabel(cfg.search.objective)
    ax.set_title(f"{cfg.name}: {cfg.search.oracle} search", fontsize=10)
    save_figure(fig, path, dpi=100)


# --------------------------------------------------------------------------- entry points


def tune(
    cfg: Config,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    run_dir: str | os.PathLike | None = None,
) -> dict:
    """Run (or continue) the configured search; write and return the best values.
    ``progress``: Keras' progress bar (None: on a terminal only; otherwise one line per
    epoch).

    Example:
        >>> from cxr_keras.config import load_config
        >>> from cxr_keras.recipes import find_recipe
        >>> tune(load_config(find_recipe("demo")))["hyperparameters"]  # doctest: +SKIP
        {'model.dropout': 0.2, 'training.learning_rate': 0.0031}
    """
    if cfg.search is None or not cfg.search.space:
        raise ConfigError("the config has no search: section with a space to search")
    progress = progress_bars(progress)
    run_dir = Path(run_dir) if run_dir is not None else cfg.run_dir
    directory = run_dir / "tune"
    chief_or_local = os.environ.get("KERASTUNER_TUNER_ID", "chief").startswith("chief")
    if overwrite and chief_or_local and "KERASTUNER_ORACLE_IP" not in os.environ:
        shutil.rmtree(directory, ignore_errors=True)
        best_hparams_path(run_dir).unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    _check_search_config(directory, cfg)
    manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=progress)
    if chief_or_local:
        save_manifest(manifest, directory / "manifest.csv")
    hypermodel = _HyperModel(cfg, manifest, progress, cache_dir=directory / "feature_cache")
    state = "on" if hypermodel.cached else "off"
    log.info("feature cache: %s (%s)", state, hypermodel.cache_reason)
    tuner = _make_tuner(
        cfg, hypermodel.hypermodel, directory, progress, isolate=not hypermodel.cached
    )
    tuner.search()
    if "KERASTUNER_ORACLE_IP" in os.environ:
        return {}  # a distributed chief or worker: the launcher writes the outputs
    if cfg.search.oracle == "hyperband":
        prune_checkpoints(tuner)
    result = _write_outputs(
        cfg,
        tuner,
        run_dir,
        feature_cache={"on": hypermodel.cached, "reason": hypermodel.cache_reason},
    )
    log.info(
        "best of %d trials: %s = %s with %s",
        result["trials"],
        cfg.search.objective,
        result["objective"][cfg.search.objective],
        result["hyperparameters"],
    )
    return result


def _check_search_config(directory: Path, cfg: Config) -> None:
    """A search is continued only with the config it started with."""
    saved = directory / "config.json"
    if saved.is_file():
        changed = changed_sections(json.loads(saved.read_text(encoding="utf-8")), cfg)
        if changed:
            raise ConfigError(
                f"{directory} holds a search started with a different config "
                f"(sections {changed} differ): continue it with the same "
                "settings, start afresh with --overwrite, or pick another "
                "--run-name"
            )
    else:
        saved.write_text(json.dumps(config_to_dict(cfg), indent=1), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, chief: subprocess.Popen) -> None:
    """Block until the chief oracle listens (it first prepares the data, which takes
    minutes on a large dataset): workers started earlier would race a server that is not
    there. Fails only if the chief exits."""
    while True:
        if chief.poll() is not None:
            raise RuntimeError(f"distributed tuning: the chief exited with {chief.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)


def tune_distributed(
    args_for_children: list[str],
    cfg: Config,
    *,
    workers: int,
    overwrite: bool,
    timeout: float | None = None,
) -> dict:
    """Start a chief oracle and ``workers`` workers on 127.0.0.1 (KerasTuner's distributed
    mode), wait for the workers, stop the chief (it does not exit by itself), then write
    the outputs from the shared project."""
    run_dir = cfg.run_dir
    directory = run_dir / "tune"
    if overwrite:  # cleared here, once: each process clearing it would race the others
        shutil.rmtree(directory, ignore_errors=True)
        best_hparams_path(run_dir).unlink(missing_ok=True)
    port = _free_port()
    command = [sys.executable, "-m", "cxr_keras.tune", *args_for_children]
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    chief = subprocess.Popen(
        command, env={**env, "KERASTUNER_TUNER_ID": "chief"}, start_new_session=True
    )
    children: list[subprocess.Popen] = []
    try:
        _wait_for_port(port, chief)
        children = [
            subprocess.Popen(
                command, env={**env, "KERASTUNER_TUNER_ID": f"tuner{i}"}, start_new_session=True
            )
            for i in range(workers)
        ]
        codes = [child.wait(timeout=timeout) for child in children]
    finally:
        for process in [*children, chief]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*children, chief]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    if any(codes):
        raise RuntimeError(f"distributed tuning: workers exited with {codes}")
    manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=False)
    hypermodel = _HyperModel(cfg, manifest, False, cache_dir=directory / "feature_cache")
    tuner = _make_tuner(cfg, hypermodel.hypermodel, directory, False)
    feature_cache = {"on": hypermodel.cached, "reason": hypermodel.cache_reason}
    return _write_outputs(cfg, tuner, run_dir, feature_cache=feature_cache)
