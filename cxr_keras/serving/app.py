"""A small web app for one model artifact: upload a chest X-ray, see the answer and why
(``python -m cxr_keras.app``).

Needs the ``[app]`` extra (``pip install 'cxr-keras[app]'``: Gradio). The page takes a PNG,
JPEG or DICOM and shows each label's probability as a bar against its threshold, the
decision at the artifact's stored thresholds, the referral flag with its reason, a
Grad-CAM overlay per positive label and a short summary with the model's card (name,
decision rule, validation metrics). The model's intended use and its limits are on the
page, and an image unlike the films the model was trained on (see
:mod:`cxr_keras.artifact.ood`) gets a prominent warning and is referred. Example cases
come from the bundled sample, chosen by the model at start: its clearest positive,
clearest negative and most uncertain film.
Uploads over the size limit, non-images, corrupt files and non-chest DICOMs get a message
in the page; nothing an upload does stops the server. The model loads once, at start.

The same analysis is an HTTP API (``/analyze``) for scripts::

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860/").predict(handle_file("chest.png"), api_name="/analyze")

Every answer, of the page and of the API, is appended to an audit log when one is given
(``python -m cxr_keras.app`` keeps one by default: :mod:`cxr_keras.artifact.audit_log`;
no file name, no DICOM tag, the pixels by a keyed hash), which ``python -m
cxr_keras.monitor`` turns into a drift report.

It binds to 127.0.0.1 unless ``--host`` says otherwise: it has no authentication.
Uploads (a DICOM holds names and dates in its tags) are deleted once analysed, and the
app's whole upload folder when it shuts down (:func:`private_upload_folder`).

Example:
    >>> app = build_app(load_artifact("runs/demo"))  # doctest: +SKIP
    >>> app.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cxr_keras.core.result_names import RANKING_METRICS
from cxr_keras.serving.case_analysis import DEFAULT_MAX_MB

__all__ = [
    "DISCLAIMER",
    "build_app",
    "forget_upload",
    "intended_use_markdown",
    "model_card_markdown",
    "ood_warning_markdown",
    "private_upload_folder",
    "render_case",
]

log = logging.getLogger("cxr_keras.app")
# no usage reporting from a tool that may run beside patient data (read when gradio loads)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DISCLAIMER = (
    "**Research tool, not a diagnostic device.** cxr-keras models are for research and "
    "education. They are not cleared or approved for clinical use and must not guide the "
    "diagnosis or treatment of any patient."
)
API_NAME = "analyze"


def _format_metric(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def model_card_markdown(artifact) -> str:
    """The model's name, labels, decision rule and how its thresholds were chosen, what its
    figures were measured on, its stored evaluations (external data first) and how they
    hold up under acquisition shifts (its ``cxr_model.json``, as its card says them)."""
    meta = artifact.meta
    lines = [
        f"**Model** `{meta.get('name') or artifact.path.name}` · labels: "
        + ", ".join(f"`{label}`" for label in artifact.labels)
        + f" · decision rule: `{artifact.decision_rule}`"
    ]
    metrics = meta.get("metrics") or {}
    validation = {
        k: v for k, v in (metrics.get("validation") or {}).items() if k != "loss" and v is not None
    }
    if validation:
        shown = ", ".join(f"{k} {_format_metric(v)}" for k, v in sorted(validation.items()))
        lines.append(f"**Validation** (best epoch): {shown}")
    from cxr_keras.artifact.model_card import (
        is_external,
        measured_on_statement,
        robustness_summary,
        threshold_provenance,
    )

    provenance = threshold_provenance(meta)
    if provenance:
        lines[0] += f" ({provenance})"
    statement = measured_on_statement(meta)
    if statement:
        lines.append(f"**{statement}**")
    evaluations = sorted(
        (metrics.get("evaluation") or {}).items(), key=lambda kv: (not is_external(*kv), kv[0])
    )  # external data first
    for split, result in evaluations:
        auc = result.get("roc_auc")
        if auc is None:
            auc = result.get("macro_roc_auc")
        if auc is None:
            continue
        ci = result.get("roc_auc_ci") or result.get("macro_roc_auc_ci")
        interval = f" [95% CI {ci[0]:.3f}–{ci[1]:.3f}]" if ci else ""
        images = f", {result['images']} images" if "images" in result else ""
        title = RANKING_METRICS["roc_auc"]
        kind = "External evaluation" if is_external(split, result) else "Evaluation"
        lines.append(f"**{kind}** on `{split}`: {title} {auc:.3f}{interval}{images}")
    lines += [f"**Robustness**: {sentence}" for sentence in robustness_summary(meta)]
    return "  \n".join(lines)


def intended_use_markdown(artifact) -> str:
    """The model's intended use, what it is not for, and its known limits (its card's)."""
    from cxr_keras.artifact.model_card import intended_use

    use = intended_use(artifact.meta)
    limits = "\n".join(f"- {html.escape(limit)}" for limit in use["limitations"])
    return (
        f"**Intended use:** {html.escape(use['intended_use'])}  \n"
        f"**Not for:** {html.escape(use['out_of_scope'])}  \n"
        "Images unlike the films this model was trained on are flagged and referred.\n\n"
        f"**Known limits:**\n{limits}"
    )


def ood_warning_markdown(result) -> str:
    """A prominent warning for an out-of-distribution image (empty for one in scope)."""
    if not result.ood:
        return ""
    reasons = "\n".join(f"- {html.escape(reason)}" for reason in result.ood_reasons)
    return (
        "## ⚠ This image is unlike the films this model was trained on\n"
        "The answer below is not to be trusted and the image is referred to a radiologist. "
        "Check that it is a chest radiograph of the kind the model is for (see its intended "
        f"use).\n{reasons}"
    )


def _bars_html(result) -> str:
    """One bar per label: its probability, a tick at its threshold, the decision."""
    rows = []
    for f in result.findings:
        colour = "#c0392b" if f.positive else "#2e86c1"
        decision = "positive" if f.positive else "negative"
        sign = "≥" if f.positive else "<"
        rows.append(
            '<div class="cxr-bar-row" style="margin:6px 0">'
            f'<div style="display:flex;justify-content:space-between;font-size:14px">'
            f'<span class="cxr-label">{html.escape(f.label)}</span>'
            f'<span class="cxr-probability">{f.probability:.3f}</span></div>'
            '<div style="position:relative;height:14px;background:#e5e8e8;border-radius:3px">'
            f'<div style="width:{100 * f.probability:.1f}%;height:100%;background:{colour};'
            'border-radius:3px"></div>'
            f'<div title="threshold" style="position:absolute;left:{100 * f.threshold:.1f}%;'
            'top:-3px;width:2px;height:20px;background:#17202a"></div></div>'
            f'<div style="font-size:12px;color:#566573">{decision}: {f.probability:.3f} '
            f"{sign} threshold {f.threshold:.3f}</div></div>"
        )
    return '<div id="cxr-bars">' + "".join(rows) + "</div>"


def _summary_markdown(result) -> str:
    top = result.top
    if top.positive:
        headline = (
            f"**Top finding: {top.label}**, probability {top.probability:.3f} "
            f"(positive at threshold {top.threshold:.3f})"
        )
    else:
        headline = (
            f"**No finding at or above its threshold.** Most probable: {top.label}, "
            f"probability {top.probability:.3f} (threshold {top.threshold:.3f})"
        )
    if result.ood:  # the answer stays visible, marked as one not to act on
        headline = "**Out of distribution: not to be trusted.** " + headline
    return f"{headline}  \nDecision: **{result.decision}** · file `{result.file}`"


def _referral_markdown(result) -> str:
    if not result.refer:
        return "**Referral: no.** The answer is clear of every threshold band."
    reasons = "\n".join(f"- {html.escape(reason)}" for reason in result.referral_reasons)
    return f"**Referral: yes, refer to a radiologist.**\n{reasons}"


def render_case(analyzer, path) -> tuple:
    """The page's outputs for one upload: (status, summary, bars, referral, overlays,
    preview, details, out-of-distribution warning). A refused upload fills only the
    status; an unexpected failure is logged and reported the same way, so no upload stops
    the server."""
    from cxr_keras.serving.case_analysis import UploadError

    # summary, bars, referral, overlays, preview, details, warning
    empty = ("", "", "", [], None, None, "")
    if path is None:
        return ("Upload a PNG, JPEG or DICOM chest X-ray first.", *empty)
    name = Path(path).name
    try:
        result = analyzer.analyze(path, name)
    except UploadError as exc:
        log.warning("upload refused: %s", exc)
        return (f"**Cannot analyse this file.** {html.escape(str(exc))}", *empty)
    except Exception:  # the server must answer whatever the upload does
        log.exception("analysis failed for %s", name)
        return (f"**Cannot analyse this file.** {html.escape(name)}: internal error", *empty)
    return (
        "",
        _summary_markdown(result),
        _bars_html(result),
        _referral_markdown(result),
        [(image, caption) for image, caption in result.overlays],
        result.preview,
        result.to_dict(),
        ood_warning_markdown(result),
    )


def private_upload_folder() -> Path:
    """A fresh folder, readable by this user only, for the app's uploads (Gradio's
    ``GRADIO_TEMP_DIR``), removed when the process exits: uploaded DICOMs carry names and
    dates in their tags, and Gradio's shared cache would keep them after shutdown."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="cxr-keras-uploads-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def forget_upload(path) -> None:
    """Delete an uploaded file once it is analysed, and its folder when that is empty,
    if it lies in Gradio's upload folder (never a file the app was started with)."""
    if not path:
        return
    path = Path(path).resolve()
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    root = root.resolve()
    if root not in path.parents:
        return
    path.unlink(missing_ok=True)
    for folder in path.parents:
        if folder == root:
            break
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break


def build_app(
    artifact,
    *,
    mc_passes: int | None = None,
    max_mb: float = DEFAULT_MAX_MB,
    examples: Sequence[str | os.PathLike] | None = None,
    audit_log=None,
):
    """The Gradio Blocks app for a loaded artifact (see the module docstring).

    ``examples``: files offered as examples (default: chosen from the bundled sample);
    ``audit_log``: an :class:`~cxr_keras.artifact.audit_log.AuditLog` for every answer.
    """
    import gradio as gr

    from cxr_keras.serving.case_analysis import CaseAnalyzer, bundled_candidates, choose_examples

    analyzer = CaseAnalyzer(artifact, mc_passes, max_mb, audit_log=audit_log)
    if examples is None:
        cases = choose_examples(analyzer, bundled_candidates(artifact.labels))
    else:
        cases = [(Path(p), Path(p).name) for p in examples]
    log.info("examples: %s", ", ".join(f"{p.name} ({c})" for p, c in cases) or "none")

    def analyze(path):
        try:
            return render_case(analyzer, path)
        finally:
            forget_upload(path)  # no upload (DICOM tags included) outlives its analysis

    def run_example(path):  # its own name: Gradio names an event's API after its function
        return render_case(analyzer, path)

    # delete_cache: Gradio also deletes what this app cached when the server shuts down
    with gr.Blocks(title="cxr-keras", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# cxr-keras · chest X-ray classification with Grad-CAM")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        gr.Markdown(intended_use_markdown(artifact), elem_id="intended-use")
        # outputs are made first and placed later, so the examples can name them
        status = gr.Markdown(elem_id="status", render=False)
        summary = gr.Markdown(elem_id="summary", render=False)
        bars = gr.HTML(elem_id="probabilities", render=False)
        referral = gr.Markdown(elem_id="referral", render=False)
        overlays = gr.Gallery(
            label="Grad-CAM per positive label",
            elem_id="overlays",
            columns=2,
            height=360,
            object_fit="contain",
            render=False,
        )
        preview = gr.Image(
            label="The film as read", elem_id="preview", interactive=False, height=320, render=False
        )
        details = gr.JSON(elem_id="details", render=False)
        warning = gr.Markdown(elem_id="ood-warning", render=False)
        outputs = [status, summary, bars, referral, overlays, preview, details, warning]
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label=f"Chest X-ray: PNG, JPEG or DICOM (at most {analyzer.max_mb:g} MB)",
                    type="filepath",
                    elem_id="upload",
                )
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if cases:
                    gr.Examples(
                        examples=[[str(path)] for path, _ in cases],
                        example_labels=[f"{caption}: {path.name}" for path, caption in cases],
                        inputs=[upload],
                        outputs=outputs,
                        fn=run_example,
                        run_on_click=True,
                        cache_examples=False,
                        label="Examples from the bundled sample (chosen by this model)",
                        elem_id="examples",
                    )
                preview.render()
            with gr.Column(scale=1):
                for component in (status, warning, summary, bars, referral, overlays):
                    component.render()
        with gr.Accordion("API result (JSON)", open=False):
            details.render()
        gr.Markdown(model_card_markdown(artifact), elem_id="model-card")
        button.click(analyze, inputs=[upload], outputs=outputs, api_name=API_NAME)
    app.cxr_allowed_paths = sorted({str(path.parent.resolve()) for path, _ in cases})
    app.cxr_max_bytes = analyzer.max_bytes
    return app
