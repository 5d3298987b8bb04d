"""The drift report of a deployed model (``python -m cxr_keras.monitor``): its audit log
(:mod:`cxr_keras.artifact.audit_log`) against the reference profile stored in the
artifact (:mod:`cxr_keras.artifact.reference_profile`, the validation answers).

For the logged answers of the period (``since`` / ``until``), by this model's weights:

- per label: the probability distribution against the reference (population stability
  index, two-sample Kolmogorov-Smirnov test, a verdict: stable, watch or drift, by the
  thresholds of :data:`cxr_keras.evaluation.drift.RULES`, stated in the report), the share
  of positives, and the prevalence re-estimated from the answers (label-shift EM,
  :mod:`cxr_keras.artifact.label_shift`) against the one the model was calibrated at;
- the out-of-distribution rate and score, and the referral rate, against the reference;
- the films' mean intensity, contrast and size against the reference films';
- all of it per time window (``window``, e.g. ``1d``), with plots over time.

Writes ``drift_report.md``, ``drift_report.html`` (self-contained), ``drift.json`` and
``figures/`` under ``out``; ``export_csv`` also writes the period's log rows as
``audit_log.csv`` (no personal data: the log holds none). The overall verdict is the
worst of all; ``python -m cxr_keras.monitor --fail-on drift`` exits 3 on it, for a
scheduler to alert.

Example:
    >>> result = monitor("kermany_pneumonia", log="runs/audit/kermany.db",
    ...                  out="runs/monitor")  # doctest: +SKIP
    >>> result["verdict"]  # doctest: +SKIP
    'stable'
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ADVICE", "monitor", "parse_window"]

logger = logging.getLogger("cxr_keras.monitor")

ADVICE = {
    "stable": "Nothing to do: the answers look like the validation answers.",
    "watch": "A moderate shift: look at the plots over time, and at the films of the days it "
    "shows (which device, which site, which protocol changed). Keep monitoring.",
    "drift": "The inputs or the answers no longer look like the validation films: the "
    "figures on the model card may not hold here. Re-evaluate the model on labelled local "
    "films (python -m cxr_keras.evaluate --model M --data LOCAL), re-fit its operating "
    "point on them if it holds up (--update-model on a copy), and until then read its "
    "answers with care. A rise in out-of-distribution answers alone means films of a "
    "kind the model does not know: find where they come from.",
    "too few answers": "Too few answers in this period for a verdict: widen it (--since).",
}
# the prevalence is estimated from this many in-distribution answers at least
MIN_PREVALENCE_ANSWERS = 50


WINDOW_UNITS = {"w": "weeks", "d": "days", "h": "hours", "min": "minutes", "m": "minutes"}


def parse_window(text: str) -> pd.Timedelta:
    """A window length: a number and a unit, ``w``, ``d``, ``h`` or ``min``.

    Example:
        >>> parse_window("12h"), parse_window("1d")
        (Timedelta('0 days 12:00:00'), Timedelta('1 days 00:00:00'))
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", str(text).lower())
    if not found or found[2] not in WINDOW_UNITS or float(found[1]) <= 0:
        raise ValueError(f"--window: a length of time such as 7d, 1d, 12h or 30min, got {text!r}")
    return pd.Timedelta(**{WINDOW_UNITS[found[2]]: float(found[1])})


def _moment(value) -> datetime | None:
    """A date, a time or None, as a UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        moment = pd.Timestamp(value)
    except ValueError:
        raise ValueError(f"not a date or time: {value!r} (e.g. 2026-12-01)") from None
    return (moment.tz_localize(UTC) if moment.tzinfo is None else moment).to_pydatetime()


def _probabilities(rows: pd.DataFrame, label: str) -> np.ndarray:
    return np.array([(p or {}).get(label, np.nan) for p in rows["probabilities"]], np.float64)


def _decisions(rows: pd.DataFrame, label: str) -> np.ndarray:
    return np.array([bool((d or {}).get(label)) for d in rows["decisions"]])


def _prevalence(rows: pd.DataFrame, label: str, meta: dict, temperature: float, seed: int):
    """(EM estimate, 95% interval, answers used) among the in-distribution answers, or
    None when there are too few of them or no label-shift calibration is stored."""
    from cxr_keras.artifact.label_shift import bcts_probabilities, estimate_prevalence

    entry = meta.get("label_shift") or {}
    if label not in (entry.get("calibration") or {}):
        return None
    in_scope = rows[~rows["ood"].fillna(False).astype(bool)]
    if len(in_scope) < MIN_PREVALENCE_ANSWERS:
        return None
    p = np.clip(_probabilities(in_scope, label), 1e-12, 1 - 1e-12)
    p = p[np.isfinite(p)]
    logits = temperature * np.log(p / (1 - p))  # the log keeps probabilities at temperature T
    calibrated = bcts_probabilities(logits, entry["calibration"][label])
    estimate, interval = estimate_prevalence(
        calibrated, prior=float(entry["prevalence"][label]), n_resamples=100, seed=seed
    )
    return estimate, interval, len(p)


def _labels_block(rows, profile, meta, labels, temperatures, seed) -> dict:
    from cxr_keras.evaluation.drift import compare

    block = {}
    for j, label in enumerate(labels):
        reference = profile["labels"][label]
        entry = compare(reference["probabilities"], _probabilities(rows, label))
        entry["positive_share"] = float(_decisions(rows, label).mean()) if len(rows) else None
        entry["reference_positive_share"] = reference["positive_share"]
        prevalence = _prevalence(rows, label, meta, temperatures[j], seed)
        trained = ((meta.get("label_shift") or {}).get("prevalence") or {}).get(label)
        entry["prevalence"] = (
            None
            if prevalence is None
            else {"estimated": prevalence[0], "ci95": prevalence[1], "answers": prevalence[2]}
        )
        entry["training_prevalence"] = trained
        block[label] = entry
    return block


def _rates_block(rows, profile) -> dict:
    from cxr_keras.evaluation.drift import compare, compare_rate

    n = len(rows)
    ood = rows["ood"].fillna(False).astype(bool)
    refer = rows["refer"].fillna(False).astype(bool)
    reference_total = int(profile["images"])
    return {
        "ood_rate": compare_rate(
            int(ood.sum()),
            n,
            reference_rate=profile["ood_share"],
            reference_total=reference_total,
        ),
        "ood_score": compare(profile["ood_scores"], rows["ood_score"].astype(float)),
        "referral_rate": compare_rate(
            int(refer.sum()),
            n,
            reference_rate=profile["referral_share"],
            reference_total=reference_total,
        ),
    }


def _image_block(rows, profile) -> dict:
    from cxr_keras.artifact.reference_profile import IMAGE_STATISTICS
    from cxr_keras.evaluation.drift import compare

    return {
        name: compare(profile["image"][name], pd.to_numeric(rows[name], errors="coerce"))
        for name in IMAGE_STATISTICS
        if profile["image"].get(name)
    }


def _timeline(rows, profile, meta, labels, temperatures, window, seed) -> list[dict]:
    """Per window: answers, positive shares, prevalence estimates, rates and a verdict."""
    from cxr_keras.evaluation.drift import compare, compare_rate, worst

    out = []
    if rows.empty:
        return out
    origin = rows["time"].min().floor("D")  # whole windows from the first answer's day
    starts = origin + ((rows["time"] - origin) // window) * window
    for start, part in rows.groupby(starts, sort=True):
        entry = {"start": start.isoformat(), "answers": len(part), "labels": {}}
        verdicts = []
        for j, label in enumerate(labels):
            reference = profile["labels"][label]["probabilities"]
            drift = compare(reference, _probabilities(part, label))
            prevalence = _prevalence(part, label, meta, temperatures[j], seed)
            entry["labels"][label] = {
                "positive_share": float(_decisions(part, label).mean()),
                "prevalence": None if prevalence is None else prevalence[0],
                "prevalence_ci95": None if prevalence is None else prevalence[1],
                "psi": drift["psi"],
                "verdict": drift["verdict"],
            }
            verdicts.append(drift["verdict"])
        ood = part["ood"].fillna(False).astype(bool)
        entry["ood_rate"] = float(ood.mean())
        entry["referral_rate"] = float(part["refer"].fillna(False).astype(bool).mean())
        entry["mean_intensity"] = float(pd.to_numeric(part["mean_intensity"]).median())
        verdicts.append(
            compare_rate(
                int(ood.sum()),
                len(part),
                reference_rate=profile["ood_share"],
                reference_total=int(profile["images"]),
            )["verdict"]
        )
        entry["verdict"] = worst(verdicts)
        out.append(entry)
    return out


def _figures(result, rows, profile, labels, out: Path) -> dict[str, str]:
    from cxr_keras.core.figures import pyplot, save_figure

    plt = pyplot()
    files = {}
    columns = min(4, len(labels))
    lines = -(-len(labels) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 2.8 * lines), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, label in zip(axes.flat, labels, strict=False):
        ax.hist(profile["labels"][label]["probabilities"], bins=bins, density=True, alpha=0.5)
        ax.hist(_probabilities(rows, label), bins=bins, density=True, alpha=0.5)
        verdict = result["labels"][label]["verdict"]
        ax.set_title(f"{label}: {verdict}", fontsize=9)
        ax.set_xlabel("probability", fontsize=8)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    axes.flat[0].legend(["reference (validation)", "logged"], fontsize=7)
    files["probabilities"] = save_figure(fig, out / "figures" / "probabilities.png")

    timeline = result["timeline"]
    if timeline:
        when = [pd.Timestamp(w["start"]) for w in timeline]
        fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
        axes[0].bar(
            when, [w["answers"] for w in timeline], width=0.9 * result["window_days"], align="edge"
        )
        axes[0].set_ylabel("answers")
        for label in labels[:6]:
            line = axes[1].plot(
                when, [w["labels"][label]["positive_share"] for w in timeline], marker="o"
            )
            axes[1].axhline(
                profile["labels"][label]["positive_share"], ls="--", color=line[0].get_color()
            )
            estimates = [w["labels"][label]["prevalence"] for w in timeline]
            if any(e is not None for e in estimates):
                axes[1].plot(
                    when,
                    [np.nan if e is None else e for e in estimates],
                    ls=":",
                    marker="x",
                    color=line[0].get_color(),
                )
        axes[1].set_ylabel("positive share (o)\nprevalence EM (x)")
        axes[1].legend(labels[:6], fontsize=7)
        axes[2].plot(when, [w["ood_rate"] for w in timeline], marker="o", label="out of dist.")
        axes[2].plot(when, [w["referral_rate"] for w in timeline], marker="s", label="referred")
        axes[2].axhline(profile["ood_share"], ls="--", color="C0")
        axes[2].axhline(profile["referral_share"], ls="--", color="C1")
        axes[2].set_ylabel("rate")
        axes[2].legend(fontsize=7)
        axes[3].plot(when, [w["mean_intensity"] for w in timeline], marker="o")
        axes[3].axhline(np.median(profile["image"]["mean_intensity"]), ls="--")
        axes[3].set_ylabel("median mean\nintensity")
        fig.suptitle("Over time (dashed: the reference)", fontsize=10)
        fig.autofmt_xdate()
        files["over_time"] = save_figure(fig, out / "figures" / "over_time.png")
    return files


def _report(result: dict, files: dict[str, str]):
    from cxr_keras.evaluation.drift import RULES
    from cxr_keras.evaluation.report import Report, fmt

    report = Report(f"Drift report: {result['model']}")
    period = result["period"]
    report.paragraph(
        f"Logged answers from {period['first'] or '-'} to {period['last'] or '-'} "
        f"({result['answers']} answers of this model's weights"
        + (f"; {result['excluded']} of other weights left out" if result["excluded"] else "")
        + f"), against the reference: {result['reference']['source']}, profiled "
        f"{result['reference']['created']}."
    )
    report.heading("Verdict")
    report.paragraph(f"Overall: {result['verdict'].upper()}. {ADVICE[result['verdict']]}")
    report.paragraph(
        f"Rules: a distribution drifts when its population stability index (PSI) is at "
        f"least {RULES['psi_drift']} and a two-sample Kolmogorov-Smirnov test gives p < "
        f"{RULES['p_drift']}; watch at PSI >= {RULES['psi_watch']} and p < "
        f"{RULES['p_watch']}; a rate drifts when a one-sided binomial test against the "
        f"reference rate gives p < {RULES['p_drift']} and it is at least "
        f"{100 * RULES['rate_excess_drift']:g} percentage points above it (watch: p < "
        f"{RULES['p_watch']}, {100 * RULES['rate_excess_watch']:g} points); fewer than "
        f"{RULES['min_answers']} answers: no verdict."
    )
    for note in result["notes"]:
        report.paragraph(f"Note: {note}")

    def prevalence_text(entry):
        p = entry["prevalence"]
        if entry["training_prevalence"] is None:
            return "no label-shift calibration stored (evaluate the model)"
        if p is None:
            return f"fewer than {MIN_PREVALENCE_ANSWERS} in-distribution answers"
        return f"{p['estimated']:.3f} ({p['ci95'][0]:.3f}-{p['ci95'][1]:.3f})"

    report.heading("Labels")
    report.table(
        [
            "label",
            "verdict",
            "PSI",
            "KS",
            "p",
            "median p (ref / logged)",
            "positive share (ref / logged)",
            "prevalence EM (95% CI)",
            "calibrated at",
        ],
        [
            [
                label,
                e["verdict"],
                e["psi"],
                e["ks"],
                fmt(e["p_value"], 4),
                f"{fmt(e['reference_median'])} / {fmt(e['median'])}",
                f"{fmt(e['reference_positive_share'])} / {fmt(e['positive_share'])}",
                prevalence_text(e),
                e["training_prevalence"],
            ]
            for label, e in result["labels"].items()
        ],
    )
    rates = result["rates"]
    report.heading("Out of distribution and referral")
    report.table(
        ["quantity", "verdict", "reference", "logged", "p"],
        [
            [
                "out-of-distribution rate",
                rates["ood_rate"]["verdict"],
                rates["ood_rate"]["reference_rate"],
                rates["ood_rate"]["rate"],
                fmt(rates["ood_rate"]["p_value"], 4),
            ],
            [
                "referral rate",
                rates["referral_rate"]["verdict"],
                rates["referral_rate"]["reference_rate"],
                rates["referral_rate"]["rate"],
                fmt(rates["referral_rate"]["p_value"], 4),
            ],
            [
                f"out-of-distribution score (median; PSI {fmt(rates['ood_score']['psi'])})",
                rates["ood_score"]["verdict"],
                rates["ood_score"]["reference_median"],
                rates["ood_score"]["median"],
                fmt(rates["ood_score"]["p_value"], 4),
            ],
        ],
    )
    report.heading("Image statistics")
    report.table(
        ["statistic", "verdict", "PSI", "median (ref / logged)", "p"],
        [
            [
                name,
                e["verdict"],
                e["psi"],
                f"{fmt(e['reference_median'])} / {fmt(e['median'])}",
                fmt(e["p_value"], 4),
            ]
            for name, e in result["image"].items()
        ],
    )
    report.heading(f"Over time (windows of {result['window']})")
    labels = list(result["labels"])
    report.table(
        ["window", "answers", "verdict", "out of dist.", "referred"]
        + [f"{label} positive" for label in labels[:4]],
        [
            [w["start"][:16], w["answers"], w["verdict"], w["ood_rate"], w["referral_rate"]]
            + [w["labels"][label]["positive_share"] for label in labels[:4]]
            for w in result["timeline"]
        ],
    )
    captions = {
        "probabilities": "Each label's probabilities: the reference (validation) and the "
        "logged answers",
        "over_time": "Answers, positive shares and prevalence estimates, rates and mean "
        "intensity per window; dashed lines: the reference",
    }
    for name, path in files.items():
        report.image(path, captions[name])
    return report


def monitor(
    model: str | os.PathLike,
    *,
    log: str | os.PathLike,
    out: str | os.PathLike,
    since=None,
    until=None,
    window: str = "1d",
    export_csv: bool = False,
    seed: int = 0,
) -> dict:
    """Write the drift report of ``log`` for the artifact ``model`` under ``out`` (see
    the module docstring); returns the ``drift.json`` content. ``since`` / ``until``:
    dates or times (UTC when no zone is given), until exclusive."""
    from cxr_keras.artifact.audit_log import JSON_COLUMNS, AuditLog
    from cxr_keras.artifact.reference_profile import load_profile
    from cxr_keras.artifact.store import load_meta
    from cxr_keras.evaluation.drift import worst

    meta = load_meta(model)
    profile = load_profile(model, meta)
    if profile is None:
        raise ValueError(
            f"{model}: no reference profile stored; evaluate stores one (python -m "
            "cxr_keras.evaluate --model M, with --update-model for a shipped model)"
        )
    log_path = Path(log)
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: no audit log here")
    step = parse_window(window)
    since, until = _moment(since), _moment(until)
    with AuditLog(log_path, key=b"") as audit:  # reading needs no key
        rows = audit.read(since=since, until=until)
    labels = list(meta["labels"])
    notes = []
    name = meta.get("name") or Path(model).name
    weights = profile.get("weights_sha256")
    mine = (rows["weights_sha256"] == weights) if weights else (rows["model"] == name)
    excluded = int((~mine).sum())
    rows = rows[mine].reset_index(drop=True)
    if excluded:
        notes.append(
            f"{excluded} logged answers came from other weights (another model, or this one "
            "retrained) and are left out"
        )
    temperatures = profile.get("temperatures") or [1.0] * len(labels)
    stored = meta["thresholds"].get(meta["decision_rule"]) or {}
    if any(abs(float(stored.get(k, v)) - v) > 1e-9 for k, v in profile["thresholds"].items()):
        notes.append(
            "the artifact's thresholds changed since the reference was profiled: evaluate "
            "it again to profile its answers at the new ones"
        )
    result = {
        "model": name,
        "log": str(log_path),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "period": {
            "since": None if since is None else since.isoformat(),
            "until": None if until is None else until.isoformat(),
            "first": None if rows.empty else rows["time"].min().isoformat(),
            "last": None if rows.empty else rows["time"].max().isoformat(),
        },
        "window": window,
        "window_days": step / pd.Timedelta(days=1),
        "answers": len(rows),
        "excluded": excluded,
        "reference": {k: profile.get(k) for k in ("source", "images", "created")},
        "labels": _labels_block(rows, profile, meta, labels, temperatures, seed),
        "rates": _rates_block(rows, profile),
        "image": _image_block(rows, profile),
        "timeline": _timeline(rows, profile, meta, labels, temperatures, step, seed),
        "notes": notes,
    }
    verdicts = [e["verdict"] for e in result["labels"].values()]
    verdicts += [e["verdict"] for e in result["rates"].values()]
    verdicts += [e["verdict"] for e in result["image"].values()]
    result["verdict"] = worst(verdicts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _figures(result, rows, profile, labels, out)
    result["figures"] = {k: os.path.relpath(v, out) for k, v in files.items()}
    report = _report(result, files)
    (out / "drift_report.md").write_text(report.markdown(relative_to=out), encoding="utf-8")
    (out / "drift_report.html").write_text(report.html(), encoding="utf-8")
    (out / "drift.json").write_text(json.dumps(result, indent=2, default=_plain), encoding="utf-8")
    if export_csv:
        exported = rows.copy()
        for column in JSON_COLUMNS:  # as the log stores them
            exported[column] = [json.dumps(v) for v in exported[column]]
        exported.to_csv(out / "audit_log.csv", index=False)
        result["exported"] = str(out / "audit_log.csv")
    logger.info("drift report (%s) written to %s", result["verdict"], out / "drift_report.html")
    return result


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
