"""Fit an artifact's out-of-distribution detector on its own splits and store it.

Called when an artifact is trained (``train``) and when it is evaluated and stored
(``evaluate``; ``--update-model`` for a shipped model, ``--refit-ood`` to fit again): one
forward pass over the training split (the class means and covariance) and one over the
validation split (the threshold, at a quantile of its scores). Out-of-distribution
examples are never used.

Example:
    >>> from cxr_keras.artifact.store import load_artifact
    >>> artifact = load_artifact("runs/demo")  # doctest: +SKIP
    >>> entry = fit_and_store(artifact, train=train_df, val=val_df)  # doctest: +SKIP
    >>> entry["threshold_from"]  # doctest: +SKIP
    {'split': 'val', 'images': 785}
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cxr_keras.artifact.ood import DEFAULT_QUANTILE, detector_layers, fit_detector, save_detector
from cxr_keras.artifact.predictor import ModelOutputs, Predictor, file_facts, manifest_sizes
from cxr_keras.artifact.store import Artifact, write_meta
from cxr_keras.data.input_checks import InputChecks

__all__ = ["fit_and_store"]

log = logging.getLogger(__name__)

MIN_VALIDATION_IMAGES = 50  # fewer: the quantile is a guess, and the entry says so


def fit_and_store(
    artifact: Artifact,
    *,
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 32,
) -> dict:
    """Fit the detector on ``train``'s films, threshold it on ``val``'s, write
    ``ood.npz`` and the ``ood`` entry of ``cxr_model.json``; returns the entry (also set
    in ``artifact.meta``)."""
    from cxr_keras.data.batching import label_arrays

    layers = detector_layers(artifact.explain_model)
    predictor = Predictor(artifact, feature_layers=layers)  # raw features, nothing scored

    def features_of(df: pd.DataFrame, what: str) -> tuple[ModelOutputs, pd.DataFrame]:
        outputs = predictor.manifest_outputs(df, batch_size)
        rows = outputs.decoded
        if not rows.all():
            log.warning("%s: %d films could not be decoded; left out", what, (~rows).sum())
        kept = ModelOutputs(
            outputs.logits[rows], [f[rows] for f in outputs.features], outputs.statistics[rows]
        )
        return kept, df[rows].reset_index(drop=True)

    sharded = "shards" in train.attrs  # the source files need not be here
    train_out, train = features_of(train, "training split")
    if len(train) < 2:
        raise ValueError("fewer than 2 training films could be decoded: no detector fitted")
    y, _ = label_arrays(train, artifact.labels)
    groups = (np.nan_to_num(y) > 0).any(axis=1).astype(int)  # no finding / a finding
    val_out = None
    if val is not None and len(val):
        val_out, val = features_of(val, "validation split")
        if len(val) == 0:  # none decoded: the threshold falls back to the training split
            val_out = None
    detector = fit_detector(
        train_out.features,
        groups=groups,
        val_features=val_out.features if val_out is not None else None,
        layers=layers,
        quantile=quantile,
        checks=InputChecks(),
    )
    notes = []
    if val_out is None:
        notes.append("no validation split: the threshold is a quantile of the training split")
    elif len(val) < MIN_VALIDATION_IMAGES:
        notes.append(
            f"only {len(val)} validation films: the {quantile:.1%} quantile is rough; "
            "evaluate with a larger validation split"
        )
    if val_out is not None and not sharded:  # the input checks' share on validation films
        colour, aspect = file_facts(list(val["path"]), sizes=manifest_sizes(val))
        checked = [
            detector.checks.reasons(
                std=val_out.statistics[i, 0],
                spread=val_out.statistics[i, 1],
                colour=colour[i],
                aspect=aspect[i],
            )
            for i in range(len(val))
        ]
        detector.summary["input_checks_flag_rate"] = {
            "val": float(np.mean([bool(r) for r in checked]))
        }
    detector.summary["notes"] = notes
    entry = save_detector(detector, artifact.path)
    artifact.meta["ood"] = entry
    write_meta(artifact.meta, artifact.path)
    log.info(
        "out-of-distribution detector fitted on %d training films; threshold %.3g (%.1f%% of "
        "%d %s films), layers %s",
        len(train),
        detector.threshold,
        100 * quantile,
        entry["threshold_from"]["images"],
        entry["threshold_from"]["split"],
        ", ".join(layers),
    )
    return entry
