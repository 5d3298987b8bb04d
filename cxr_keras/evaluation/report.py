"""The evaluation report: built once as blocks from the ``metrics.json`` content, written
both as Markdown and as self-contained HTML (figures embedded), so the two never say
different things.

Example:
    >>> r = Report("Evaluation")
    >>> r.paragraph("AUC 0.91"); r.table(["label", "AUC"], [["A", 0.91234]])
    >>> print(r.markdown().splitlines()[4])
    | label | AUC |
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from cxr_keras.core.result_names import COUNTS, THRESHOLD_METRICS

__all__ = ["Report", "build_report", "fmt"]


def fmt(value, digits: int = 3) -> str:
    """A number for a table: fixed digits, ``undefined`` for None or NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "undefined"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class Report:
    """Headings, paragraphs, tables and images, rendered to Markdown or HTML."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence]) -> None:
        self.blocks.append(("table", list(header), [[fmt(v) for v in row] for row in rows]))

    def image(self, path: str | os.PathLike, caption: str) -> None:
        self.blocks.append(("image", Path(path), caption))

    def markdown(self, relative_to: str | os.PathLike | None = None) -> str:
        """The report as Markdown; image links relative to ``relative_to``."""
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                lines += [f"{'#' * block[1]} {block[2]}", ""]
            elif kind == "paragraph":
                lines += [block[1], ""]
            elif kind == "table":
                header, rows = block[1], block[2]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                lines.append("")
            else:
                path = block[1]
                if relative_to is not None:
                    path = Path(os.path.relpath(path, relative_to))
                link = quote(path.as_posix())  # a file name with spaces is still one link
                lines += [f"![{block[2]}]({link})", "", f"*{block[2]}*", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """The report as one HTML file with its figures embedded (PNG, base64)."""
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                body.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                body.append(f"<p>{e(block[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{e(h)}</th>" for h in block[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in block[2]
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            else:
                data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{e(block[2])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(block[2])}</figcaption></figure>"
                )
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
            "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
            "font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
            "img{max-width:100%}figcaption{font-style:italic;font-size:0.9em}"
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{e(self.title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


def _ci(interval) -> str:
    low, high = interval
    return "undefined" if low is None else f"{low:.3f}-{high:.3f}"


def _discrimination_rows(block: dict) -> list[list]:
    rows = []
    for label, m in block["labels"].items():
        rows.append(
            [
                label,
                m["n"],
                m["positives"],
                m["roc_auc"],
                _ci(m["roc_auc_ci"]),
                m["pr_auc"],
                _ci(m["pr_auc_ci"]),
            ]
        )
    if len(block["labels"]) > 1:
        for name in ("macro", "micro"):
            m = block[name]
            rows.append(
                [
                    name,
                    m.get("n", ""),
                    "",
                    m["roc_auc"],
                    _ci(m["roc_auc_ci"]),
                    m["pr_auc"],
                    _ci(m["pr_auc_ci"]),
                ]
            )
    return rows


def _worst_text(worst: dict | None) -> str:
    """``0.590 (blur, sigma 2 px)``: a worst case over the stress shifts."""
    return (
        "n/a" if worst is None else f"{fmt(worst['value'])} ({worst['shift']}, {worst['severity']})"
    )


def _prior_adaptation(report: Report, block: dict) -> None:
    """The section of ``evaluate --adapt-prior`` / ``--prevalence``: the prevalence found
    against the labels, and the 0.5 cut and calibration before and after the correction."""
    report.heading("After a label-shift correction")
    rows = []
    for label, m in block["labels"].items():
        prevalence = m["prevalence"]
        interval = _ci(prevalence["ci95"]) if prevalence["ci95"] else "declared"
        row = [label, prevalence["estimated"], interval, prevalence["observed"],
               prevalence["training"]]  # fmt: skip
        for part, keys in (("at_0.5", ("accuracy", "sensitivity", "specificity")),
                           ("calibration", ("ece", "log_loss"))):  # fmt: skip
            for key in keys:
                before = m[part]["before"][key] if m[part] else None
                after = m[part]["after"][key] if m[part] else None
                row.append(f"{fmt(before)} → {fmt(after)}")
        rows.append(row)
    report.table(
        [
            "label",
            "prevalence",
            "95% CI",
            "observed",
            "calibrated at",
            "accuracy @0.5",
            "sensitivity @0.5",
            "specificity @0.5",
            "ECE",
            "log loss",
        ],
        rows,
    )
    method = "declared" if block["method"] == "declared" else f"estimated by {block['method']}"
    report.paragraph(
        f"Prevalence {method}, from the {block['images']} images not flagged out of "
        "distribution; every image corrected by Bayes' rule; before → after. "
        + block["note"]
        + (" " + " ".join(block["notes"]) if block["notes"] else "")
    )


def build_report(result: dict, files: dict[str, str], stored: bool) -> Report:
    """The report's blocks from ``metrics.json`` content: data, discrimination with CIs,
    metrics at each threshold, calibration, subgroups, figures and notes. ``files`` maps
    figure names (roc_pr, confusion, reliability, errors, optional training) to PNGs.

    Example:
        >>> result = json.load(open("runs/demo/evaluation/test/metrics.json"))  # doctest: +SKIP
        >>> build_report(result, figures, stored=True).markdown()  # doctest: +SKIP
    """
    evaluated = result["evaluated"]
    report = Report(f"Evaluation of {result['name']} on {evaluated['split']}")
    patients = evaluated["patients"]
    report.paragraph(
        f"Model: {result['model']}. Data: {evaluated['source']}: {evaluated['images']} images"
        + (f" of {patients} patients" if patients else "")
        + f"; {evaluated['undecodable']} undecodable, {evaluated['skipped_files']} files skipped "
        f"when the data was read. Written {result['created']}."
    )
    rule = result["decision_rule"]
    report.paragraph(
        f"Thresholds {result['threshold_source']}. Decision threshold (used by predict and the "
        f"app): {rule}. "
        + (
            "Stored in the artifact."
            if stored
            else "Not stored: a shipped model under models/ changes only with --update-model."
        )
    )

    report.heading("Discrimination")
    boot = result["discrimination"]["bootstrap"]
    report.table(
        ["label", "n", "positives", "ROC AUC", "95% CI", "PR AUC", "95% CI"],
        _discrimination_rows(result["discrimination"]),
    )
    report.paragraph(
        f"95% confidence intervals: percentile bootstrap, {boot['resamples']} resamples of "
        f"{boot['groups']} {boot['unit']}s (all images of a resampled {boot['unit']} together), "
        f"seed {boot['seed']}. Macro: mean over labels with both classes present; micro: all "
        "known (label, image) entries pooled. Unknown labels are left out of every number; "
        "a label with a single class has no AUC (undefined)."
    )

    report.heading("At each threshold")
    header = [
        "label",
        "rule",
        "threshold",
        *THRESHOLD_METRICS.values(),
        *(count.upper() for count in COUNTS),
    ]
    rows = []
    for label in result["labels"]:
        for name, table in result["at_thresholds"].items():
            m = table[label]
            rows.append(
                [
                    label,
                    name + (" (decision)" if name == rule else ""),
                    m["threshold"],
                    *(m[key] for key in THRESHOLD_METRICS),
                    *(m[count] for count in COUNTS),
                ]
            )
    report.table(header, rows)

    report.heading("Calibration")
    calibration = result["calibration"]
    rows = [
        [
            "uncalibrated (T = 1)",
            calibration["uncalibrated"]["ece"],
            calibration["uncalibrated"]["brier"],
        ]
    ]
    if "temperature_scaled" in calibration:
        temps = ", ".join(f"{k} {v:.3f}" for k, v in result["temperatures"].items())
        scaled = calibration["temperature_scaled"]
        rows.append([f"temperature-scaled (T: {temps})", scaled["ece"], scaled["brier"]])
    report.table(["probabilities", "ECE", "Brier"], rows)
    report.paragraph(
        f"ECE: {calibration['uncalibrated']['bins']} equal-width probability bins over the "
        "known entries of all labels; |observed frequency - mean probability| weighted by "
        "bin size. Temperatures are fitted on the validation split (python -m "
        "cxr_keras.evaluate --calibrate)."
        + (
            " Validation NLL {before:.4f} before, {after:.4f} after.".format(
                **calibration["validation_nll"]
            )
            if "validation_nll" in calibration
            else ""
        )
    )
    report.image(files["reliability"], "Reliability diagram (marker area: bin size)")

    referral = result.get("referral")
    if referral:
        referral_rule = referral["rule"]  # not `rule`: the captions below name the decision rule
        share = referral["near_threshold_share"]
        report.paragraph(
            f"Referral rule (stored for predict, explain and the app): refer to a radiologist "
            f"when a probability is within {referral_rule['band']:g} of its decision threshold, "
            f"or its Monte Carlo dropout standard deviation ({referral_rule['passes']} passes) "
            f"exceeds {referral_rule['max_std']:g}. On this split "
            f"{referral['near_threshold_images']} images "
            f"({fmt(share if share is None else 100 * share, 1)}%) are within the band."
        )

    ood = result.get("out_of_distribution")
    if ood:
        share = ood["flagged_share"]
        reasons = "; ".join(f"{kind}: {n}" for kind, n in sorted(ood["reasons"].items()))
        report.paragraph(
            "Out of distribution (predict, explain and the app flag and refer these "
            f"answers): {ood['flagged_images']} images "
            f"({fmt(share if share is None else 100 * share, 1)}%) of this split"
            + (f" ({reasons})." if reasons else ".")
            + (
                f" Detector threshold {ood['threshold']:.3g}."
                if ood["detector"]
                else " No detector is fitted: only the input checks ran."
            )
        )

    if result.get("prior_adaptation"):
        _prior_adaptation(report, result["prior_adaptation"])

    if result.get("stress"):
        stress = result["stress"]
        report.heading("Stress: acquisition shifts")
        base = stress["none"]
        rows = [["none", "", base["roc_auc"], base["sensitivity"], base["specificity"],
                 base["ece"], base["ood_share"]]]  # fmt: skip
        rows += [
            [
                r["shift"],
                r["severity"],
                r["roc_auc"],
                r["sensitivity"],
                r["specificity"],
                r["ece"],
                r["ood_share"],
            ]
            for r in stress["shifts"]
        ]
        report.table(
            ["shift", "severity", "ROC AUC", "sensitivity", "specificity", "ECE", "OOD share"],
            rows,
        )
        worst = "; ".join(
            f"{key} {w['value']:.3f} ({w['shift']}, {w['severity']})"
            for key, w in stress["worst"].items()
        )
        report.paragraph(
            f"{stress['images']} of the {stress['drawn_from']} evaluated films, re-scored "
            f"under each shift at the {stress['decision_rule']} thresholds. "
            f"Worst case: {worst}."
        )
        report.paragraph("How each rule's sensitivity and specificity move under the shifts:")
        report.table(
            [
                "rule",
                "thresholds",
                "sensitivity",
                "specificity",
                "worst sensitivity",
                "worst specificity",
            ],
            [
                [
                    rule,
                    ", ".join(f"{t:.3g}" for t in moves["thresholds"].values()),
                    moves["none"]["sensitivity"],
                    moves["none"]["specificity"],
                    _worst_text(moves["worst_sensitivity"]),
                    _worst_text(moves["worst_specificity"]),
                ]
                for rule, moves in stress["rules"].items()
            ],
        )

    if result["subgroups"]:
        report.heading("Subgroups")
        rows = []
        multi = len(result["labels"]) > 1
        for name, groups in result["subgroups"].items():
            for value, block in groups.items():
                m = block["macro"] if multi else next(iter(block["labels"].values()))
                row = [name, value, block["images"], m["roc_auc"], _ci(m["roc_auc_ci"])]
                # a subgroup's macro covers the labels with both classes in it: say how many
                rows.append([*row, len(m["over_labels"])] if multi else row)
        header = ["subgroup", "value", "images", "ROC AUC", "95% CI"]
        report.table([*header, "labels in macro"] if multi else header, rows)
        resamples = next(iter(next(iter(result["subgroups"].values())).values()))["bootstrap"]
        report.paragraph(
            f"Subgroup intervals: {resamples['resamples']} bootstrap resamples each "
            + ("(macro AUC over labels)." if len(result["labels"]) > 1 else ".")
        )

    report.heading("Figures")
    report.image(files["roc_pr"], "ROC and precision-recall curves with the operating points")
    report.image(files["confusion"], f"Confusion matrices at the {rule} thresholds")
    if "training" in files:
        report.image(files["training"], "Training curves (from the run's log)")
    report.image(files["errors"], f"Most confident errors at the {rule} thresholds")
    if "samples" in files:
        report.image(
            files["samples"],
            f"Randomly drawn images with their decisions at the {rule} thresholds "
            "(green: every known label right; red: not)",
        )
    if result["notes"]:
        report.heading("Notes")
        for note in result["notes"]:
            report.paragraph(note)
    return report
