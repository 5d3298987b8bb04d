"""Evaluation of a model artifact: a report with confidence intervals, operating points and
calibration (the stage behind ``python -m cxr_keras.evaluate``).

Thresholds (Youden J, F1-max, sensitivity >= X) and, with ``--calibrate``, per-label
temperatures are fitted on the artifact's VALIDATION split, which is rebuilt from the data
config and split seed it records, and stored in its ``cxr_model.json`` (an artifact under
``models/`` only with ``--update-model``), so predict and the app use them. The report
on the evaluated split (default: the artifact's test split; ``--data`` takes a dataset
YAML, a manifest CSV or a class-folder tree, ``--split all`` every row of it) goes to
``<artifact>/evaluation/<split>/`` (``runs/<name>/evaluation/<split>/`` for ``models/``):
``report.md``, ``report.html``, ``metrics.json``, ``predictions.csv``, ``figures/``.

Example:
    >>> result = evaluate("runs/demo", split="test")  # doctest: +SKIP
    >>> result["discrimination"]["macro"]["roc_auc"]  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_keras.pretrained import PRETRAINED_FOLDER

__all__ = ["evaluate", "report_folder"]

log = logging.getLogger("cxr_keras.evaluate")

ERROR_GRID = 12  # images in the most-confident-errors figure
SAMPLE_GRID = 12  # images in the sample-predictions figure
AGE_BANDS = ((0, 18, "0-17"), (18, 40, "18-39"), (40, 60, "40-59"), (60, 80, "60-79"))
SUBGROUP_COLUMNS = {
    "sex": ("sex", "gender", "patient gender", "patient_sex", "patientsex"),
    "age band": ("age", "patient age", "patient_age", "patientage"),
    "view": ("view", "view position", "viewposition"),
}


def is_shipped(path: str | os.PathLike) -> bool:
    """True for a shipped model (:mod:`cxr_keras.pretrained`) or an artifact under a
    ``models/`` folder (where a project keeps the models it hands out)."""
    parent = Path(path).resolve().parent
    return parent == PRETRAINED_FOLDER or parent.name == "models"


def report_folder(artifact_path: str | os.PathLike, split: str, data=None) -> Path:
    """Where :func:`evaluate` writes its report by default: ``<artifact>/evaluation/<key>``
    (``runs/<name>/evaluation/<key>`` for a shipped model, which is never written to).

    Example:
        >>> report_folder("runs/demo", "test").as_posix()
        'runs/demo/evaluation/test'
    """
    path = Path(artifact_path)
    base = Path("runs") / path.resolve().name if is_shipped(path) else path
    return base / "evaluation" / _report_key(data, split)


def _report_key(data, split: str) -> str:
    """``test`` for the artifact's own split, ``<data name>_<split>`` for other data, so
    evaluating elsewhere never overwrites the in-distribution report."""
    if data is None:
        return split
    name = "manifest" if isinstance(data, pd.DataFrame) else Path(data).stem or Path(data).name
    return f"{name}_{split}"


def _subgroups(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Subgroup columns present in a manifest: {name: value per row (None if unknown)}."""
    by_lower = {c.lower(): c for c in df.columns}
    out = {}
    for name, spellings in SUBGROUP_COLUMNS.items():
        column = next((by_lower[s] for s in spellings if s in by_lower), None)
        if column is None:
            continue
        values = df[column]
        if name == "age band":
            ages = pd.to_numeric(values.astype(str).str.extract(r"(\d+)")[0], errors="coerce")
            bands = pd.Series([None] * len(df), dtype=object)
            for low, high, text in AGE_BANDS:
                bands[(ages >= low) & (ages < high)] = text
            bands[ages >= AGE_BANDS[-1][1]] = f"{AGE_BANDS[-1][1]}+"
            values = bands
        else:
            values = values.map(
                lambda v: str(v).strip().upper() if pd.notna(v) and str(v).strip() else None
            )
        if values.notna().any():
            out[name] = values.reset_index(drop=True)
    return out


def _answers(predictor, df: pd.DataFrame, batch_size: int, what: str):
    """The answers for a manifest's decodable rows (out-of-distribution verdicts
    included), those rows, and the paths left out."""
    answers, ok = predictor.predict_manifest(df, batch_size)
    return answers, *_kept(df, ok, what)


def _kept(df: pd.DataFrame, ok: np.ndarray, what: str):
    failed = [str(p) for p in df["path"][~ok]]
    for path in failed:
        log.warning("%s: %s could not be decoded; left out", what, path)
    kept = df[ok].reset_index(drop=True)
    kept.attrs = dict(df.attrs)
    return kept, failed


def _fit_detector(artifact, *, quantile: float, batch_size: int) -> str | None:
    """Fit and store the out-of-distribution detector on the artifact's own training and
    validation splits; returns a note when it cannot (the splits' files are gone)."""
    from cxr_keras.artifact.ood_fit import fit_and_store
    from cxr_keras.evaluation.frames import artifact_manifest

    try:
        manifest = artifact_manifest(artifact)
        train = manifest[manifest["split"] == "train"].reset_index(drop=True)
        val = manifest[manifest["split"] == "val"].reset_index(drop=True)
        if len(train) == 0:
            raise ValueError("the artifact's training split has no films")
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError
        log.warning("out-of-distribution detector not fitted: %s", exc)
        return f"The out-of-distribution detector could not be fitted ({exc})."
    fit_and_store(
        artifact,
        train=train,
        val=val if len(val) else None,
        quantile=quantile,
        batch_size=batch_size,
    )
    return None


def _overlap_with_own_splits(artifact, evaluated: pd.DataFrame) -> dict[str, int]:
    """How many evaluated files are in the artifact's own train / val splits (by resolved
    path; nothing when those splits cannot be rebuilt here)."""
    from cxr_keras.evaluation.frames import artifact_manifest

    try:
        own = artifact_manifest(artifact)
    except (OSError, ValueError):  # ConfigError is a ValueError
        return {}
    mine = {str(Path(p).resolve()) for p in evaluated["path"]}
    counts = {}
    for split in ("val", "train"):
        paths = own.loc[own["split"] == split, "path"] if "split" in own else []
        count = sum(str(Path(p).resolve()) in mine for p in paths)
        if count:
            counts[split] = count
    return counts


def _label_shift_entry(logits, y, mask, labels) -> dict:
    """What ``predict --adapt-prior`` needs, fitted on validation: per label the
    bias-corrected temperature scaling and the prevalence it is calibrated at (labels
    whose validation entries hold one class are left out)."""
    from cxr_keras.artifact.label_shift import fit_bcts

    calibration, prevalence = {}, {}
    for j, label in enumerate(labels):
        known = mask[:, j] > 0
        yj = y[known, j]
        if len(yj) == 0 or yj.min() == yj.max():
            continue
        calibration[label] = fit_bcts(logits[known, j], yj)
        prevalence[label] = float(yj.mean())
    return {
        "method": "EM prior re-estimation (Saerens et al. 2002) on bias-corrected "
        "temperature scaling (Alexandari et al. 2020)",
        "calibration": calibration,
        "prevalence": prevalence,
        "fitted_on": {"split": "val", "images": len(y)},
    }


def _reference_profile(
    predictor, answers, val, *, temperatures, thresholds, decision_rule, referral_rule
) -> dict:
    """The reference profile (:mod:`cxr_keras.artifact.reference_profile`) of the
    validation answers at the temperatures and decision thresholds being stored,
    referred as predict refers them without MC dropout."""
    from cxr_keras.artifact.predictor import manifest_sizes
    from cxr_keras.artifact.reference_profile import profile_answers

    return profile_answers(
        predictor,
        answers,
        sizes=manifest_sizes(val),
        source=f"the val split ({len(val)} images)",
        temperatures=temperatures,
        thresholds=thresholds,
        decision_rule=decision_rule,
        referral_rule=referral_rule,
    )


def _ood_summary(predictor, answers) -> dict:
    """How many evaluated images were flagged out of distribution, and why."""
    flagged = answers.ood
    kinds: dict[str, int] = {}
    for reasons in answers.ood_reasons:
        for reason in reasons:
            kind = reason.split(" (")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    detector = predictor.detector
    return {
        "detector": detector is not None,
        "threshold": detector.threshold if detector else None,
        "flagged_images": int(flagged.sum()),
        "flagged_share": float(flagged.mean()) if len(flagged) else None,
        "reasons": kinds,
    }


def _threshold_table(y, p, mask, labels, thresholds: dict[str, list[float]]) -> dict:
    """{rule: {label: metrics}} for each rule's thresholds."""
    from cxr_keras.evaluation.metrics import threshold_metrics

    table = {}
    for rule, values in thresholds.items():
        table[rule] = {}
        for j, label in enumerate(labels):
            known = mask[:, j] > 0
            table[rule][label] = threshold_metrics(y[known, j], p[known, j], values[j])
    return table


def _calibration(y, p, mask) -> dict:
    from cxr_keras.artifact.calibration import ECE_BINS, brier_score, expected_calibration_error

    known = mask > 0
    per_label = [
        {
            "ece": expected_calibration_error(y[known[:, j], j], p[known[:, j], j]),
            "brier": brier_score(y[known[:, j], j], p[known[:, j], j]),
        }
        for j in range(y.shape[1])
    ]
    return {
        "bins": ECE_BINS,
        "binning": "equal-width",
        "ece": expected_calibration_error(y[known], p[known]),
        "brier": brier_score(y[known], p[known]),
        "per_label": per_label,
    }


def _grid_films(df, rows, spec) -> dict[int, np.ndarray]:
    """The model inputs of some evaluated rows, read as the evaluation read them: from the
    files, or from the shards of a shard-backed manifest (whose original files may be
    elsewhere). A row that no longer decodes is missing from the result."""
    from cxr_keras.data.pipeline import make_indexed_dataset

    rows = list(dict.fromkeys(int(r) for r in rows))
    if not rows:
        return {}
    part = df.iloc[rows].reset_index(drop=True)
    part.attrs = dict(df.attrs)
    films = {}
    for positions, images in make_indexed_dataset(part, spec, batch_size=len(rows)):
        for k, image in zip(positions.numpy(), images.numpy(), strict=True):
            films[rows[int(k)]] = image
    return films


def _confident_errors(df, *, y, p, mask, labels, thresholds, spec, path) -> str:
    """The grid of the most confident wrong decisions at the decision thresholds."""
    from cxr_keras.evaluation.plots import confident_errors

    wrong = []
    for j in range(len(labels)):
        for i in np.flatnonzero(mask[:, j] > 0):
            if (p[i, j] >= thresholds[j]) != bool(y[i, j]):
                wrong.append((abs(p[i, j] - y[i, j]), i, j))
    wrong.sort(reverse=True)
    films = _grid_films(df, [i for _, i, _ in wrong[:ERROR_GRID]], spec)
    images, captions = [], []
    for _, i, j in wrong[:ERROR_GRID]:
        if i not in films:
            continue
        kind = "false +" if y[i, j] == 0 else "false -"
        images.append(films[i])
        name = labels[j] if len(labels) > 1 else ""
        captions.append(f"{kind} {name} p={p[i, j]:.2f}\n{Path(df['path'][i]).name[:22]}")
    return confident_errors(images, captions, path)


def sample_prediction_grid(df, *, y, p, mask, labels, thresholds, spec, path, seed: int = 0) -> str:
    """A grid of randomly drawn images (half with a positive label where there are) with
    the truth and the decision: green where every known label is decided right, red
    where one is not."""
    from cxr_keras.evaluation.plots import captioned_grid

    rng = np.random.default_rng(seed)
    positive = np.flatnonzero(((y == 1) & (mask > 0)).any(axis=1))
    negative = np.setdiff1d(np.arange(len(df)), positive)
    half = SAMPLE_GRID // 2
    take = min(len(positive), max(half, SAMPLE_GRID - len(negative)))
    chosen = np.concatenate(
        [
            rng.choice(positive, take, replace=False),
            rng.choice(negative, min(len(negative), SAMPLE_GRID - take), replace=False),
        ]
    ).astype(int)
    decided = p >= np.asarray(thresholds)[None, :]
    films = _grid_films(df, chosen, spec)
    images, captions, colors = [], [], []
    for i in chosen:
        if i not in films:
            continue
        known = mask[i] > 0
        truth = [labels[j] for j in np.flatnonzero(known & (y[i] == 1))]
        said = [labels[j] for j in np.flatnonzero(decided[i])]
        right = bool(np.all(decided[i][known] == (y[i][known] == 1)))
        if len(labels) == 1:
            text = (
                f"{labels[0]}: truth {'+' if truth else '-'}, p={p[i, 0]:.2f}, "
                f"said {'+' if said else '-'}"
            )
        else:
            text = f"truth: {', '.join(truth) or 'none'}\nsaid: {', '.join(said) or 'none'}"
        images.append(films[i])
        captions.append(f"{text}\n{Path(df['path'][i]).name[:22]}")
        colors.append("tab:green" if right else "tab:red")
    return captioned_grid(images, captions, path=path, colors=colors, empty="no images")


def evaluate(
    model,
    *,
    data=None,
    split: str = "test",
    out: str | os.PathLike | None = None,
    calibrate: bool = False,
    min_sensitivity: float = 0.95,
    decision_rule: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    update_model: bool = False,
    batch_size: int = 32,
    subgroup_bootstrap: int = 200,
    referral: dict | None = None,
    threshold_estimate: str = "point",
    refit_ood: bool = False,
    ood_quantile: float | None = None,
    stress: bool = False,
    stress_images: int = 400,
    adapt_prior: bool = False,
    prevalence: dict[str, float] | float | None = None,
    stressed_thresholds: bool = False,
    calibrate_on: str = "val",
) -> dict:
    """Evaluate an artifact and write the report (see the module docstring); returns the
    ``metrics.json`` content.

    ``model``: an :class:`~cxr_keras.artifact.store.Artifact` or its folder. ``data``: None (the
    artifact's own split), a manifest DataFrame, or the path of a dataset YAML, manifest
    CSV or class-folder tree. ``referral``: settings of the referral rule to store
    (``band``, ``max_std``, ``passes``; see :mod:`cxr_keras.explanation.uncertainty`).
    ``threshold_estimate``: ``point`` stores each rule's threshold on the validation
    split as it is; ``bootstrap`` uses patient-level bootstrap resamples of validation
    (:func:`~cxr_keras.evaluation.operating_points.bootstrap_estimate`): the median for Youden and
    F1, a steadier choice when the point value sits on a knife edge, and for the screening
    rule the 2.5th percentile, so its minimum sensitivity holds in 97.5 % of resamples
    rather than in half of them. Either way the spread of those resamples is reported
    (``threshold_stability``).

    The out-of-distribution detector (:mod:`cxr_keras.artifact.ood`) is fitted on the
    artifact's own training split, its threshold on its validation split, when the
    artifact is stored and has none, or with ``refit_ood`` (``ood_quantile``: its
    validation quantile, default 99.5%). The report gives the share of evaluated images
    it flags.

    ``stress``: also re-score (up to ``stress_images``, drawn per class) the evaluated
    films under the acquisition shifts of :mod:`cxr_keras.evaluation.stress`.

    ``adapt_prior`` (re-estimate each label's prevalence in the evaluated images) or
    ``prevalence`` (a declared one): also measure the answers after the label-shift
    correction predict makes with the same option (:mod:`cxr_keras.evaluation.prior_shift`).

    ``stressed_thresholds``: also choose two rules on (up to ``stress_images``) validation
    films as they are and under every acquisition shift of the stress evaluation (copies
    the out-of-distribution check flags left out): ``youden_stressed``, the best J over
    those versions pooled, and ``sensitivity_<X>_stressed``, whose sensitivity floor holds
    on every version. Operating points meant to hold on films from other devices and
    exposures, not only on pristine validation films.

    ``calibrate_on``: ``val`` fits the temperatures (``calibrate``) on the validation films
    as they are; ``stressed`` on (up to ``stress_images``) of them as they are and under
    every acquisition shift, pooled as for ``stressed_thresholds``: a temperature fitted to
    how the scores behave on films from other devices and exposures too, not only on
    pristine ones.
    """
    from cxr_keras.artifact.calibration import fit_temperature, negative_log_likelihood, sigmoid
    from cxr_keras.artifact.ood import DEFAULT_QUANTILE
    from cxr_keras.artifact.predictor import Predictor
    from cxr_keras.artifact.referral import check_rule, refer, rule_of
    from cxr_keras.artifact.store import Artifact, load_artifact
    from cxr_keras.core.result_names import STRESSED, rule_names, stressed_rule_names
    from cxr_keras.data.batching import label_arrays
    from cxr_keras.evaluation.frames import evaluation_frames
    from cxr_keras.evaluation.metrics import discrimination
    from cxr_keras.evaluation.operating_points import (
        bootstrap_estimate,
        choose_thresholds,
        midway_below,
        sensitivity_floor_over,
        threshold_stability,
    )

    if not 0 < min_sensitivity <= 1:
        raise ValueError(f"--min-sensitivity must be in (0, 1], got {min_sensitivity}")
    if threshold_estimate not in ("point", "bootstrap"):
        raise ValueError(f"--threshold-estimate: point or bootstrap, got {threshold_estimate!r}")
    if bootstrap < 100:
        raise ValueError(f"--bootstrap: at least 100 resamples for a 95% interval, got {bootstrap}")
    artifact = model if isinstance(model, Artifact) else load_artifact(model)
    labels = artifact.labels
    referral_rule = check_rule({**rule_of(artifact.meta), **(referral or {})})  # fail early
    store = not is_shipped(artifact.path) or update_model
    out = Path(out) if out is not None else report_folder(artifact.path, split, data)
    (out / "figures").mkdir(parents=True, exist_ok=True)

    if ood_quantile is not None and not 0.5 < ood_quantile < 1:
        raise ValueError(f"--ood-quantile must be in (0.5, 1), got {ood_quantile}")
    if (refit_ood or ood_quantile is not None) and not store:
        raise ValueError(
            f"{artifact.path} is a shipped model: add --update-model to fit its "
            "out-of-distribution detector again"
        )
    if adapt_prior and prevalence is not None:
        raise ValueError("--adapt-prior estimates the prevalence; --prevalence declares it")
    if decision_rule and decision_rule.endswith(STRESSED) and not stressed_thresholds:
        raise ValueError(f"--decision-rule {decision_rule} needs --stressed-thresholds")
    if calibrate_on not in ("val", "stressed"):
        raise ValueError(f"--calibrate-on: val or stressed, got {calibrate_on!r}")
    if calibrate_on == "stressed" and not calibrate:
        raise ValueError("--calibrate-on stressed needs --calibrate")
    evaluated, val, source = evaluation_frames(artifact, data, split)
    correcting = adapt_prior or prevalence is not None
    if correcting and val is None and not artifact.meta.get("label_shift"):
        raise ValueError(
            f"{artifact.path}: no label-shift calibration stored and no validation split "
            "to fit one on: --adapt-prior and --prevalence cannot correct"
        )
    notes: list[str] = []
    if store and (refit_ood or ood_quantile is not None or not artifact.meta.get("ood")):
        note = _fit_detector(
            artifact, quantile=ood_quantile or DEFAULT_QUANTILE, batch_size=batch_size
        )
        notes += [note] if note else []
    elif not artifact.meta.get("ood"):
        notes.append(
            "This artifact has no out-of-distribution detector: only the input checks ran "
            "(fit one with --update-model)."
        )
    predictor = Predictor(artifact)
    answers, evaluated, undecodable = _answers(predictor, evaluated, batch_size, "evaluated split")
    logits = answers.logits
    if len(evaluated) == 0:
        raise ValueError(f"no image of {source} could be decoded: nothing to evaluate")
    y, mask = label_arrays(evaluated, labels)
    if undecodable:
        notes.append(f"{len(undecodable)} images could not be decoded and are left out.")

    # temperature and thresholds: fitted on validation, else the artifact's stored ones
    stability = None
    scored_val = None  # the validation films under every shift, when stressed rules need them
    calibrated_on = None
    stored_temperatures = artifact.temperatures
    temperatures = list(stored_temperatures)
    thresholds = {"default": [0.5] * len(labels)}
    rules = rule_names(min_sensitivity)
    if val is not None:
        # the answers, not only the logits: the reference profile needs their
        # out-of-distribution scores and input statistics
        val_answers, val, _ = _answers(predictor, val, batch_size, "validation split")
        val_logits = val_answers.logits
        val_y, val_mask = label_arrays(val, labels)
        if stressed_thresholds or calibrate_on == "stressed":
            from cxr_keras.evaluation.stress import score_films, stressed_scores

            if val_logits.shape[0] == 0:
                flag = "--stressed-thresholds" if stressed_thresholds else "--calibrate-on"
                raise ValueError(f"{flag}: no validation film could be decoded")
            scored_val = score_films(
                predictor, val, y=val_y, mask=val_mask, limit=stress_images, seed=seed
            )
            # pooled once: its logits fit the temperature, its probabilities the rules
            pool = stressed_scores(
                predictor,
                val,
                y=val_y,
                mask=val_mask,
                temperatures=[1.0] * len(labels),
                limit=stress_images,
                seed=seed,
                scored=scored_val,
            )
        if calibrate:
            fit_on = (val_logits, val_y, val_mask)
            calibrated_on = f"the val split ({len(val)} images)"
            if calibrate_on == "stressed":
                fit_on = (pool["logits"], pool["y"], pool["mask"])
                calibrated_on = (
                    f"{pool['films']} films of the val split, each as it is and under "
                    f"{pool['versions'] - 1} acquisition shifts, pooled "
                    f"({pool['left_out']} flagged copies left out)"
                )
            temperatures = fit_temperature(fit_on[0], fit_on[1], mask=fit_on[2])
            val_nll = {
                "before": negative_log_likelihood(val_logits[val_mask > 0], val_y[val_mask > 0]),
                "after": negative_log_likelihood(
                    (val_logits / np.asarray(temperatures))[val_mask > 0], val_y[val_mask > 0]
                ),
            }
        val_p = sigmoid(val_logits / np.asarray(temperatures))
        label_shift = _label_shift_entry(val_logits, val_y, val_mask, labels)
        chosen, threshold_notes = choose_thresholds(
            val_y, val_p, mask=val_mask, labels=labels, min_sensitivity=min_sensitivity
        )
        notes += threshold_notes
        val_patients = val["patient_id"].tolist() if "patient_id" in val else None
        stability = threshold_stability(
            val_y,
            val_p,
            mask=val_mask,
            labels=labels,
            patient_ids=val_patients,
            min_sensitivity=min_sensitivity,
            seed=seed,
        )
        if threshold_estimate == "bootstrap":
            for rule in rules:
                for label, spread in stability[rule].items():
                    column = val_p[:, labels.index(label)]
                    value = bootstrap_estimate(rule, spread)
                    if np.isin(value, column):  # a resample's midpoint, yet a film's score
                        value = midway_below(value, column)
                    chosen[rule][label] = value
        stressed_note = ""
        if stressed_thresholds:
            pool["p"] = sigmoid(pool["logits"] / np.asarray(temperatures))
            robust, robust_notes = choose_thresholds(
                pool["y"],
                pool["p"],
                mask=pool["mask"],
                labels=labels,
                min_sensitivity=min_sensitivity,
            )
            notes += robust_notes
            youden_name, floor_name = stressed_rule_names(min_sensitivity)
            chosen[youden_name] = robust["youden"]  # the best J over the versions pooled
            chosen[floor_name] = {}  # the floor holds on each version, not only pooled
            for j, label in enumerate(labels):
                known = pool["mask"][:, j] > 0
                try:
                    chosen[floor_name][label] = sensitivity_floor_over(
                        pool["y"][known, j],
                        pool["p"][known, j],
                        groups=pool["version"][known],
                        minimum=min_sensitivity,
                    )
                except ValueError:  # one class in validation: as choose_thresholds does
                    chosen[floor_name][label] = robust[rules[2]][label]
            rules = [*rules, youden_name, floor_name]
            stressed_note = (
                f"; the {STRESSED.strip('_')} rules on {pool['films']} of its films, each "
                f"as it is and under {pool['versions'] - 1} acquisition shifts, pooled "
                f"({pool['left_out']} flagged copies left out)"
            )
        for rule in rules:
            thresholds[rule] = [chosen[rule][label] for label in labels]
        estimate = (
            "bootstrap: medians, screening at the 2.5th percentile"
            if threshold_estimate == "bootstrap"
            else "point values"
        )
        threshold_source = (
            f"chosen on the validation split ({len(val)} images; {estimate}; each midway "
            f"between two validation scores{stressed_note})"
        )
    else:
        for wanted, flag in (
            (calibrate, "--calibrate"),
            (stressed_thresholds, "--stressed-thresholds"),
        ):
            if wanted:
                raise ValueError(
                    f"{flag} needs the artifact's validation split, which is not found"
                )
        for rule, table in artifact.meta["thresholds"].items():
            thresholds[rule] = [float(table[label]) for label in labels]
        threshold_source = "stored in the artifact (its validation split was not found)"
        label_shift = None
    if decision_rule is None:  # Youden when it was just chosen, else what the artifact says
        decision_rule = "youden" if val is not None else artifact.decision_rule
    if decision_rule not in thresholds:
        raise ValueError(f"--decision-rule {decision_rule!r}: one of {sorted(thresholds)}")
    profile = None
    if store and val is not None:  # what the monitor compares a deployment's answers with
        profile = _reference_profile(
            predictor,
            val_answers,
            val,
            temperatures=temperatures,
            thresholds=thresholds[decision_rule],
            decision_rule=decision_rule,
            referral_rule=referral_rule,
        )
    overlap = _overlap_with_own_splits(artifact, evaluated) if data is not None else {}
    for own, count in overlap.items():  # other data that holds the model's own films
        chose = "chose the thresholds and temperature" if own == "val" else "trained it"
        notes.append(
            f"{count} of the {len(evaluated)} evaluated images are in the model's own "
            f"{own} split, which {chose}: these figures are optimistic."
        )
    if data is None and split == "val" and val is not None:
        notes.append(
            "Evaluated on the validation split that chose the thresholds (and temperatures): "
            "these numbers are optimistic; report the test split."
        )

    probabilities = sigmoid(logits / np.asarray(temperatures))
    uncalibrated = sigmoid(logits)
    patient_ids = evaluated["patient_id"].tolist() if "patient_id" in evaluated else None
    result = {
        "model": str(artifact.path),
        "name": artifact.meta.get("name"),
        "evaluated": {
            "source": source,
            "split": split,
            "images": len(evaluated),
            "patients": int(evaluated["patient_id"].nunique()) if patient_ids else None,
            "undecodable": len(undecodable),
            "skipped_files": len(evaluated.attrs.get("skipped", [])),
            "skipped": [[str(s[0]), str(s[2])] for s in evaluated.attrs.get("skipped", [])],
            "undecodable_files": undecodable,
            "overlap_with_own_splits": overlap,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": labels,
        "temperatures": dict(zip(labels, temperatures, strict=True)),
        "calibrated_on": calibrated_on,  # None: the stored temperatures
        "thresholds": {
            rule: dict(zip(labels, values, strict=True)) for rule, values in thresholds.items()
        },
        "threshold_source": threshold_source,
        "threshold_estimate": threshold_estimate,
        "label_shift": label_shift,
        "threshold_stability": stability,
        "decision_rule": decision_rule,
        "discrimination": discrimination(
            y,
            probabilities,
            mask=mask,
            labels=labels,
            patient_ids=patient_ids,
            n_resamples=bootstrap,
            seed=seed,
        ),
        "at_thresholds": _threshold_table(y, probabilities, mask, labels, thresholds),
        "calibration": {"uncalibrated": _calibration(y, uncalibrated, mask)},
        "notes": notes,
    }
    near = refer(probabilities, thresholds[decision_rule], std=None, rule=referral_rule)
    result["referral"] = {
        "rule": referral_rule,
        "near_threshold_images": int(near.any(axis=1).sum()),
        "near_threshold_share": float(near.any(axis=1).mean()) if len(near) else None,
        "note": "images within the band of a decision threshold; predict, explain and the "
        "app also refer on the MC-dropout standard deviation and every image flagged out "
        "of distribution (see out_of_distribution)",
    }
    result["out_of_distribution"] = _ood_summary(predictor, answers)
    if correcting:
        from cxr_keras.evaluation.prior_shift import prior_shift_metrics

        result["prior_adaptation"] = prior_shift_metrics(
            artifact,
            logits=logits,
            probabilities=probabilities,
            y=y,
            mask=mask,
            in_scope=~answers.ood,
            declared=prevalence,
            entry=label_shift,  # fitted on validation now, else the stored one
            seed=seed,
        )
    if temperatures != [1.0] * len(labels):
        result["calibration"]["temperature_scaled"] = _calibration(y, probabilities, mask)
    if calibrate:
        result["calibration"]["validation_nll"] = val_nll

    subgroups = {}
    for name, values in _subgroups(evaluated).items():
        subgroups[name] = {}
        for value in sorted(v for v in values.dropna().unique()):
            rows = np.flatnonzero((values == value).to_numpy())
            ids = [patient_ids[i] for i in rows] if patient_ids else None
            block = discrimination(
                y[rows],
                probabilities[rows],
                mask=mask[rows],
                labels=labels,
                patient_ids=ids,
                n_resamples=subgroup_bootstrap,
                seed=seed,
            )
            subgroups[name][value] = {"images": len(rows), **block}
    result["subgroups"] = subgroups
    if stress:
        from cxr_keras.evaluation.stress import stress_manifest

        # the validation films already scored under every shift, when they are the ones evaluated
        same_films = scored_val is not None and evaluated["path"].tolist() == val["path"].tolist()
        result["stress"] = stress_manifest(  # at the thresholds and temperatures just chosen
            predictor,
            evaluated,
            y=y,
            mask=mask,
            limit=stress_images,
            seed=seed,
            scored=scored_val if same_films else None,
            thresholds=thresholds,
            temperatures=temperatures,
            decision_rule=decision_rule,
        )

    files = _figures(result, artifact, evaluated, y, mask, probabilities, uncalibrated, out)
    result["figures"] = {k: os.path.relpath(v, out) for k, v in files.items()}
    result["report"] = str(out)

    _write_predictions(
        out / "predictions.csv",
        evaluated,
        y,
        mask,
        probabilities,
        thresholds[decision_rule],
        labels,
    )
    from cxr_keras.evaluation.report import build_report

    report = build_report(result, files, store)
    (out / "report.md").write_text(report.markdown(relative_to=out), encoding="utf-8")
    (out / "report.html").write_text(report.html(), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")

    if store:
        key = _report_key(data, split)
        _store(
            artifact,
            result,
            val,
            rules,
            calibrate,
            min_sensitivity,
            referral_rule,
            out,
            key,
            profile=profile,
        )
        log.info("%s updated (%s)", artifact.path / "cxr_model.json", result["threshold_source"])
    else:
        log.info(
            "%s is a shipped model: pass --update-model to store its thresholds", artifact.path
        )
    log.info("report written to %s", out / "report.html")
    return result


def _store(
    artifact, result, val, rules, calibrate, min_sensitivity, referral_rule, out, key, *, profile
) -> None:
    """Write what evaluation decided into the artifact's description: the thresholds,
    decision rule and temperatures when they were fitted on validation now, with the
    reference profile of the validation answers at them; the referral rule and a summary
    of this evaluation in any case."""
    from cxr_keras.artifact.model_card import write_model_card
    from cxr_keras.artifact.store import Artifact, write_meta

    meta = dict(artifact.meta)
    labels = result["labels"]
    if val is not None:
        meta["thresholds"] = {
            "default": dict(meta["thresholds"].get("default", {label: 0.5 for label in labels})),
            **{rule: result["thresholds"][rule] for rule in rules},
        }
        if calibrate:
            meta["temperature"] = result["temperatures"]
            meta["calibrated_on"] = result["calibrated_on"]
        meta["operating_points"] = {
            "chosen_on": "val",
            "images": len(val),
            "estimate": result["threshold_estimate"],
            "placement": "midway between the deciding validation score and the next lower one",
            "min_sensitivity": min_sensitivity,
            "calibrated": calibrate or meta.get("operating_points", {}).get("calibrated", False),
        }
    meta["decision_rule"] = result["decision_rule"]
    meta["referral"] = referral_rule
    if result.get("label_shift"):  # for predict --adapt-prior
        meta["label_shift"] = result["label_shift"]
    macro = result["discrimination"]["macro"]
    evaluation = meta.setdefault("metrics", {}).setdefault("evaluation", {})
    calibration = result["calibration"]
    calibrated = calibration.get("temperature_scaled") or calibration["uncalibrated"]
    evaluation[key] = {
        "roc_auc": macro["roc_auc"],
        "roc_auc_ci": macro["roc_auc_ci"],
        "images": result["evaluated"]["images"],
        "source": result["evaluated"]["source"],
        "overlap_with_own_splits": result["evaluated"]["overlap_with_own_splits"],
        "at_thresholds": {  # what a model card shows: the rates at each stored rule
            rule: {
                label: {k: m[k] for k in ("threshold", "accuracy", "sensitivity", "specificity")}
                for label, m in per_label.items()
            }
            for rule, per_label in result["at_thresholds"].items()
        },
        "ece": calibrated["ece"],
        "ece_uncalibrated": calibration["uncalibrated"]["ece"],
        "threshold_stability": result["threshold_stability"],
        **({"stress": result["stress"]} if result.get("stress") else {}),
        **(
            {"prior_adaptation": result["prior_adaptation"]}
            if result.get("prior_adaptation")
            else {}
        ),
        "report": str(out),
    }
    if profile is not None:  # the file first: a description never names a missing one
        from cxr_keras.artifact.reference_profile import save_profile

        meta["reference_profile"] = save_profile(profile, artifact.path)
    write_meta(meta, artifact.path)
    write_model_card(Artifact(artifact.model, meta, artifact.path))  # the card follows the meta


def _figures(result, artifact, df, y, mask, probabilities, uncalibrated, out: Path) -> dict:
    """Draw the report's figures; returns {name: file}."""
    from cxr_keras.evaluation import plots as figures

    labels, rule = result["labels"], result["decision_rule"]
    thresholds = {r: list(t.values()) for r, t in result["thresholds"].items()}
    fig_dir = out / "figures"
    shown = {r: values for r, values in thresholds.items() if r != "default"}
    reliability = {"uncalibrated": uncalibrated}
    if "temperature_scaled" in result["calibration"]:
        reliability["temperature-scaled"] = probabilities
    files = {
        "roc_pr": figures.roc_pr_curves(
            y,
            probabilities,
            mask=mask,
            labels=labels,
            thresholds=shown or thresholds,
            path=fig_dir / "roc_pr.png",
        ),
        "confusion": figures.confusion_matrices(
            result["at_thresholds"][rule], rule, fig_dir / "confusion.png"
        ),
        "reliability": figures.reliability_diagram(
            y, reliability, mask=mask, path=fig_dir / "reliability.png"
        ),
    }
    # the two film grids take the same arguments: the decisions at the decision rule
    decided = {
        "y": y,
        "p": probabilities,
        "mask": mask,
        "labels": labels,
        "thresholds": thresholds[rule],
        "spec": artifact.image_spec,
    }
    files["errors"] = _confident_errors(df, **decided, path=fig_dir / "confident_errors.png")
    files["samples"] = sample_prediction_grid(
        df, **decided, path=fig_dir / "sample_predictions.png"
    )
    history = (artifact.meta.get("training") or {}).get("history") or []
    if history:
        monitor = artifact.meta["training"].get("monitor") or "val_loss"
        files["training"] = figures.training_curves(history, monitor, fig_dir / "training.png")
    return files


def _write_predictions(path, df, y, mask, probabilities, thresholds, labels) -> None:
    """One row per image: path, patient id, and per label the truth (empty if unknown),
    the probability and the decision at the decision threshold."""
    table = {"path": df["path"]}
    if "patient_id" in df:
        table["patient_id"] = df["patient_id"]
    for j, label in enumerate(labels):
        table[label] = pd.array(np.where(mask[:, j] > 0, y[:, j], np.nan)).astype("Int64")
        table[f"probability_{label}"] = probabilities[:, j]  # whole: rounding makes ties
        table[f"decision_{label}"] = (probabilities[:, j] >= thresholds[j]).astype(int)
    pd.DataFrame(table).to_csv(path, index=False)
