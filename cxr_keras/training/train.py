"""Training: one config in, one model artifact out (``python -m cxr_keras.train``).

Everything goes to ``runs/<name>/``: the artifact (``model.keras`` + ``cxr_model.json``) at
the top, and under ``train/`` the resolved config, the manifest with its split, the CSV
log, TensorBoard logs, the best weights and the resume state. Starting the same command
again resumes: finished phases are skipped and a phase killed mid-way (``kill -9``
included) continues from its last finished epoch (Keras ``BackupAndRestore``, written
atomically: :class:`~cxr_keras.training.callbacks.AtomicBackup`).
``--overwrite`` starts afresh.

Training: Adam or AdamW on the masked per-label loss (:mod:`cxr_keras.models.losses`),
class weights folded into per-label sample weights, ReduceLROnPlateau, EarlyStopping, the
best epoch by validation AUC kept, and an optional second phase that unfreezes the
backbone with a lower learning rate.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from cxr_keras.artifact.model_card import write_model_card
from cxr_keras.artifact.ood import OOD_FILE
from cxr_keras.artifact.ood_fit import fit_and_store
from cxr_keras.artifact.store import (
    META_FILE,
    MODEL_FILE,
    Artifact,
    copy_artifact,
    load_artifact,
    save_artifact,
)
from cxr_keras.config import Config, changed_sections
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.data import prepare_data, split_frame
from cxr_keras.data.manifest import read_manifest, save_manifest
from cxr_keras.data.stats import dataset_summary
from cxr_keras.models.build import check_layer_name, set_trainable, trainable_summary
from cxr_keras.models.losses import metric_names
from cxr_keras.models.tta import with_tta
from cxr_keras.training.callbacks import (
    AtomicBackup,
    BestCheckpoint,
    LogLearningRate,
    monitor_mode,
    newest_backup,
    plateau_state,
)
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
    use_mixed_precision,
)

__all__ = ["Phase", "train"]

log = logging.getLogger("cxr_keras.train")


@dataclass
class Phase:
    """One ``fit``: which layers train, at which learning rate, for how many epochs."""

    name: str
    freeze: str
    learning_rate: float
    epochs: int


def _phases(cfg: Config) -> list[Phase]:
    phases = [Phase("train", cfg.model.freeze, cfg.training.learning_rate, cfg.training.epochs)]
    fine = cfg.training.fine_tune
    if fine.epochs > 0:
        phases.append(Phase("fine_tune", fine.unfreeze_from, fine.learning_rate, fine.epochs))
    return phases


def _read_state(work: Path) -> dict:
    path = work / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"phases_done": [], "epochs": 0}


def _write_state(work: Path, state: dict) -> None:
    tmp = work / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, work / "state.json")


def _log_rows(work: Path) -> list[dict]:
    """The CSV log, one row per finished epoch. An epoch repeated after a kill (logged, then
    killed before its backup was written) appears once, with its last values."""
    path = work / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = {int(float(row["epoch"])): row for row in csv.DictReader(fh) if row.get("epoch")}
    return [rows[epoch] for epoch in sorted(rows)]


def _check_run_dir(work: Path, cfg: Config) -> None:
    """Refuse to resume a run folder that was started with a different config."""
    saved = work / "config.yaml"
    if saved.is_file():
        changed = changed_sections(yaml.safe_load(saved.read_text()), cfg)
        if changed:
            raise ConfigError(
                f"{work.parent} holds a run started with a different config (sections "
                f"{changed} differ): resume it with the same settings, start afresh with "
                "--overwrite, or pick another --run-name"
            )
    else:
        work.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _resume_epoch(work: Path, phase_index: int, first_epoch: int) -> int:
    """The epoch a phase continues at: the one its newest consistent backup records
    (:class:`~cxr_keras.training.callbacks.AtomicBackup`), else the phase's first epoch."""
    found = newest_backup(work / f"backup_{phase_index}")
    return first_epoch if found is None else found[1]


def _drop_unsaved_epochs(work: Path, resume_epoch: int) -> int:
    """Remove the log rows of epochs from ``resume_epoch`` on: a kill after an epoch's row
    reached ``log.csv`` but before its backup was saved leaves a row of an epoch that runs
    again. Kept, it would appear twice, and the resumed plateau and early-stopping state
    would count an epoch the model no longer has. Returns how many rows went."""
    path = work / "log.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    kept = [row for row in rows if row.get("epoch") and int(float(row["epoch"])) < resume_epoch]
    if len(kept) == len(rows):
        return 0
    tmp = path.with_name("log.csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)
    log.info("dropped %d logged epoch(s) that had no backup; they run again", len(rows) - len(kept))
    return len(rows) - len(kept)


def _phase_history(work: Path, monitor: str, first_epoch: int) -> tuple[list, list]:
    """The monitored values and learning rates logged since the phase began."""
    rows = [r for r in _log_rows(work) if int(float(r["epoch"])) >= first_epoch]
    values = [float(r[monitor]) for r in rows if r.get(monitor) not in (None, "")]
    rates = [float(r["learning_rate"]) for r in rows if r.get("learning_rate") not in (None, "")]
    return values, rates


def _callbacks(
    cfg: Config, work: Path, phase_index: int, first_epoch: int, *, on_saved, model, extra=()
):
    import keras

    monitor = cfg.training.monitor
    mode = monitor_mode(monitor)
    values, rates = _phase_history(work, monitor, first_epoch)
    callbacks = [
        LogLearningRate(),
        keras.callbacks.CSVLogger(str(work / "log.csv"), append=True),
        BestCheckpoint(work / "best.weights.h5", monitor, mode, saved_model=model),
        *schedule_callbacks(cfg, monitor=monitor, mode=mode, history=values, rates=rates),
    ]
    if cfg.training.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(work / "tensorboard"), write_graph=False))
    callbacks += list(extra)  # the caller's (MLflow, W&B, ...): before the backup, like ours
    # Last, so the backup holds what the callbacks above changed this epoch (a lowered
    # learning rate); a kill before it costs a repeated epoch, never a lost one.
    callbacks.append(AtomicBackup(work / f"backup_{phase_index}"))
    # after the backup: the time recorded is that of epochs a resume keeps
    callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: on_saved()))
    return callbacks


def _stopped_early(cfg: Config, work: Path, first_epoch: int) -> bool:
    """True when the logged epochs of a phase already met its early-stopping rule (a run
    killed between stopping and recording it must not train on)."""
    patience = cfg.training.early_stopping_patience
    if patience <= 0:
        return False
    values, _ = _phase_history(work, cfg.training.monitor, first_epoch)
    return bool(values) and plateau_state(values, monitor_mode(cfg.training.monitor))[1] >= patience


def _check_monitor(cfg: Config, labels: list[str]) -> None:
    names = [f"val_{name}" for name in metric_names(labels)]
    if cfg.training.monitor not in names:
        raise ConfigError(
            f"training.monitor: {cfg.training.monitor!r} is not logged; choose one of {names}"
        )


def _history(work: Path) -> list[dict]:
    rows = []
    for row in _log_rows(work):
        rows.append({k: (float(v) if v not in ("", None) else None) for k, v in row.items()})
    return rows


def train(
    cfg: Config,
    *,
    overwrite: bool = False,
    export_to: str | os.PathLike | None = None,
    progress: bool | None = None,
    run_dir: str | os.PathLike | None = None,
    command: str | None = None,
    callbacks: Sequence = (),
) -> Artifact:
    """Train the configured model and write its artifact to ``runs/<name>/``.

    Resumes an interrupted run of the same config; returns the finished artifact at once
    when the run is already complete. ``export_to`` also copies the artifact there (e.g.
    ``models/<name>``); ``run_dir`` replaces ``runs/<name>``; ``command`` (the command line
    that reproduces the run) is recorded for the model card. ``progress``: Keras' progress
    bar (None: on a terminal only; otherwise one line per epoch, as in a log file).
    ``callbacks``: Keras callbacks of your own (an MLflow or Weights & Biases logger, ...),
    added to every phase's ``fit`` after cxr-keras' own and before its per-epoch backup;
    ``training.tensorboard: true`` writes TensorBoard logs to ``<run>/train/tensorboard``.

    Example:
        >>> from cxr_keras.config import load_config
        >>> from cxr_keras.recipes import find_recipe
        >>> artifact = train(load_config(find_recipe("demo")))  # doctest: +SKIP
        >>> artifact.labels  # doctest: +SKIP
        ['PNEUMONIA']
    """
    import keras
    import tensorflow as tf

    progress = progress_bars(progress)
    run_dir = Path(run_dir) if run_dir is not None else cfg.run_dir
    work = run_dir / "train"
    if overwrite:
        shutil.rmtree(work, ignore_errors=True)
        for name in (MODEL_FILE, META_FILE, OOD_FILE):
            (run_dir / name).unlink(missing_ok=True)
    _check_run_dir(work, cfg)
    state = _read_state(work)
    if state.get("finished") and (run_dir / META_FILE).is_file():
        log.info("%s is already trained; --overwrite trains it again", run_dir)
        artifact = load_artifact(run_dir)
        if export_to:
            copy_artifact(run_dir, export_to)
        return artifact

    started = time.time()
    # a resumed run's wall time counts the earlier processes' kept epochs too
    earlier_s = float(state.get("wall_time_s", 0.0))
    state["processes"] = int(state.get("processes", 0)) + 1

    def record_wall_time() -> None:
        state["wall_time_s"] = round(earlier_s + time.time() - started, 1)
        _write_state(work, state)

    quiet_dataset_notes()
    keras.utils.set_random_seed(cfg.seed)
    if cfg.training.deterministic:
        tf.config.experimental.enable_op_determinism()
    if state["phases_done"] or state.get("phase_start"):
        # resuming: the split the run started with, even if the folder changed since
        manifest = read_manifest(work / "manifest.csv")
    else:
        manifest = prepare_data(cfg.data, cfg.image, seed=cfg.seed, progress=progress)
        save_manifest(manifest, work / "manifest.csv")
    train_df, val_df = split_frame(manifest, "train"), split_frame(manifest, "val")
    if len(train_df) == 0 or len(val_df) == 0:
        raise ValueError(
            f"training needs train and validation images; got {len(train_df)} and "
            f"{len(val_df)} (set data.split.val, or give a val split folder)"
        )
    labels = list(manifest.attrs["labels"])
    _check_monitor(cfg, labels)
    train_ds, val_ds, steps_per_epoch = fit_datasets(cfg, train_df, val_df)

    strategy = (
        tf.distribute.MirroredStrategy()
        if cfg.training.strategy == "mirrored"
        else tf.distribute.get_strategy()
    )
    mixed = use_mixed_precision(cfg.training.mixed_precision)
    with strategy.scope():
        built = build_for(cfg, labels, mixed_precision=mixed)
    model = built.model
    phases = _phases(cfg)
    for phase in phases:  # a misspelt layer must fail now, not after hours of phase 1
        check_layer_name(built, phase.freeze)
    loss = make_loss(cfg, class_weights_for(cfg, train_df))
    # per phase: trained on the frozen part's cached output, and why (kept across resumes)
    feature_cache = state.setdefault("feature_cache", {})
    for index, phase in enumerate(phases):
        if phase.name in state["phases_done"]:
            model.load_weights(work / f"{phase.name}.weights.h5")
            continue
        set_trainable(
            built,
            phase.freeze,
            freeze_batchnorm=cfg.model.freeze_batchnorm and cfg.model.pretrained,
        )
        # only the head trains: it trains on the frozen part's output, computed once
        cached, reason = (
            cache_applies(cfg) if phase.freeze == "backbone" else (False, "the backbone trains")
        )
        feature_cache[phase.name] = {"on": cached, "reason": reason}
        fit_model, fit_train, fit_val = model, train_ds, val_ds
        if cached:
            body, fit_model = split_at_head(model)  # the head shares the model's layers
            fit_train, fit_val, _ = feature_datasets(
                CachedFeatures(body, cfg, work / "feature_cache"),
                cfg,
                train_df=train_df,
                val_df=val_df,
                labels=labels,
            )
        with strategy.scope():
            compile_for(
                fit_model,
                cfg,
                labels=labels,
                loss=loss,
                learning_rate=learning_rate_for(
                    cfg, phase.learning_rate, epochs=phase.epochs, steps_per_epoch=steps_per_epoch
                ),
            )
        log.info(
            "phase %s: %d epochs at learning rate %g, %s; feature cache %s (%s)",
            phase.name,
            phase.epochs,
            phase.learning_rate,
            trainable_summary(model),
            "on" if cached else "off",
            reason,
        )
        first_epoch = state.setdefault("phase_start", {}).setdefault(phase.name, state["epochs"])
        _write_state(work, state)
        _drop_unsaved_epochs(work, _resume_epoch(work, index, first_epoch))
        if not _stopped_early(cfg, work, first_epoch):
            fit_model.fit(
                fit_train,
                validation_data=fit_val,
                epochs=first_epoch + phase.epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=_callbacks(
                    cfg,
                    work,
                    index,
                    first_epoch,
                    on_saved=record_wall_time,
                    model=model,
                    extra=callbacks,
                ),
                verbose=1 if progress else 2,
            )
        model.save_weights(work / f"{phase.name}.weights.h5")
        # the next phase numbers its epochs on from here (early stopping may end one early;
        # the log has one row per finished epoch, whichever process ran it)
        state["epochs"] = len(_log_rows(work))
        state["phases_done"].append(phase.name)
        _write_state(work, state)
        shutil.rmtree(work / f"backup_{index}", ignore_errors=True)

    best = BestCheckpoint(
        work / "best.weights.h5", cfg.training.monitor, monitor_mode(cfg.training.monitor)
    ).record()
    if best is not None:
        with warnings.catch_warnings():
            # saved with an earlier phase's optimizer, whose state is of no use from here on
            # (the model is recompiled without one): Keras' note on skipping it is noise
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(work / "best.weights.h5")
    with strategy.scope():
        compile_for(model, cfg, labels=labels, loss=loss)
    validation = {
        k: float(v) for k, v in model.evaluate(val_ds, verbose=0, return_dict=True).items()
    }
    # Export a clean float32 copy: no optimizer state, no float16 compute on a CPU;
    # wrapped to average its test-time views when the recipe asks for them.
    exported = build_for(cfg, labels, mixed_precision=False)
    exported.model.set_weights(model.get_weights())
    final = with_tta(exported.model, cfg.model.tta)
    history = _history(work)
    meta = {
        "name": cfg.name,
        "labels": labels,
        "image_spec": config_to_dict(cfg.image),
        "preprocess": config_to_dict(cfg.preprocess),
        "model": {
            "backbone": exported.backbone,
            "weights": cfg.model.weights,
            "pooling": cfg.model.pooling,
            "feature_layer": exported.feature_layer,
            "tta": list(cfg.model.tta),
            "trained_with_mixed_precision": mixed,
            **trainable_summary(model),
        },
        "thresholds": {"default": {label: 0.5 for label in labels}},
        "decision_rule": "default",
        "temperature": 1.0,
        "referral": None,
        "data": {
            "config": config_to_dict(cfg.data),
            "split_seed": cfg.seed,
            "summary": dataset_summary(manifest),
        },
        "training": {
            "epochs_run": len(history),
            "best_epoch": best["epoch"] + 1 if best else None,
            "monitor": cfg.training.monitor,
            "phases": [p.__dict__ for p in phases],
            "feature_cache": feature_cache,
            "history": history,
            "wall_time_s": round(earlier_s + time.time() - started, 1),
            "processes": state["processes"],  # more than one: resumed after a kill
            "command": command,
        },
        "metrics": {"validation": validation},
        "config": config_to_dict(cfg),
    }
    save_artifact(final, meta, run_dir)
    artifact = load_artifact(run_dir)
    try:  # the model is saved: a detector that cannot be fitted costs no trained work
        fit_and_store(artifact, train=train_df, val=val_df if len(val_df) else None)
    except ValueError as exc:
        log.warning("out-of-distribution detector not fitted (%s); evaluate fits it", exc)
    write_model_card(artifact)
    state["finished"] = True
    _write_state(work, state)
    log.info(
        "artifact written to %s (validation AUC %.4f)", run_dir, validation.get("auc", float("nan"))
    )
    if export_to:
        copy_artifact(run_dir, export_to)
        log.info("exported to %s", export_to)
    return artifact
