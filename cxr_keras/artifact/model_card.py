"""The model card: ``MODEL_CARD.md`` beside an artifact, written from its ``cxr_model.json``.

Everything in it comes from the artifact, so it cannot drift from the model: the data
(sources, split counts, licence and citations from the recipe's ``card`` section), the
preprocessing, the network, the command that trained it, the validation figures with
their confidence intervals, the thresholds and decision rule, the calibration, the
referral rule and the known limits. ``train`` writes it, ``evaluate`` rewrites it when it
stores new thresholds or figures, and this command regenerates it:

    python -m cxr_keras.model_card --model models/<name>

Example:
    >>> path = write_model_card(load_artifact("runs/demo"))  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'MODEL_CARD.md'
"""

from __future__ import annotations

from pathlib import Path

from cxr_keras.artifact.store import CARD_FILE
from cxr_keras.core.result_names import THRESHOLD_METRICS

__all__ = [
    "CARD_FILE",
    "intended_use",
    "is_external",
    "measured_on_statement",
    "model_card",
    "robustness_summary",
    "threshold_provenance",
    "write_model_card",
]

#: the rates at each stored threshold the card shows (titles: the metric registry)
CARD_RATES = ("accuracy", "sensitivity", "specificity")

STANDING_LIMITS = [
    "Validation images come from the same source as the training images (disjoint by "
    "patient only): expect lower figures, above all lower specificity, on other hospitals, "
    "devices and populations.",
    "The thresholds were chosen on the validation split and may not transfer to a new "
    "population; neither may the calibration.",
    "Grad-CAM heatmaps show where the model looked, not where disease is.",
]


# how evaluate's --threshold-estimate set each stored threshold, as the card says it
_ESTIMATES = {
    "point": "each rule's point value on it",
    "bootstrap": "the median over patient-level bootstrap resamples (the screening rule: "
    "their 2.5th percentile)",
}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(interval) -> str:
    return f" (95% CI {interval[0]:.3f}–{interval[1]:.3f})" if interval else ""


def _data_section(meta: dict) -> list[str]:
    data = meta.get("data") or {}
    config = data.get("config") or {}
    roots = config.get("root")
    roots = roots if isinstance(roots, list) else [roots] if roots else []
    summary = data.get("summary") or {}
    card = _card(meta)
    lines = ["## Data", ""]
    if roots:
        lines.append("Sources: " + ", ".join(f"`{root}`" for root in roots) + ".")
    if summary:
        lines.append(
            f"{summary.get('images', '?')} images of {summary.get('patients', '?')} patients, "
            "split by patient (no patient in two splits)."
        )
        lines += ["", "| split | images | patients | positives per label |", "|---|---|---|---|"]
        for split, part in (summary.get("splits") or {}).items():
            positives = ", ".join(
                f"{label} {counts.get('positive', '?')}"
                for label, counts in (part.get("labels") or {}).items()
            )
            lines.append(
                f"| {split} | {part.get('images', '?')} | {part.get('patients', '?')} | "
                f"{positives} |"
            )
    for note in summary.get("notes") or []:
        lines.append(f"\nNote: {note}")
    if card.get("data_licence"):
        lines += ["", f"Licence: {card['data_licence']}"]
    if card.get("citations"):
        lines += ["", "Cite:", ""] + [f"- {citation}" for citation in card["citations"]]
    return lines


def _preprocessing_section(meta: dict) -> list[str]:
    spec = meta.get("image_spec") or {}
    config = meta.get("config") or {}
    augment = {k: v for k, v in (config.get("augment") or {}).items() if v not in (0, 0.0, False)}
    augment.pop("fill_mode", None)
    contrast = (meta.get("preprocess") or {}).get("contrast", "none")
    cached = [
        name
        for name, entry in ((meta.get("training") or {}).get("feature_cache") or {}).items()
        if entry.get("on")
    ]
    size = spec.get("size")
    size_text = "x".join(str(s) for s in size) if isinstance(size, list) else str(size)
    return [
        "## Preprocessing",
        "",
        f"- Input: grayscale, {size_text} px, resize mode `{spec.get('resize')}`, values in "
        "[0, 1]; DICOMs through their modality and VOI LUTs (MONOCHROME1 inverted) with "
        f"window `{spec.get('dicom_window', 'auto')}`.",
        f"- Contrast preprocessing inside the model: `{contrast}`.",
        "- Training-time augmentation (off at inference): "
        + (", ".join(f"{k} {v}" for k, v in augment.items()) or "none")
        + (
            f"; off in the phase(s) {', '.join(cached)}, whose head trained on the frozen "
            "backbone's output computed once per film (feature cache)"
            if cached
            else ""
        )
        + ".",
    ]


def _card(meta: dict) -> dict:
    """The recipe's ``card`` section stored in the artifact (empty when it had none)."""
    return (meta.get("config") or {}).get("card") or {}


def _training_section(meta: dict) -> list[str]:
    model = meta.get("model") or {}
    training = meta.get("training") or {}
    settings = (meta.get("config") or {}).get("training") or {}
    lines = [
        "## Model and training",
        "",
        f"- Network: `{model.get('backbone')}` (weights at start: `{model.get('weights')}`), "
        f"{model.get('trainable_params', '?')} trainable parameters, Grad-CAM layer "
        f"`{model.get('feature_layer')}`.",
        f"- Optimiser `{settings.get('optimizer')}`, learning rate "
        f"{settings.get('learning_rate')} (`{settings.get('lr_schedule', 'plateau')}` "
        f"schedule), loss `{settings.get('loss')}`, class weights "
        f"`{settings.get('class_weights')}`.",
        f"- {training.get('epochs_run', '?')} epochs run; the best by "
        f"`{training.get('monitor')}` (epoch {training.get('best_epoch')}) was kept. Wall "
        f"time {training.get('wall_time_s', '?')} s"
        + (
            f" over {training['processes']} processes (resumed after interruptions; an "
            "epoch cut short by one is not counted)."
            if training.get("processes", 1) > 1
            else "."
        ),
    ]
    versions = meta.get("versions") or {}
    if versions:
        lines.append(
            "- Versions: " + ", ".join(f"{name} {value}" for name, value in versions.items()) + "."
        )
    card = _card(meta)
    if card.get("model_choice"):
        lines += ["", f"Why this model: {card['model_choice']}"]
    command = training.get("command")
    lines += ["", "Reproduce:", "", "```bash", command or "(trained through the Python API)", "```"]
    return lines


OWN_SPLITS = ("train", "val", "test", "all")  # evaluation keys of the model's own data


def is_external(key: str, entry: dict | None = None) -> bool:
    """Whether a stored evaluation (its key and entry) is of data other than the model's
    own: not one of its splits, and sharing no file with them.

    Example:
        >>> is_external("val"), is_external("official_test_all")
        (False, True)
        >>> is_external("pack_all", {"overlap_with_own_splits": {"val": 12}})
        False
    """
    return key not in OWN_SPLITS and not (entry or {}).get("overlap_with_own_splits")


def measured_on_statement(meta: dict) -> str | None:
    """The plain statement a card and the app make when no external evaluation exists
    (None when one does)."""
    evaluations = (meta.get("metrics") or {}).get("evaluation") or {}
    if any(is_external(key, entry) for key, entry in evaluations.items()):
        return None
    return (
        "Measured only on splits of its own training data (the same source, disjoint "
        "patients): these figures are not the model's accuracy in use. Expect lower "
        "figures, above all lower specificity, on other hospitals, devices and "
        "populations; evaluate it on your own data (`evaluate --data`)."
    )


def _results_section(meta: dict, labels: list[str]) -> list[str]:
    metrics = meta.get("metrics") or {}
    lines = ["## Results", ""]
    statement = measured_on_statement(meta)
    if statement:
        lines += [f"**{statement}**", ""]
    validation = {
        k: v for k, v in (metrics.get("validation") or {}).items() if isinstance(v, (int, float))
    }
    if validation:
        lines.append(
            "At the best training epoch (Keras metrics, validation split): "
            + ", ".join(f"{k} {_num(v)}" for k, v in sorted(validation.items()))
            + "."
        )
    evaluations = sorted(
        (metrics.get("evaluation") or {}).items(), key=lambda kv: (not is_external(*kv), kv[0])
    )  # external data first
    for key, result in evaluations:
        kind = "External evaluation" if is_external(key, result) else "Evaluation on its own data"
        lines += [
            "",
            f"### {kind}: {key}",
            "",
            f"{result.get('source', key)}; {result.get('images', '?')} images.",
            "",
            f"ROC AUC {_num(result.get('roc_auc'))}{_ci(result.get('roc_auc_ci'))} "
            "(bootstrap over patients).",
        ]
        rates = result.get("at_thresholds") or {}
        if rates:
            lines += [
                "",
                "| rule | label | threshold | "
                + " | ".join(THRESHOLD_METRICS[key] for key in CARD_RATES)
                + " |",
                "|---|---|---|" + "---|" * len(CARD_RATES),
            ]
            for rule, per_label in rates.items():
                for label in labels:
                    m = per_label.get(label) or {}
                    rates = " | ".join(_pct(m.get(key)) for key in CARD_RATES)
                    lines.append(f"| {rule} | {label} | {_num(m.get('threshold'))} | {rates} |")
        if result.get("ece") is not None:
            lines += [
                "",
                f"ECE {_num(result['ece'])} (before temperature scaling "
                f"{_num(result.get('ece_uncalibrated'))}).",
            ]
        report = result.get("report")
        if report and not Path(report).is_absolute():  # no machine paths in a shipped card
            lines += ["", f"Full report: `{report}`."]
    if not metrics.get("evaluation"):
        lines += [
            "",
            "Not evaluated yet: `python -m cxr_keras.evaluate --model <this folder>`.",
        ]
    return lines


def _decision_section(meta: dict, labels: list[str]) -> list[str]:
    thresholds = meta.get("thresholds") or {}
    rule = meta.get("decision_rule", "default")
    temperature = meta.get("temperature", 1.0)
    points = meta.get("operating_points") or {}
    lines = [
        "## Thresholds, calibration and referral",
        "",
        f"Decision rule: `{rule}`" + (f" ({threshold_provenance(meta)})." if points else "."),
        "",
        "| rule | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    evaluations = ((meta.get("metrics") or {}).get("evaluation") or {}).values()
    stability = next(
        (e["threshold_stability"] for e in evaluations if e.get("threshold_stability")), {}
    )

    def cell(name: str, label: str) -> str:
        spread = (stability.get(name) or {}).get(label)
        shown = _num(thresholds[name].get(label))
        return f"{shown} ({spread['low']:.3f}–{spread['high']:.3f})" if spread else shown

    for name in thresholds:
        mark = " (decision)" if name == rule else ""
        lines.append(
            f"| {name}{mark} | " + " | ".join(cell(name, label) for label in labels) + " |"
        )
    if stability:
        lines += [
            "",
            "In brackets: the 2.5-97.5 % range of each threshold over patient-level bootstrap "
            "resamples of the validation split (how far it would move on other patients).",
        ]
    if isinstance(temperature, dict):
        shown = ", ".join(f"{label} {_num(t)}" for label, t in temperature.items())
    else:
        shown = _num(temperature)
    fitted = f"; fitted on {meta['calibrated_on']}" if meta.get("calibrated_on") else ""
    lines += ["", f"Temperature: {shown} (probabilities are sigmoid(logit / T){fitted})."]
    referral = meta.get("referral")
    if referral:
        lines.append(
            f"Referral to a radiologist: probability within {referral.get('band')} of a "
            f"threshold, or MC-dropout standard deviation above {referral.get('max_std')} "
            f"({referral.get('passes')} passes)."
        )
    return lines


def threshold_provenance(meta: dict) -> str | None:
    """How the stored thresholds were chosen, as the card and the app say it (None when
    the artifact does not record it).

    Example:
        >>> print(threshold_provenance({"operating_points": {"chosen_on": "val",
        ...                             "images": 785, "estimate": "point"}}))
        thresholds chosen on the val split, 785 images; each rule's point value on it
    """
    points = meta.get("operating_points") or {}
    if not points:
        return None
    text = (
        f"thresholds chosen on the {points.get('chosen_on')} split, {points.get('images')} images"
    )
    if points.get("estimate"):
        text += f"; {_ESTIMATES.get(points['estimate'], points['estimate'])}"
    if points.get("placement"):
        text += f"; each placed {points['placement']}"
    return text


def robustness_summary(meta: dict) -> list[str]:
    """One sentence per stress evaluation stored in ``meta``: the decision rule's
    sensitivity and specificity and the ROC AUC as measured and at their worst shift (what
    the app shows; the card has the whole table).

    Example:
        >>> shift = {"shift": "blur", "severity": "sigma 2 px", "ood_share": 0.02}
        >>> stress = {"images": 400, "decision_rule": "youden", "none": {"specificity": 0.98},
        ...           "worst": {"specificity": {**shift, "value": 0.65}}, "shifts": [shift]}
        >>> [line] = robustness_summary({"metrics": {"evaluation": {"val": {"stress": stress}}}})
        >>> print(line.split(": ", 1)[1])
        specificity 98.0%, worst 65.0% (blur, sigma 2 px; 2.0% of those films flagged).
    """
    out = []
    for key, entry in ((meta.get("metrics") or {}).get("evaluation") or {}).items():
        stress = entry.get("stress")
        if not stress:
            continue
        base, worst = stress["none"], stress["worst"]
        flagged = {(r["shift"], r["severity"]): r.get("ood_share") for r in stress["shifts"]}
        parts = []
        for name, pretty, show in (("roc_auc", "ROC AUC", _num), ("sensitivity", "sensitivity",
                                   _pct), ("specificity", "specificity", _pct)):  # fmt: skip
            if name in worst:
                w = worst[name]
                share = flagged.get((w["shift"], w["severity"]))
                parts.append(
                    f"{pretty} {show(base[name])}, worst {show(w['value'])} "
                    f"({w['shift']}, {w['severity']}"
                    + (f"; {_pct(share)} of those films flagged" if share is not None else "")
                    + ")"
                )
        out.append(
            f"Under acquisition shifts (`{key}`, {stress['images']} films, "
            f"{stress.get('decision_rule', 'stored')} rule): " + "; ".join(parts) + "."
        )
    return out


def intended_use(meta: dict) -> dict:
    """What a model is for, what it is not for, and its known limits, as its card and the
    app state them: ``{"intended_use": str, "out_of_scope": str, "limitations": [str]}``.

    Example:
        >>> intended_use({})["out_of_scope"]
        'Clinical use: this is not a medical device.'
    """
    card = _card(meta)
    return {
        "intended_use": card.get("intended_use") or "Research and education.",
        "out_of_scope": card.get("out_of_scope") or "Clinical use: this is not a medical device.",
        "limitations": [*(card.get("limitations") or []), *STANDING_LIMITS],
    }


def _robustness_section(meta: dict) -> list[str]:
    evaluations = ((meta.get("metrics") or {}).get("evaluation") or {}).items()
    stressed = [(key, e["stress"]) for key, e in evaluations if e.get("stress")]
    lines = ["## Robustness: acquisition shifts", ""]
    if not stressed:
        return [
            *lines,
            "Not measured yet: `python -m cxr_keras.evaluate --model <folder> --stress` "
            "re-scores the evaluated films under exposure, contrast, blur, noise, JPEG, "
            "resolution, border, rotation, shift and bit-depth changes.",
        ]
    for key, stress in stressed:
        base = stress["none"]
        lines += [
            f"On `{key}` ({stress['images']} films), at the "
            f"{stress.get('decision_rule', 'stored')} thresholds; as they are: "
            f"ROC AUC {_num(base['roc_auc'])}, sensitivity {_pct(base['sensitivity'])}, "
            f"specificity {_pct(base['specificity'])}, ECE {_num(base['ece'])}.",
            "",
            "| shift | severity | ROC AUC | sensitivity | specificity | ECE | flagged OOD |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['shift']} | {r['severity']} | {_num(r['roc_auc'])} | "
            f"{_pct(r['sensitivity'])} | {_pct(r['specificity'])} | {_num(r['ece'])} | "
            f"{_pct(r['ood_share'])} |"
            for r in stress["shifts"]
        ]
        worst = "; ".join(
            f"{name} {_num(w['value'])} ({w['shift']}, {w['severity']})"
            for name, w in stress["worst"].items()
        )
        lines += ["", f"Worst case: {worst}.", ""]
        if stress.get("rules"):  # how each stored rule holds up, not only the decision rule
            lines += [
                "How each rule's sensitivity and specificity move under these shifts:",
                "",
                "| rule | sensitivity | specificity | worst sensitivity | worst specificity |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {rule} | {_pct(m['none']['sensitivity'])} | "
                f"{_pct(m['none']['specificity'])} | {_worst_pct(m['worst_sensitivity'])} | "
                f"{_worst_pct(m['worst_specificity'])} |"
                for rule, m in stress["rules"].items()
            ]
            lines.append("")
    return lines[:-1]


def _worst_pct(worst: dict | None) -> str:
    return (
        "n/a"
        if worst is None
        else f"{_pct(worst['value'])} ({worst['shift']}, {worst['severity']})"
    )


def _ood_section(meta: dict) -> list[str]:
    ood = meta.get("ood")
    lines = ["## Out-of-distribution detection", ""]
    if not ood:
        return [
            *lines,
            "No detector is fitted: answers carry only the input checks (a near-constant "
            "image, a tiny value range, colour, an odd aspect ratio). Fit one with "
            "`python -m cxr_keras.evaluate --model <folder> --update-model`.",
        ]
    checks = ood.get("input_checks") or {}
    fitted, source = ood.get("fitted_on") or {}, ood.get("threshold_from") or {}
    rates = ood.get("flag_rate") or {}
    rate = rates.get(source.get("split"))
    aspect = checks.get("aspect") or ["?", "?"]
    return [
        *lines,
        "Every answer says whether the input is unlike the training films (`ood` and "
        "`ood_score` in `predict`'s output, a warning in the app); a flagged answer is "
        "referred and is not to be trusted.",
        "",
        f"- Detector: Mahalanobis distance (Lee et al. 2018) of the spatially averaged "
        f"activations of {', '.join(f'`{name}`' for name in ood.get('layers', []))}, with "
        f"one mean per class and a shared covariance with Ledoit-Wolf shrinkage, fitted on "
        f"the {fitted.get('images', '?')} {fitted.get('split', 'train')} films; each "
        "layer's distance is divided by its training median and the largest counts.",
        f"- Threshold {_num(ood.get('threshold'))}: the {_pct(ood.get('quantile'))} quantile "
        f"of the scores of the {source.get('images', '?')} {source.get('split', '?')} films "
        f"(in distribution only; it flags {_pct(rate)} of them).",
        f"- Input checks before the model: standard deviation below {checks.get('min_std')}, "
        f"values spanning less than {checks.get('min_range')} of the range, colour content "
        f"above {checks.get('max_colour')}, width / height outside "
        f"{aspect[0]}-{aspect[1]}.",
        "- `benchmarks/ood.py` measures it on validation films, adult chest films, "
        "photographs, other medical images and synthetic images.",
        *[f"- Note: {note}" for note in ood.get("notes") or []],
    ]


def model_card(artifact) -> str:
    """The card's Markdown for a loaded artifact."""
    from cxr_keras import __version__

    meta = artifact.meta
    labels = artifact.labels
    use = intended_use(meta)
    intended, out_of_scope = use["intended_use"], use["out_of_scope"]
    lines = [
        f"# Model card: {meta.get('name') or artifact.path.name}",
        "",
        f"Labels: {', '.join(f'`{label}`' for label in labels)}. Created "
        f"{meta.get('created', '?')}. Generated by cxr-keras {__version__} from "
        "`cxr_model.json`; regenerate with `python -m cxr_keras.model_card --model <folder>`.",
        "",
        "## Intended use",
        "",
        intended,
        "",
        "**Not for:** " + out_of_scope,
        "",
        *_data_section(meta),
        "",
        *_preprocessing_section(meta),
        "",
        *_training_section(meta),
        "",
        *_results_section(meta, labels),
        "",
        *_decision_section(meta, labels),
        "",
        *_ood_section(meta),
        "",
        *_robustness_section(meta),
        "",
        "## Known limits",
        "",
        *[f"- {limit}" for limit in use["limitations"]],
        "",
    ]
    return "\n".join(lines)


def write_model_card(artifact) -> Path:
    """Write ``MODEL_CARD.md`` into the artifact's folder; returns its path."""
    path = Path(artifact.path) / CARD_FILE
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(model_card(artifact), encoding="utf-8")
    tmp.replace(path)
    return path
