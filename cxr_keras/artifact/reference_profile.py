"""The reference profile: what the model's answers look like on films like its training
films, stored in the artifact so a deployment can be compared with it.

Written by ``python -m cxr_keras.evaluate`` whenever it stores the artifact's operating
points (on the validation split, at the temperatures, thresholds and decision rule it
stores): per label the probabilities and the share of positives, the out-of-distribution
scores and the share flagged, the share referred, and per film its mean intensity,
contrast (standard deviation) and size. ``python -m cxr_keras.monitor`` compares the audit
log's answers with it (:mod:`cxr_keras.evaluation.drift`). The values are kept as they are
(at most :data:`MAX_VALUES` per quantity, an even subsample beyond), so any statistic can
be computed from them later, not only the histograms chosen today.

Example:
    >>> profile = build_profile(
    ...     labels=["PNEUMONIA"], probabilities=np.array([[0.2], [0.9]]), thresholds=[0.5],
    ...     ood_scores=np.array([1.0, 2.0]), ood=np.array([False, False]),
    ...     refer=np.array([False, True]), statistics=np.array([[0.2, 0.8, 0.5]] * 2),
    ...     sizes=[(1024, 1024), None], source="val")
    >>> profile["labels"]["PNEUMONIA"]["positive_share"], profile["referral_share"]
    (0.5, 0.5)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_STATISTICS",
    "MAX_VALUES",
    "PROFILE_FILE",
    "build_profile",
    "load_profile",
    "profile_answers",
    "save_profile",
]

PROFILE_FILE = "reference_profile.json"
MAX_VALUES = 2000  # per quantity: enough for a two-sample test, a few kB of JSON
# what the profile and the audit log both measure on each film (audit-log column names)
IMAGE_STATISTICS = ("mean_intensity", "contrast", "width", "height")


def _values(values) -> list[float]:
    """Finite values, sorted, at most MAX_VALUES (evenly spaced ranks beyond), rounded."""
    values = np.sort(np.asarray(values, np.float64)[np.isfinite(values)])
    if len(values) > MAX_VALUES:
        values = values[np.linspace(0, len(values) - 1, MAX_VALUES).round().astype(int)]
    return [round(float(v), 6) for v in values]


def build_profile(
    *,
    labels: Sequence[str],
    probabilities: np.ndarray,
    thresholds: Sequence[float],
    ood_scores: np.ndarray,
    ood: np.ndarray,
    refer: np.ndarray,
    statistics: np.ndarray,
    sizes: Sequence[tuple[int, int] | None] | None,
    source: str,
    decision_rule: str | None = None,
    temperatures: Sequence[float] | None = None,
    weights_sha256: str | None = None,
) -> dict:
    """The profile of one set of answers (one row per film): ``statistics`` as
    :func:`~cxr_keras.data.input_checks.batch_statistics` gives them (std, spread, mean),
    ``sizes`` (width, height) per film, ``source`` what the films were (``val``)."""
    probabilities = np.asarray(probabilities, np.float64)
    decisions = probabilities >= np.asarray(thresholds, np.float64)
    sizes = list(sizes) if sizes is not None else [None] * len(probabilities)
    widths = [s[0] if s else np.nan for s in sizes]
    heights = [s[1] if s else np.nan for s in sizes]
    statistics = np.asarray(statistics, np.float64).reshape(len(probabilities), -1)
    return {
        "source": source,
        "images": len(probabilities),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision_rule": decision_rule,
        "thresholds": dict(zip(labels, map(float, thresholds), strict=True)),
        "temperatures": None if temperatures is None else [float(t) for t in temperatures],
        "weights_sha256": weights_sha256,
        "labels": {
            label: {
                "probabilities": _values(probabilities[:, j]),
                "positive_share": float(decisions[:, j].mean()) if len(decisions) else None,
            }
            for j, label in enumerate(labels)
        },
        "ood_scores": _values(ood_scores),
        "ood_share": float(np.mean(ood)) if len(ood) else None,
        "referral_share": float(np.mean(refer)) if len(refer) else None,
        "image": {
            "mean_intensity": _values(statistics[:, 2]),
            "contrast": _values(statistics[:, 0]),
            "width": _values(widths),
            "height": _values(heights),
        },
    }


def profile_answers(
    predictor,
    answers,
    *,
    sizes: Sequence[tuple[int, int] | None] | None,
    source: str,
    temperatures: Sequence[float] | None = None,
    thresholds: Sequence[float] | None = None,
    decision_rule: str | None = None,
    referral_rule: dict | None = None,
) -> dict:
    """The profile of a :class:`~cxr_keras.artifact.predictor.Predictor`'s answers (from
    :meth:`~cxr_keras.artifact.predictor.Predictor.predict_manifest`), at the given
    temperatures, decision thresholds and referral rule (default: the artifact's), each
    film referred as predict refers it without MC dropout (near a threshold, or out of
    distribution).

    Example:
        >>> answers, decoded = predictor.predict_manifest(val)  # doctest: +SKIP
        >>> profile = profile_answers(predictor, answers, sizes=manifest_sizes(val[decoded]),
        ...                           source="val")  # doctest: +SKIP
    """
    from cxr_keras.artifact.calibration import sigmoid
    from cxr_keras.artifact.referral import refer, rule_of

    artifact = predictor.artifact
    temperatures = artifact.temperatures if temperatures is None else temperatures
    thresholds = predictor.thresholds if thresholds is None else thresholds
    probabilities = sigmoid(np.asarray(answers.logits) / np.asarray(temperatures, np.float64))
    rule = referral_rule or rule_of(artifact.meta)
    near = refer(probabilities, thresholds, std=None, rule=rule)
    return build_profile(
        labels=predictor.labels,
        probabilities=probabilities,
        thresholds=thresholds,
        ood_scores=answers.ood_scores,
        ood=answers.ood,
        refer=near.any(axis=1) | answers.ood,
        statistics=answers.statistics,
        sizes=sizes,
        source=source,
        decision_rule=decision_rule or artifact.decision_rule,
        temperatures=temperatures,
        weights_sha256=predictor.weights_sha256,
    )


def save_profile(profile: dict, directory: str | os.PathLike) -> dict:
    """Write :data:`PROFILE_FILE` into an artifact folder (atomically); returns the entry
    its ``cxr_model.json`` keeps (``reference_profile``)."""
    path = Path(directory) / PROFILE_FILE
    tmp = path.with_name(f".{PROFILE_FILE}.tmp")
    tmp.write_text(json.dumps(profile), encoding="utf-8")
    os.replace(tmp, path)
    return {
        "file": PROFILE_FILE,
        "source": profile["source"],
        "images": profile["images"],
        "created": profile["created"],
    }


def load_profile(directory: str | os.PathLike, meta: dict) -> dict | None:
    """The artifact's stored profile (None when it has none); a ValueError naming the
    file when the description names one that is missing or unreadable."""
    entry = meta.get("reference_profile")
    if not entry:
        return None
    path = Path(directory) / entry.get("file", PROFILE_FILE)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: the reference profile cannot be read ({exc})") from None
