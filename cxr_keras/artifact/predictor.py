"""The Predictor: the one object that turns an artifact's logits into answers.

logits -> / temperature -> sigmoid -> probabilities -> decision at the artifact's decision
thresholds. evaluate, explain, predict, the app and export all go through it, so they
cannot disagree about preprocessing, calibration or thresholds.

Every answer also says whether the input is out of distribution (``ood``, with its score
and reasons): the input checks of :mod:`cxr_keras.data.input_checks` always run, and the
artifact's detector (:mod:`cxr_keras.artifact.ood`) scores the same forward pass's
features when one is fitted (without one the score is NaN and only the checks flag).

With an ``audit_log`` (:class:`~cxr_keras.artifact.audit_log.AuditLog`), :meth:`Predictor.
predict` and :meth:`Predictor.predict_files` write one row per answer; a caller that builds
its answers from :meth:`Predictor.predict_manifest` or :meth:`Predictor.answer` (predict,
the app) writes them with :meth:`Predictor.record`, once it knows the referral.

Example:
    >>> predictor = Predictor.from_path("runs/demo")  # doctest: +SKIP
    >>> result = predictor.predict_files(["chest.png"])  # doctest: +SKIP
    >>> result.probabilities.shape, result.decisions.dtype  # doctest: +SKIP
    ((1, 1), dtype('bool'))
    >>> logged = Predictor.from_path("runs/demo", audit_log=AuditLog("audit.db"))  # doctest: +SKIP
    >>> logged.predict_files(["chest.png"]).ood  # doctest: +SKIP
    array([False])
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cxr_keras.artifact.audit_log import AuditLog, pixel_digest, weights_digest
from cxr_keras.artifact.store import Artifact, load_artifact
from cxr_keras.data.input_checks import InputChecks, batch_statistics

__all__ = [
    "ModelOutputs",
    "Prediction",
    "Predictor",
    "feature_model",
    "file_facts",
    "file_formats",
    "file_sizes",
    "manifest_sizes",
]


@dataclass
class Prediction:
    """Answers for a batch of images, one row per image, one column per label."""

    logits: np.ndarray
    probabilities: np.ndarray
    decisions: np.ndarray  # bool: probability >= the label's decision threshold
    labels: list[str]
    thresholds: list[float]
    ood_scores: np.ndarray | None = None  # (n,); NaN where no detector is fitted
    # per image, empty when in scope; the whole list is empty when no verdict was made
    # (:meth:`Predictor.from_logits` alone makes none: use :meth:`Predictor.answer`)
    ood_reasons: list[list[str]] = field(default_factory=list)
    statistics: np.ndarray | None = None  # (n, 3) of the inputs: std, spread, mean
    digests: list[str] | None = None  # keyed pixel hashes, when an audit log is kept

    @property
    def ood(self) -> np.ndarray:
        """(n,) bool: the input is out of distribution (a reason was found)."""
        return np.array([bool(r) for r in self.ood_reasons], dtype=bool)


@dataclass
class ModelOutputs:
    """One forward pass over images: logits, the detector's features, input statistics.
    Rows of files that failed to decode are NaN."""

    logits: np.ndarray  # (n, labels)
    features: list[np.ndarray] | None  # per detector layer (n, channels); None: no detector
    statistics: np.ndarray  # (n, 3): std, 0.5-99.5 percentile spread and mean of each input
    digests: list[str | None] | None = None  # keyed pixel hashes (only for an audit log)
    # the detector's scores when the graph computed them (an export); None: score features
    ood_scores: np.ndarray | None = None

    @property
    def decoded(self) -> np.ndarray:
        return ~np.isnan(self.logits).any(axis=1)


class Predictor:
    """Probabilities and decisions from an artifact (see the module docstring)."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        feature_layers: list[str] | None = None,
        audit_log: AuditLog | None = None,
        channel: str = "python",
    ):
        """``feature_layers``: return these layers' pooled features instead of applying
        the stored detector (to fit a detector; the logits then come without the
        test-time views, which features do not need). ``audit_log``: where answers are
        logged, ``channel`` saying who asked (``python``, ``predict``, ``app``)."""
        self.artifact = artifact
        self.labels = artifact.labels
        self.spec = artifact.image_spec
        self.temperatures = np.asarray(artifact.temperatures, dtype=np.float64)
        self.thresholds = artifact.thresholds()
        self.detector = None if feature_layers else artifact.ood_detector
        self.checks = self.detector.checks if self.detector else InputChecks()
        self.feature_layers = feature_layers or (self.detector.layers if self.detector else [])
        self._answer_model = None
        self.audit_log = audit_log
        self.channel = channel
        self._weights_sha256 = None
        if audit_log is not None:  # hashed once here, not inside the first answer's latency
            _ = self.weights_sha256

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, audit_log: AuditLog | None = None) -> Predictor:
        """Load the artifact at ``path`` and wrap it."""
        return cls(load_artifact(path), audit_log=audit_log)

    @property
    def answer_model(self):
        """The model with the detector's pooled features as extra outputs, read from the
        same forward pass as the logits (the artifact's model itself without a detector)."""
        if self._answer_model is None:
            self._answer_model = (
                feature_model(self.artifact, self.feature_layers, views=self.detector is not None)
                if self.feature_layers
                else self.artifact.model
            )
        return self._answer_model

    def outputs(self, images) -> ModelOutputs:
        """Logits, features and statistics of a batch of model inputs, in inference mode."""
        images = np.asarray(images, np.float32)
        result = self.answer_model.predict_on_batch(images)
        if self.feature_layers:
            logits, *features = result
            features = [np.asarray(f, np.float64) for f in features]
        else:
            logits, features = result, None
        return ModelOutputs(
            np.asarray(logits, np.float64),
            features,
            batch_statistics(images),
            self.input_digests(images),
        )

    def input_digests(self, images) -> list[str] | None:
        """What the audit log names each input by: its pixels, keyed (None: no log)."""
        if self.audit_log is None:
            return None
        return [pixel_digest(image, self.audit_log.key) for image in images]

    def logits(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Raw model outputs for model inputs (n, H, W, 1) in [0, 1], in inference mode."""
        return np.asarray(
            self.artifact.model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64
        )

    def from_logits(self, logits: np.ndarray) -> Prediction:
        """Temperature, sigmoid and thresholds applied to logits."""
        logits = np.asarray(logits, dtype=np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits / self.temperatures))
        decisions = probabilities >= np.asarray(self.thresholds)
        return Prediction(logits, probabilities, decisions, self.labels, self.thresholds)

    def ood_scores(self, outputs: ModelOutputs) -> np.ndarray:
        """(n,): the detector's score of each decoded row (NaN: no detector, or not decoded)."""
        if outputs.ood_scores is not None:
            return np.asarray(outputs.ood_scores, np.float64)
        scores = np.full(len(outputs.logits), np.nan)
        if self.detector and outputs.decoded.any():
            rows = outputs.decoded
            scores[rows] = self.detector.score([f[rows] for f in outputs.features])
        return scores

    def answer(
        self,
        outputs: ModelOutputs,
        *,
        colour: list[float] | None = None,
        aspect: list[float | None] | None = None,
    ) -> Prediction:
        """Answers with the out-of-distribution verdict of each row. ``colour`` and
        ``aspect`` per row come from the files (:func:`file_facts`); None: not checked."""
        prediction = self.from_logits(outputs.logits)
        scores = self.ood_scores(outputs)
        n = len(scores)
        colour = colour if colour is not None else [0.0] * n
        aspect = aspect if aspect is not None else [None] * n
        reasons = []
        for i in range(n):
            found = self.checks.reasons(
                std=outputs.statistics[i, 0],
                spread=outputs.statistics[i, 1],
                colour=colour[i],
                aspect=aspect[i],
            )
            if self.detector and not np.isfinite(scores[i]):
                found.append("the out-of-distribution score is not finite")
            elif self.detector and scores[i] > self.detector.threshold:
                found.append(
                    f"unlike the training films (out-of-distribution score {scores[i]:.2f} "
                    f"> {self.detector.threshold:.2f})"
                )
            reasons.append(found)
        prediction.ood_scores = scores
        prediction.ood_reasons = reasons
        prediction.statistics = outputs.statistics
        prediction.digests = outputs.digests
        return prediction

    def predict(
        self, images: np.ndarray, batch_size: int = 32, *, record: bool = True
    ) -> Prediction:
        """Answers for model inputs (n, H, W, 1) in [0, 1] (see :func:`load_image`), with
        the input checks that need no file (colour and aspect ratio are not checked);
        logged when there is an audit log, unless ``record`` is False (answers nobody
        was given, e.g. to choose examples)."""
        images = np.asarray(images, np.float32)
        if len(images) == 0:
            return self.answer(self._no_outputs())
        started = time.perf_counter()
        parts = [
            self.outputs(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
        ]
        answers = self.answer(_concatenate(parts))
        if self.audit_log is not None and record:
            height, width = images.shape[1:3]
            self.record(
                answers,
                sizes=[(width, height)] * len(images),
                sources=["array"] * len(images),
                latency_s=(time.perf_counter() - started) / len(images),
            )
        return answers

    def _no_outputs(self) -> ModelOutputs:
        empty = np.zeros((0, len(self.labels)))
        features = [np.zeros((0, 1)) for _ in self.feature_layers] or None
        return ModelOutputs(empty, features, np.zeros((0, 3)))

    def manifest_outputs(self, manifest, batch_size: int = 32) -> ModelOutputs:
        """:class:`ModelOutputs` for every row of a manifest; rows whose file failed to
        decode are NaN (the decode error is logged), so a long run is never lost to one
        bad file and the caller can count them."""
        n = len(manifest)
        logits = np.full((n, len(self.labels)), np.nan)
        statistics = np.full((n, 3), np.nan)
        scores = None
        digests = [None] * n if self.audit_log is not None else None
        features = None
        for rows, images in self.manifest_batches(manifest, batch_size):
            batch = self.outputs(images)
            logits[rows], statistics[rows] = batch.logits, batch.statistics
            if batch.ood_scores is not None:
                scores = np.full(n, np.nan) if scores is None else scores
                scores[rows] = batch.ood_scores
            if digests is not None:
                for row, digest in zip(rows, batch.digests, strict=True):
                    digests[row] = digest
            if batch.features is not None:
                if features is None:
                    features = [np.full((n, f.shape[1]), np.nan) for f in batch.features]
                for whole, part in zip(features, batch.features, strict=True):
                    whole[rows] = part
        if self.feature_layers and features is None and scores is None:  # nothing decoded
            features = [np.full((n, 1), np.nan) for _ in self.feature_layers]
        return ModelOutputs(logits, features, statistics, digests, scores)

    def manifest_batches(self, manifest, batch_size: int = 32):
        """(row indices, model inputs) of a manifest's decodable rows, by batches: the
        tf.data pipeline, which logs and leaves out a file that fails to decode."""
        from cxr_keras.data.pipeline import make_indexed_dataset

        for rows, images in make_indexed_dataset(manifest, self.spec, batch_size):
            yield rows.numpy(), images.numpy()

    def file_batches(self, paths, batch_size: int = 32):
        """Model inputs of files, by batches (a bad file raises, naming it)."""
        from cxr_keras.data.pipeline import make_image_dataset

        for images in make_image_dataset(list(paths), self.spec, batch_size):
            yield images.numpy()

    def manifest_logits(self, manifest, batch_size: int = 32) -> np.ndarray:
        """Logits for every row of a manifest (n, labels), NaN where a file failed to
        decode (see :meth:`manifest_outputs`)."""
        return self.manifest_outputs(manifest, batch_size).logits

    def predict_manifest(self, manifest, batch_size: int = 32) -> tuple[Prediction, np.ndarray]:
        """Answers for a manifest's rows (with every input check) and which rows decoded;
        the answers hold only the decoded rows, in order."""
        outputs = self.manifest_outputs(manifest, batch_size)
        rows = outputs.decoded
        kept = ModelOutputs(
            outputs.logits[rows],
            None if outputs.features is None else [f[rows] for f in outputs.features],
            outputs.statistics[rows],
            None
            if outputs.digests is None
            else [d for d, ok in zip(outputs.digests, rows, strict=True) if ok],
            None if outputs.ood_scores is None else outputs.ood_scores[rows],
        )
        paths = [p for p, ok in zip(manifest["path"], rows, strict=True) if ok]
        sizes = manifest_sizes(manifest)
        sizes = None if sizes is None else [x for x, ok in zip(sizes, rows, strict=True) if ok]
        if "shards" in manifest.attrs:  # the source files need not be here: not checked
            return self.answer(kept), rows
        colour, aspect = file_facts(paths, sizes=sizes)
        return self.answer(kept, colour=colour, aspect=aspect), rows

    def predict_files(self, paths, batch_size: int = 32) -> Prediction:
        """Answers for image or DICOM files, decoded with the artifact's image spec.
        A bad file raises :class:`~cxr_keras.data.io.ImageDecodeError` naming it."""
        paths = list(paths)
        started = time.perf_counter()
        outputs = _concatenate([self.outputs(x) for x in self.file_batches(paths, batch_size)])
        sizes = file_sizes(paths)
        colour, aspect = file_facts(paths, sizes=sizes)
        answers = self.answer(outputs, colour=colour, aspect=aspect)
        if self.audit_log is not None and paths:
            self.record(
                answers,
                sizes=sizes,
                sources=file_formats(paths),
                latency_s=(time.perf_counter() - started) / len(paths),
            )
        return answers

    @property
    def weights_sha256(self) -> str:
        """The hash of the model's weights the audit log names it by (computed once)."""
        if self._weights_sha256 is None:
            self._weights_sha256 = weights_digest(self.artifact.model)
        return self._weights_sha256

    def record(
        self,
        answers: Prediction,
        *,
        sizes: Sequence[tuple[int, int] | None] | None,
        sources: Sequence[str | None],
        latency_s: float | Sequence[float],
        referral_reasons: Sequence[list[str]] | None = None,
    ) -> int:
        """Write one audit-log row per answer (nothing without an audit log); returns how
        many. ``sizes``: (width, height) of each image as sent; ``sources``: its format
        (:func:`file_formats`); ``latency_s``: the seconds each answer took (one value:
        the same for all); ``referral_reasons``: per answer, as the caller referred it
        (default: the stored referral rule without MC dropout, out of distribution
        included)."""
        if self.audit_log is None:
            return 0
        from cxr_keras import __version__
        from cxr_keras.artifact.referral import referral_reasons as reasons_of
        from cxr_keras.artifact.referral import rule_of

        n = len(answers.probabilities)
        if referral_reasons is None:
            rule = rule_of(self.artifact.meta)
            referral_reasons = [
                reasons_of(
                    self.labels,
                    answers.probabilities[i],
                    thresholds=answers.thresholds,
                    std=None,
                    rule=rule,
                    ood_reasons=answers.ood_reasons[i] if answers.ood_reasons else (),
                )
                for i in range(n)
            ]
        latencies = [latency_s] * n if np.isscalar(latency_s) else list(latency_s)
        sizes = list(sizes) if sizes is not None else [None] * n
        thresholds = dict(zip(self.labels, map(float, answers.thresholds), strict=True))
        rows = []
        for i in range(n):
            size = sizes[i] or (None, None)
            statistics = answers.statistics[i] if answers.statistics is not None else None
            rows.append(
                {
                    "channel": self.channel,
                    "model": self.artifact.meta.get("name") or self.artifact.path.name,
                    "weights_sha256": self.weights_sha256,
                    "image_hash": answers.digests[i] if answers.digests else None,
                    "source": sources[i],
                    "width": size[0],
                    "height": size[1],
                    "mean_intensity": None if statistics is None else float(statistics[2]),
                    "contrast": None if statistics is None else float(statistics[0]),
                    "probabilities": dict(
                        zip(self.labels, map(float, answers.probabilities[i]), strict=True)
                    ),
                    "decisions": dict(
                        zip(self.labels, map(bool, answers.decisions[i]), strict=True)
                    ),
                    "thresholds": thresholds,
                    "decision_rule": self.artifact.decision_rule,
                    "refer": bool(referral_reasons[i]),
                    "referral_reasons": list(referral_reasons[i]),
                    "ood": bool(answers.ood_reasons[i]) if answers.ood_reasons else None,
                    "ood_score": None
                    if answers.ood_scores is None
                    else float(answers.ood_scores[i]),
                    "ood_reasons": list(answers.ood_reasons[i]) if answers.ood_reasons else [],
                    "latency_ms": 1000.0 * float(latencies[i]),
                    "cxr_keras_version": __version__,
                }
            )
        return self.audit_log.write(rows)


def file_facts(paths, *, sizes=None) -> tuple[list[float], list[float | None]]:
    """Per file: its colour content and its width / height (``sizes``: known (width,
    height) per file, read from the header where None)."""
    from cxr_keras.data.input_checks import colour_content
    from cxr_keras.data.io import read_header

    colour, aspect = [], []
    for i, path in enumerate(paths):
        colour.append(colour_content(path))
        size = sizes[i] if sizes is not None else None
        if size is None:
            try:
                header = read_header(path)
                size = (header.width, header.height)
            except (OSError, ValueError):  # not readable here (a shard's source): unchecked
                size = None
        aspect.append(size[0] / size[1] if size and size[1] > 0 else None)
    return colour, aspect


def file_sizes(paths) -> list[tuple[int, int] | None]:
    """(width, height) of each file from its header (None where it cannot be read)."""
    from cxr_keras.data.io import read_header

    sizes = []
    for path in paths:
        try:
            header = read_header(path)
            sizes.append((header.width, header.height))
        except (OSError, ValueError):  # not readable here (a shard's source)
            sizes.append(None)
    return sizes


def file_formats(paths) -> list[str | None]:
    """Each file's format from its first bytes (png, jpeg, dicom, ...; None: unknown)."""
    from cxr_keras.data.io import sniff_format

    formats = []
    for path in paths:
        try:
            formats.append(sniff_format(path))
        except OSError:
            formats.append(None)
    return formats


def feature_model(artifact: Artifact, layers: list[str], *, views: bool = True):
    """A Keras model: image -> [the artifact's logits, the spatial mean of each layer in
    ``layers``], the features read on the unchanged image inside any test-time views
    (``views=False``: the logits of the unchanged image alone, for features only)."""
    import keras

    from cxr_keras.models.tta import with_tta

    base = artifact.explain_model
    pooled = [
        keras.layers.GlobalAveragePooling2D(dtype="float32", name=f"ood_pool_{i}")(
            base.get_layer(name).output
        )
        for i, name in enumerate(layers)
    ]
    probe = keras.Model(base.inputs, [base.output, *pooled], name=f"{base.name}_probe")
    return with_tta(base, artifact.tta, probe=probe) if views else probe


def manifest_sizes(manifest) -> list[tuple[int, int] | None] | None:
    """(width, height) of each row from the header columns verify_files adds (None where
    unknown; None for a manifest without them)."""
    if not {"width", "height"} <= set(manifest.columns):
        return None
    return [
        (int(w), int(h)) if w > 0 and h > 0 else None
        for w, h in zip(manifest["width"], manifest["height"], strict=True)
    ]


def _concatenate(parts: list[ModelOutputs]) -> ModelOutputs:
    features = None
    if parts and parts[0].features is not None:
        features = [np.concatenate(f) for f in zip(*(p.features for p in parts), strict=True)]
    digests = None
    if parts and parts[0].digests is not None:
        digests = [d for p in parts for d in p.digests]
    scores = None
    if parts and parts[0].ood_scores is not None:
        scores = np.concatenate([p.ood_scores for p in parts])
    return ModelOutputs(
        np.concatenate([p.logits for p in parts]),
        features,
        np.concatenate([p.statistics for p in parts]),
        digests,
        scores,
    )
