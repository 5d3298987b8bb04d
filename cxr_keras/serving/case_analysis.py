"""One uploaded file in, everything the web app shows out: the model side of the app.

A :class:`CaseAnalyzer` is built once per server from an artifact (the model, the Grad-CAM
explainer and the MC-dropout sampler are built at start, never per request). For each
upload it checks the size, reads the file with the same checks as every other stage (a
non-image, a corrupt file or a non-chest DICOM is refused with its reason), then returns a
:class:`CaseResult`: per-label probabilities with the artifact's temperature, decisions at
its stored thresholds, the out-of-distribution verdict with its reasons (a flagged image is
always referred), the referral flag with its reasons (the rule stored in the
artifact), a Grad-CAM overlay per positive label (the most probable label when none is
positive) and a preview of the film as read. A refused upload raises
:class:`UploadError`, whose message names the file (never the server's temporary path)
and says why. Identifying DICOM tags are never read into a result.

With an audit log (:mod:`cxr_keras.artifact.audit_log`) every answer is appended to it,
with the time the whole analysis took; a log that cannot be written is reported in the
server's log and the answer still goes out.

Example:
    >>> analyzer = CaseAnalyzer(load_artifact("runs/demo"))  # doctest: +SKIP
    >>> result = analyzer.analyze("chest.png")  # doctest: +SKIP
    >>> result.decision, result.refer  # doctest: +SKIP
    ('PNEUMONIA', False)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MAX_MB",
    "CaseAnalyzer",
    "CaseResult",
    "Finding",
    "UploadError",
    "bundled_candidates",
    "choose_examples",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_MB = 64.0  # an uncompressed 3000 x 3000 16-bit CR film is about 18 MB
MB = 2**20  # as Gradio counts file sizes, so its upload limit and ours read the same
PREVIEW_SIDE = 1024  # the longest side of the preview and overlay images sent to the page
NEGATIVE = "negative"


class UploadError(ValueError):
    """An upload the app cannot answer; the message names the file and says why."""


@dataclass
class Finding:
    """One label's answer for one image."""

    label: str
    probability: float
    threshold: float
    positive: bool
    mc_dropout_std: float | None = None


@dataclass
class CaseResult:
    """Everything the app shows for one upload (see the module docstring)."""

    file: str
    findings: list[Finding]
    refer: bool
    referral_reasons: list[str]
    preview: np.ndarray  # uint8 (h, w): the film as the model read it
    overlays: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (RGB, caption)
    ood_reasons: list[str] = field(default_factory=list)  # empty: like the training films
    ood_score: float | None = None  # None: the artifact has no detector

    @property
    def ood(self) -> bool:
        """The image is out of distribution: its answer is not to be trusted."""
        return bool(self.ood_reasons)

    @property
    def decision(self) -> str:
        """The positive labels joined by ``|``, or ``negative``."""
        return "|".join(f.label for f in self.findings if f.positive) or NEGATIVE

    @property
    def top(self) -> Finding:
        """The most probable positive finding, else the most probable label."""
        positives = [f for f in self.findings if f.positive]
        return max(positives or self.findings, key=lambda f: f.probability)

    def to_dict(self) -> dict:
        """The JSON the app's API returns (no images)."""
        out = {
            "file": self.file,
            "probabilities": {f.label: f.probability for f in self.findings},
            "thresholds": {f.label: f.threshold for f in self.findings},
            "decisions": {f.label: f.positive for f in self.findings},
            "decision": self.decision,
            "ood": self.ood,
            "ood_score": self.ood_score,
            "ood_reasons": self.ood_reasons,
            "refer": self.refer,
            "referral_reasons": self.referral_reasons,
            "overlays": [caption for _, caption in self.overlays],
        }
        if any(f.mc_dropout_std is not None for f in self.findings):
            out["mc_dropout_std"] = {f.label: f.mc_dropout_std for f in self.findings}
        return out


def _as_uint8(image: np.ndarray, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """A [0, 1] (H, W, 1) film as uint8 (h, w), at most ``max_side`` px on its longer side."""
    from cxr_keras.data.numpy_io import area_resize

    grey = np.asarray(image, np.float32)[..., 0]
    height, width = grey.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        grey = area_resize(grey, max(1, round(height * scale)), max(1, round(width * scale)))
    return np.round(255 * np.clip(grey, 0, 1)).astype(np.uint8)


class CaseAnalyzer:
    """Answers uploads with one artifact (see the module docstring).

    ``mc_passes``: MC-dropout passes for the referral rule (default: the artifact's rule;
    0 turns it off); ``max_mb``: the largest upload accepted; ``layer``: the Grad-CAM target
    layer (default: the artifact's feature layer); ``audit_log``: an
    :class:`~cxr_keras.artifact.audit_log.AuditLog` every answer is written to.
    """

    def __init__(
        self,
        artifact,
        mc_passes: int | None = None,
        max_mb: float = DEFAULT_MAX_MB,
        layer: str | None = None,
        *,
        audit_log=None,
    ):
        from cxr_keras.artifact.predictor import Predictor
        from cxr_keras.artifact.referral import rule_of
        from cxr_keras.explanation.gradcam import GradCam, default_layer
        from cxr_keras.explanation.uncertainty import McDropoutSampler

        if max_mb <= 0:
            raise ValueError(f"max_mb: a positive size in MB, got {max_mb}")
        self.artifact = artifact
        self.predictor = Predictor(artifact, audit_log=audit_log, channel="app")
        self.labels = artifact.labels
        network = artifact.explain_model  # without test-time views: maps of the image
        self.layer = layer or default_layer(network, artifact.meta)
        self.explainer = GradCam(network, [self.layer])
        self.rule = rule_of(artifact.meta)
        self.passes = int(self.rule["passes"] if mc_passes is None else mc_passes)
        self.sampler = McDropoutSampler(network) if self.passes >= 2 else None
        self.max_mb = float(max_mb)
        self.max_bytes = int(max_mb * MB)

    def read(self, path: str | os.PathLike, name: str | None = None):
        """(the film at its own size, the model input) or :class:`UploadError`."""
        from cxr_keras.data.io import ImageDecodeError, read_image_and_input

        path = Path(path)
        name = name or path.name
        if not path.is_file():
            raise UploadError(
                f"{name}: no file was received (an upload is deleted once analysed: "
                "upload it again)"
            )
        size = path.stat().st_size
        if size > self.max_bytes:
            raise UploadError(
                f"{name}: {size / MB:.1f} MB is over the upload limit of {self.max_mb:g} MB"
            )
        spec = self.artifact.image_spec
        try:
            return read_image_and_input(path, spec)
        except ImageDecodeError as exc:
            raise UploadError(f"{name}: {exc.reason}") from None
        except (OSError, ValueError, RuntimeError) as exc:  # a decoder's own error
            reason = str(exc).replace(str(path), name) or type(exc).__name__
            raise UploadError(f"{name}: cannot be read ({reason})") from None

    def analyze(self, path: str | os.PathLike, name: str | None = None) -> CaseResult:
        """Answer one file; ``name`` is the file name to show (default: the path's)."""
        from cxr_keras.artifact.predictor import file_facts, file_formats
        from cxr_keras.artifact.referral import referral_reasons
        from cxr_keras.explanation.overlays import blend, to_original

        started = time.perf_counter()
        name = name or Path(path).name
        original, x = self.read(path, name)
        source = file_formats([path])[0]  # while the upload is surely there
        _, maps = self.explainer(x[None], range(len(self.labels)))
        # the answer: test-time views averaged, the detector's features from the same pass
        colour, aspect = file_facts([path])  # as predict and explain measure them
        answers = self.predictor.answer(
            self.predictor.outputs(x[None]), colour=colour, aspect=aspect
        )
        probabilities, thresholds = answers.probabilities[0], answers.thresholds
        std = None
        if self.sampler is not None:
            std = self.sampler(x[None], self.predictor.temperatures, self.passes).std[0]
        findings = [
            Finding(
                label,
                float(probabilities[j]),
                float(thresholds[j]),
                bool(answers.decisions[0, j]),
                None if std is None else float(std[j]),
            )
            for j, label in enumerate(self.labels)
        ]
        reasons = referral_reasons(
            self.labels,
            probabilities,
            thresholds=thresholds,
            std=std,
            rule=self.rule,
            ood_reasons=answers.ood_reasons[0],
        )
        score = float(answers.ood_scores[0])
        result = CaseResult(
            name,
            findings,
            bool(reasons),
            reasons,
            _as_uint8(original),
            ood_reasons=answers.ood_reasons[0],
            ood_score=None if np.isnan(score) else score,
        )
        shown = [f for f in findings if f.positive] or [result.top]
        height, width = original.shape[:2]
        for finding in shown:
            j = self.labels.index(finding.label)
            heat = to_original(
                maps[self.layer][0, j], self.artifact.image_spec, height=height, width=width
            )
            status = "positive" if finding.positive else "below threshold"
            caption = (
                f"{finding.label}: p = {finding.probability:.3f} "
                f"({status}, threshold {finding.threshold:.3f})"
            )
            result.overlays.append((blend(original, heat, max_side=PREVIEW_SIDE), caption))
        if self.predictor.audit_log is not None:
            self._record(answers, source, (width, height), reasons, time.perf_counter() - started)
        return result

    def _record(self, answers, source, size, reasons, seconds) -> None:
        """Log one answer; a log that cannot be written does not withhold the answer."""
        from cxr_keras.artifact.audit_log import AuditLogError

        try:
            self.predictor.record(
                answers,
                sizes=[size],
                sources=[source],
                latency_s=seconds,
                referral_reasons=[reasons],
            )
        except AuditLogError:
            log.exception("this answer was not written to the audit log")


def bundled_candidates(labels: Sequence[str]) -> list[Path]:
    """Bundled sample films that suit a model with these labels: the Kermany sample for
    PNEUMONIA/NORMAL models, the NIH sample for ChestX-ray14 findings, else both.

    Example:
        >>> bundled_candidates(["PNEUMONIA"])[0].parent.parent.name
        'kermany'
    """
    from cxr_keras.data.labels import NIH_LABELS, NO_FINDING
    from cxr_keras.sample_data import sample_files

    wanted = set(labels)
    chosen = []
    if wanted & {"PNEUMONIA", "NORMAL"}:
        chosen += sample_files("kermany")
    if wanted & {*NIH_LABELS, NO_FINDING}:
        chosen += sample_files("nih")
    return chosen or sample_files("kermany") + sample_files("nih")


def choose_examples(
    analyzer: CaseAnalyzer, candidates: Sequence[str | os.PathLike], limit: int = 96
) -> list[tuple[Path, str]]:
    """Up to three example cases scored by the model: the clearest positive, the clearest
    negative and the most uncertain (closest to a threshold), each with its caption.

    At most ``limit`` candidates (evenly spaced) are scored, so the app starts quickly.
    """
    from cxr_keras.data.io import ImageDecodeError, load_image

    candidates = [Path(p) for p in candidates]
    if len(candidates) > limit:
        step = len(candidates) / limit
        candidates = [candidates[int(i * step)] for i in range(limit)]
    usable, images = [], []
    for path in candidates:
        try:
            images.append(load_image(path, analyzer.artifact.image_spec))
            usable.append(path)
        except (ImageDecodeError, OSError) as exc:
            log.warning("example candidate skipped: %s", exc)
    if not usable:
        return []
    answers = analyzer.predictor.predict(np.stack(images), record=False)  # nobody's answer
    margin = answers.probabilities - np.asarray(answers.thresholds)  # > 0: positive
    closest = np.abs(margin).min(axis=1)
    strongest = margin.max(axis=1)
    examples: list[tuple[Path, str]] = []
    taken: set[int] = set()

    def take(i: int, caption: str) -> None:
        taken.add(i)
        examples.append((usable[i], caption))

    if (strongest > 0).any():
        take(int(np.argmax(strongest)), "clear positive")
    if (strongest < 0).any():
        take(int(np.argmin(strongest)), "clear negative")
    rest = [i for i in np.argsort(closest) if i not in taken]
    if rest:
        take(int(rest[0]), "uncertain: close to a threshold")
    return examples
