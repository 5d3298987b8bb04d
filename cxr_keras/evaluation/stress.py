"""Stress evaluation: the evaluated films re-scored under a fixed family of acquisition
shifts, each at two severities, so figures that only hold on pristine films show it.

Each shift changes the model input (the film as decoded and resized, values in [0, 1]),
the way another device, exposure or export would:

===========================  ==============================================================
exposure                     gamma 0.6 (brighter) and 1.6 (darker)
contrast compression         values pulled towards mid-grey by 30 % and by 60 %
blur                         Gaussian, sigma 1 and 2 pixels of the model input
noise                        Gaussian, std 0.02 and 0.05 (clipped to [0, 1])
JPEG re-compression          quality 30 and 10
downscale-upscale            to 1/2 and 1/4 of the side, then back (area, then linear)
black border                 the film shrunk inside a black frame of 8 % and 15 %
rotation                     5 and 10 degrees, black corners
shift                        5 % and 10 % of the width to the right, black gap
12-bit range                 a 12-bit film read as 16-bit without rescaling (values / 16)
===========================  ==============================================================

Per shift and severity: ROC AUC (macro over labels with both classes), sensitivity and
specificity at the decision threshold and at every other stored rule's (macro), ECE and
the share of films the out-of-distribution check flags; and the worst case of each over
all shifts, per rule too.

Example:
    >>> images = np.full((2, 32, 32, 1), 0.5, np.float32)
    >>> shifted = apply_shift(images, shift="rotation", severity=1)
    >>> shifted.shape, float(shifted[0, 0, 0, 0])  # a black corner
    ((2, 32, 32, 1), 0.0)
"""

from __future__ import annotations

import io

import numpy as np

__all__ = [
    "SHIFTS",
    "apply_shift",
    "score_films",
    "stress_evaluation",
    "stress_manifest",
    "stressed_scores",
]

# shift -> its severities, as they are printed (the parameters live in _shift_one)
SHIFTS = {
    "exposure": ["gamma 0.6", "gamma 1.6"],
    "contrast compression": ["30 %", "60 %"],
    "blur": ["sigma 1 px", "sigma 2 px"],
    "noise": ["std 0.02", "std 0.05"],
    "JPEG re-compression": ["quality 30", "quality 10"],
    "downscale-upscale": ["1/2", "1/4"],
    "black border": ["8 %", "15 %"],
    "rotation": ["5 degrees", "10 degrees"],
    "shift": ["5 %", "10 %"],
    "12-bit range": ["read as 16-bit"],
}


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of an (H, W) film, reflecting at the edges without repeating the
    edge pixel, over 4 sigmas each side (OpenCV's ``GaussianBlur`` with a sigma)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(image, np.float32), sigma, mode="mirror", truncate=4.0)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """An (H, W) film rotated counter-clockwise about its centre, bilinear, black outside
    (OpenCV's ``getRotationMatrix2D`` and ``warpAffine``)."""
    from scipy.ndimage import affine_transform

    h, w = image.shape
    angle = np.deg2rad(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    # output (row, col) -> input (row, col): the inverse rotation about (h / 2, w / 2)
    matrix = np.array([[cos, sin], [-sin, cos]])
    centre = np.array([h / 2, w / 2])
    offset = centre - matrix @ centre
    return affine_transform(
        np.asarray(image, np.float32), matrix, offset=offset, order=1, mode="grid-constant"
    )


def _shift_one(image: np.ndarray, shift: str, severity: int, rng) -> np.ndarray:
    """One (H, W) film in [0, 1] under a shift; ``severity`` 0 or 1."""
    from PIL import Image

    from cxr_keras.data.numpy_io import area_resize, bilinear_resize

    h, w = image.shape
    if shift == "exposure":
        return image ** (0.6, 1.6)[severity]
    if shift == "contrast compression":
        return 0.5 + (image - 0.5) * (0.7, 0.4)[severity]
    if shift == "blur":
        return _gaussian_blur(image, (1.0, 2.0)[severity])
    if shift == "noise":
        return image + rng.normal(0, (0.02, 0.05)[severity], image.shape).astype(np.float32)
    if shift == "JPEG re-compression":
        buffer = io.BytesIO()
        Image.fromarray(np.round(255 * image).astype(np.uint8)).save(
            buffer, format="JPEG", quality=(30, 10)[severity]
        )
        return np.asarray(Image.open(buffer), np.float32) / 255
    if shift == "downscale-upscale":
        factor = (2, 4)[severity]
        small = area_resize(image, h // factor, w // factor)
        return bilinear_resize(small[..., None], h, w)[..., 0]
    if shift == "black border":
        margin = (0.08, 0.15)[severity]
        inner = (max(1, round(w * (1 - 2 * margin))), max(1, round(h * (1 - 2 * margin))))
        out = np.zeros_like(image)
        top, left = (h - inner[1]) // 2, (w - inner[0]) // 2
        out[top : top + inner[1], left : left + inner[0]] = area_resize(image, inner[1], inner[0])
        return out
    if shift == "rotation":
        return _rotate(image, (5.0, 10.0)[severity])
    if shift == "shift":
        pixels = round(w * (0.05, 0.10)[severity])
        out = np.zeros_like(image)
        out[:, pixels:] = image[:, : w - pixels]
        return out
    if shift == "12-bit range":
        return np.round(image * 4095) / 65535  # 12-bit values under a 16-bit scale
    raise ValueError(f"unknown shift {shift!r}; choose from {sorted(SHIFTS)}")


def apply_shift(images: np.ndarray, *, shift: str, severity: int, seed: int = 0) -> np.ndarray:
    """Model inputs (n, H, W, 1) in [0, 1] under one shift at one severity (index into
    :data:`SHIFTS`); the result is clipped to [0, 1], float32."""
    if shift not in SHIFTS or not 0 <= severity < len(SHIFTS[shift]):
        raise ValueError(f"no shift {shift!r} at severity {severity}: see SHIFTS")
    rng = np.random.default_rng(seed)
    images = np.asarray(images, np.float32)
    shifted = [_shift_one(image[..., 0], shift, severity, rng) for image in images]
    return np.clip(np.stack(shifted)[..., None], 0, 1).astype(np.float32)


def _macro_rates(y, p, mask, thresholds) -> dict:
    """Sensitivity and specificity at per-label ``thresholds``, each averaged over the
    labels where it is defined."""
    from cxr_keras.evaluation.metrics import threshold_metrics

    rates: dict[str, list[float]] = {"sensitivity": [], "specificity": []}
    for j, threshold in enumerate(thresholds):
        known = mask[:, j] > 0
        at = threshold_metrics(y[known, j], p[known, j], threshold)
        for key, values in rates.items():
            values += [at[key]] if at[key] is not None else []
    return {key: float(np.mean(values)) if values else None for key, values in rates.items()}


def _figures(answers, y, mask, *, rules, temperatures, decision_rule) -> dict:
    from cxr_keras.artifact.calibration import expected_calibration_error, sigmoid
    from cxr_keras.evaluation.metrics import roc_pr_auc

    p = sigmoid(answers.logits / np.asarray(temperatures))
    aucs = []
    for j in range(y.shape[1]):
        known = mask[:, j] > 0
        yj = y[known, j]
        if len(yj) and yj.min() != yj.max():
            aucs.append(roc_pr_auc(yj, p[known, j])[0])
    at_rules = {rule: _macro_rates(y, p, mask, values) for rule, values in rules.items()}
    known = mask > 0
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        **at_rules[decision_rule],
        "ece": expected_calibration_error(y[known], p[known]),
        "ood_share": float(answers.ood.mean()),
        "rules": at_rules,
    }


def _score_versions(predictor, images: np.ndarray) -> list[dict]:
    """The predictor's answers on ``images`` as they are (first, ``shift`` None) and under
    every shift and severity of :data:`SHIFTS`: ``[{shift, severity, answers}]``."""
    versions = [{"shift": None, "severity": None, "answers": predictor.predict(images)}]
    for shift, severities in SHIFTS.items():
        for severity, label in enumerate(severities):
            shifted = apply_shift(images, shift=shift, severity=severity)
            answers = predictor.predict(shifted)
            versions.append({"shift": shift, "severity": label, "answers": answers})
    return versions


def _worst(rows: list[dict], key: str, pick, rule: str | None = None) -> dict | None:
    """The row where ``key`` (of ``rule``'s rates when given) is worst, as
    ``{value, shift, severity}``."""

    def value(row):
        return row["rules"][rule][key] if rule else row[key]

    candidates = [r for r in rows if value(r) is not None]
    if not candidates:
        return None
    row = pick(candidates, key=value)
    return {"value": value(row), "shift": row["shift"], "severity": row["severity"]}


def stress_evaluation(
    predictor,
    images: np.ndarray,
    *,
    y: np.ndarray,
    mask: np.ndarray,
    thresholds: dict[str, list[float]] | None = None,
    temperatures: list[float] | None = None,
    decision_rule: str | None = None,
    versions: list[dict] | None = None,
) -> dict:
    """Figures on ``images`` as they are and under every shift of :data:`SHIFTS`
    (``{"none": figures, "shifts": [{shift, severity, **figures}], "worst": {...},
    "rules": {rule: ...}}``).

    ``thresholds`` (``{rule: per-label thresholds}``), ``temperatures`` and
    ``decision_rule`` default to the artifact's stored ones; evaluate passes the ones it
    has just chosen. The top-level sensitivity and specificity are at the decision rule;
    ``rules`` says how each rule's rates move: as measured, and their worst case.
    ``versions``: the predictor's answers on these images already (``score_films``), so
    nothing is predicted twice.
    """
    artifact = predictor.artifact
    rules = thresholds or {rule: artifact.thresholds(rule) for rule in artifact.meta["thresholds"]}
    decision_rule = decision_rule or artifact.decision_rule
    settings = {
        "rules": rules,
        "temperatures": temperatures if temperatures is not None else artifact.temperatures,
        "decision_rule": decision_rule,
    }
    clean, *shifted = versions or _score_versions(predictor, images)
    baseline = _figures(clean["answers"], y, mask, **settings)
    rows = [
        {
            "shift": version["shift"],
            "severity": version["severity"],
            **_figures(version["answers"], y, mask, **settings),
        }
        for version in shifted
    ]
    worst = {}
    for key, pick in (("roc_auc", min), ("sensitivity", min), ("specificity", min),
                      ("ece", max), ("ood_share", max)):  # fmt: skip
        found = _worst(rows, key, pick)
        if found:
            worst[key] = found
    by_rule = {
        rule: {
            "thresholds": dict(zip(artifact.labels, values, strict=True)),
            "none": baseline["rules"][rule],
            "worst_sensitivity": _worst(rows, "sensitivity", min, rule),
            "worst_specificity": _worst(rows, "specificity", min, rule),
        }
        for rule, values in rules.items()
    }
    return {
        "images": len(images),
        "decision_rule": decision_rule,
        "none": baseline,
        "shifts": rows,
        "worst": worst,
        "rules": by_rule,
    }


def _films(predictor, df, *, y, mask, limit: int, seed: int):
    """Up to ``limit`` films of a manifest, drawn with the same share from each label
    combination and decoded with the predictor's image spec, with their label rows."""
    from cxr_keras.data.pipeline import make_indexed_dataset

    rows = np.arange(len(df))
    if len(rows) > limit:
        keys = ["".join(map(str, r)) for r in np.nan_to_num(y).astype(int)]
        rng = np.random.default_rng(seed)
        by_key: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            by_key.setdefault(key, []).append(i)
        rows = np.sort(
            np.concatenate(
                [
                    rng.choice(members, max(1, round(limit * len(members) / len(df))), False)
                    for members in by_key.values()
                ]
            )
        )
    subset = df.iloc[rows].reset_index(drop=True)
    subset.attrs = dict(df.attrs)
    images = np.zeros((len(subset), *predictor.spec.size, 1), np.float32)
    seen = np.zeros(len(subset), bool)
    for positions, batch in make_indexed_dataset(subset, predictor.spec, 32):
        images[positions.numpy()] = batch.numpy()
        seen[positions.numpy()] = True
    return images[seen], y[rows][seen], mask[rows][seen]


def score_films(predictor, df, *, y: np.ndarray, mask: np.ndarray, limit: int, seed: int = 0):
    """Up to ``limit`` films of a manifest (drawn with the same share from each label
    combination; ``y`` and ``mask`` its label arrays), decoded with the predictor's image
    spec and scored as they are and under every shift of :data:`SHIFTS`:
    ``{"images", "y", "mask", "versions": [{shift, severity, answers}], "drawn_from"}``.
    What :func:`stress_manifest` and :func:`stressed_scores` both read, so that evaluate,
    stressing the validation films it also chooses stressed thresholds on, predicts each
    version once.

    Example:
        >>> scored = score_films(predictor, val, y=y, mask=mask, limit=300)  # doctest: +SKIP
        >>> len(scored["versions"]), scored["versions"][1]["shift"]  # doctest: +SKIP
        (20, 'exposure')
    """
    images, y, mask = _films(predictor, df, y=y, mask=mask, limit=limit, seed=seed)
    return {
        "images": images,
        "y": y,
        "mask": mask,
        "versions": _score_versions(predictor, images),
        "drawn_from": len(df),
    }


def stress_manifest(
    predictor,
    df,
    *,
    y: np.ndarray,
    mask: np.ndarray,
    limit: int,
    seed: int = 0,
    scored: dict | None = None,
    **settings,
) -> dict:
    """:func:`stress_evaluation` on up to ``limit`` films of a manifest (drawn with the
    same share from each label combination; ``y`` and ``mask`` its label arrays), decoded
    with the predictor's image spec; ``drawn_from`` says how many it had. ``settings``:
    the thresholds, temperatures and decision rule of :func:`stress_evaluation`;
    ``scored``: :func:`score_films` of the same manifest, limit and seed, reused.

    Example:
        >>> stress = stress_manifest(predictor, df, y=y, mask=mask, limit=300)  # doctest: +SKIP
        >>> stress["worst"]["roc_auc"]["shift"]  # doctest: +SKIP
        'black border'
    """
    scored = scored or score_films(predictor, df, y=y, mask=mask, limit=limit, seed=seed)
    result = stress_evaluation(
        predictor,
        scored["images"],
        y=scored["y"],
        mask=scored["mask"],
        versions=scored["versions"],
        **settings,
    )
    return {**result, "drawn_from": scored["drawn_from"]}


def stressed_scores(
    predictor,
    df,
    *,
    y: np.ndarray,
    mask: np.ndarray,
    temperatures: list[float],
    limit: int,
    seed: int = 0,
    scored: dict | None = None,
) -> dict:
    """Up to ``limit`` films of a manifest as they are and under every shift of
    :data:`SHIFTS`, pooled: each film counts once per version, and a version the
    out-of-distribution check flags is left out (it would be referred, not decided).
    What ``evaluate --stressed-thresholds`` chooses its robust thresholds on:
    ``{"y", "p", "logits", "mask", "version"}`` (pooled rows and which version each is),
    ``films``, ``versions`` and ``left_out``. ``scored``: :func:`score_films` of the same manifest,
    limit and seed, reused.

    Example:
        >>> pool = stressed_scores(predictor, val, y=y, mask=m, temperatures=[1.0],
        ...                        limit=300)  # doctest: +SKIP
        >>> pool["p"].shape  # doctest: +SKIP
        (5532, 1)
    """
    from cxr_keras.artifact.calibration import sigmoid

    scored = scored or score_films(predictor, df, y=y, mask=mask, limit=limit, seed=seed)
    y, mask = scored["y"], scored["mask"]
    ys, logits, masks, ids, left_out = [], [], [], [], 0
    for index, version in enumerate(scored["versions"]):
        answers = version["answers"]
        kept = ~answers.ood
        left_out += int((~kept).sum())
        ys.append(y[kept])
        masks.append(mask[kept])
        logits.append(answers.logits[kept])
        ids.append(np.full(int(kept.sum()), index))
    pooled = np.concatenate(logits)
    return {
        "y": np.concatenate(ys),
        "p": sigmoid(pooled / np.asarray(temperatures)),
        "logits": pooled,
        "mask": np.concatenate(masks),
        "version": np.concatenate(ids),  # 0: as it is; k: the k-th shift and severity
        "films": len(scored["images"]),
        "versions": len(scored["versions"]),
        "left_out": left_out,
    }
