"""Run a published pipeline end to end from its recipe file (``python -m cxr_keras.recipe``).

In order, all under ``runs/<name>/`` (``runs/<name>_smoke/`` with ``--smoke``):

1. the data summary (``data/``: counts per split, the augmentation grid and, for several
   labels, the training split's co-occurrence heatmap);
2. the hyperparameter search, when the recipe has a ``search:`` section (``tune/``);
3. training with the best values found (the artifact: ``model.keras``, ...);
4. evaluation on ``recipe.evaluate_split`` (``evaluation/<split>/``: ROC/PR curves with
   the operating points, metrics at 0.5 and at each rule's threshold, confusion
   matrices, a sample-prediction grid, calibration, training curves);
5. Grad-CAM on films of that split at ``recipe.explain_layers``, side by side
   (``explain/``);
6. each recipe of ``recipe.compare_with`` run the same way, and one comparison report
   (``compare/``, :mod:`cxr_keras.compare`);

then ``recipe/report.md`` and ``report.html``, which gather the numbers and figures of
every step, with the time each took. A finished step is not redone (training resumes or
returns its artifact); ``--overwrite`` starts the search and training afresh.

``--smoke`` runs the same steps in about a minute on a CPU: the recipe's
``recipe.smoke`` settings replace its own (fewer epochs, smaller images, a two-trial
search), and the bundled sample is written in the dataset's own layout
(``recipe.smoke_layout``, :mod:`cxr_keras.data.sample_layouts`) and read through the
recipe's real adapter. A smoke run checks the pipeline, not the model.

Example:
    >>> run = run_recipe(find_recipe("rsna_resnet50_binary"), smoke=True)  # doctest: +SKIP
    >>> run["report"]  # doctest: +SKIP
    'runs/rsna_resnet50_binary_smoke/recipe/report.md'
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from pathlib import Path

import pandas as pd
import yaml

from cxr_keras.config import Config, apply_overrides, load_config, read_config_file
from cxr_keras.core.result_names import THRESHOLD_METRICS

__all__ = ["recipe_config", "run_recipe"]

log = logging.getLogger("cxr_keras.recipe")

#: where smoke runs write the bundled sample in each dataset's layout
SMOKE_DATA = Path("runs") / "smoke_data"


def _override(key: str, value) -> str:
    """``key=value`` with the value written as YAML (lists and mappings in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def recipe_config(
    path: str | os.PathLike, overrides: list[str] | tuple = (), smoke: bool = False
) -> Config:
    """The recipe's config; with ``smoke``, its ``recipe.smoke`` settings applied, the
    bundled sample written in ``recipe.smoke_layout`` and read instead of ``data.root``,
    and the run named ``<name>_smoke``. ``overrides`` (``key=value``) come last.

    Example:
        >>> cfg = recipe_config(find_recipe("kermany_resnet50_tuned"), smoke=True)  # doctest: +SKIP
    """
    overrides = list(overrides)
    if not smoke:
        return load_config(path, overrides)
    from cxr_keras.data.sample_layouts import write_layout

    # read before validating: a recipe whose data is not bundled has no data.root yet
    raw = apply_overrides(read_config_file(path), overrides)
    recipe = raw.get("recipe") or {}
    shrink = [_override(k, v) for k, v in (recipe.get("smoke") or {}).items()]
    layout = recipe.get("smoke_layout")
    data = write_layout(layout, SMOKE_DATA / layout) if layout else {}
    named = any(o.startswith("name=") for o in overrides)
    name = [] if named else [_override("name", f"{raw.get('name')}_smoke")]
    return load_config(
        path, [*shrink, *(_override(k, v) for k, v in data.items()), *name, *overrides]
    )


class _Steps:
    """Times each step and keeps what it returned."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        log.info("recipe step: %s", name)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        return result


def _explain_films(predictions: pd.DataFrame, labels: list[str], wanted: list[str], n: int):
    """The evaluated films to explain: the most clearly positive ones (highest probability
    of a true label), then the most confident negatives."""
    chosen = wanted or labels
    truth = predictions[chosen].fillna(0).to_numpy() == 1
    probability = predictions[[f"probability_{label}" for label in chosen]].to_numpy()
    positive_score = (probability * truth).max(axis=1)
    has_positive = truth.any(axis=1)
    positives = predictions.index[has_positive][
        (-positive_score[has_positive]).argsort(kind="stable")
    ]
    negatives = predictions.index[~has_positive][
        probability[~has_positive].max(axis=1).argsort(kind="stable")
    ]
    take = min(len(positives), max(n - len(negatives), (n + 1) // 2))
    rows = [*positives[:take], *negatives[: n - take]]
    return predictions.loc[rows, "path"].tolist()


def run_recipe(
    path: str | os.PathLike,
    *,
    overrides: list[str] | tuple = (),
    smoke: bool = False,
    overwrite: bool = False,
    compare: bool = True,
) -> dict:
    """Run a recipe's steps (see the module docstring); returns ``recipe.json``'s content
    (the run folder, each step's outputs and seconds, and the report)."""
    from cxr_keras.artifact.store import load_artifact
    from cxr_keras.config import with_values
    from cxr_keras.evaluation.compare import compare as compare_models
    from cxr_keras.evaluation.data_summary import summarize
    from cxr_keras.evaluation.evaluate import evaluate
    from cxr_keras.explanation.explain import explain
    from cxr_keras.training.train import train
    from cxr_keras.training.tune import load_best_hparams, tune

    path = Path(path)
    cfg = recipe_config(path, overrides, smoke)
    recipe = cfg.recipe
    steps = _Steps()
    command = shlex.join(
        ["python", "-m", "cxr_keras.recipe", "--config", str(path)]
        + (["--smoke"] if smoke else [])
        + [f"--set={o}" for o in overrides]
    )
    run: dict = {"recipe": str(path), "name": cfg.name, "smoke": smoke, "command": command}
    run["data"] = steps.run("data", summarize, cfg)
    if cfg.search is not None and cfg.search.space:
        run["tune"] = steps.run("tune", tune, cfg, overwrite=overwrite)
        cfg = with_values(cfg, load_best_hparams(cfg.run_dir))
    artifact = steps.run("train", train, cfg, overwrite=overwrite, command=command)
    split = recipe.evaluate_split
    evaluation = steps.run(
        "evaluate",
        evaluate,
        artifact,
        split=split,
        calibrate=recipe.calibrate,
        bootstrap=recipe.bootstrap,
        subgroup_bootstrap=min(200, recipe.bootstrap),
    )
    run["evaluate"] = {"report": evaluation["report"], "split": split}
    artifact = load_artifact(artifact.path)  # with the thresholds evaluation stored
    if recipe.explain_images:
        predictions = pd.read_csv(Path(evaluation["report"]) / "predictions.csv")
        films = _explain_films(
            predictions, artifact.labels, recipe.explain_labels, recipe.explain_images
        )
        explained = steps.run(
            "explain",
            explain,
            artifact,
            films,
            labels=recipe.explain_labels or None,
            layers=recipe.explain_layers or None,
            out=cfg.run_dir / "explain",
        )
        run["explain"] = {
            "layers": explained["layers"],
            "overlays": [e["overlay"] for image in explained["images"] for e in image["explained"]],
        }
    if compare and recipe.compare_with:
        others = []
        shared = [o for o in overrides if not o.startswith("name=")]  # each keeps its name
        for other in recipe.compare_with:
            other_path = path.parent / other
            others.append(
                steps.run(
                    f"run {other}",
                    run_recipe,
                    other_path,
                    overrides=shared,
                    smoke=smoke,
                    overwrite=overwrite,
                    compare=False,
                )
            )
        compared = steps.run(
            "compare",
            compare_models,
            [cfg.run_dir, *(o["run_dir"] for o in others)],
            split=split,
            out=cfg.run_dir / "compare",
            images=recipe.explain_images,
            bootstrap=recipe.bootstrap,
            names=[cfg.name, *(o["name"] for o in others)],
        )
        run["compare"] = {"report": compared["report"], "with": [o["run_dir"] for o in others]}
    else:
        compared = None
    run["run_dir"] = str(cfg.run_dir)
    run["seconds"] = steps.seconds
    run["report"] = _write_report(cfg, run, evaluation, artifact, compared)
    (cfg.run_dir / "recipe").mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "recipe" / "recipe.json").write_text(
        json.dumps(run, indent=2, default=str), encoding="utf-8"
    )
    return run


def _write_report(cfg: Config, run: dict, evaluation: dict, artifact, compared) -> str:
    """``recipe/report.md`` and ``report.html``: every step's key numbers and figures
    (``evaluation`` and ``compared``: what evaluate and compare returned)."""
    from cxr_keras.evaluation.report import Report, fmt

    out = cfg.run_dir / "recipe"
    out.mkdir(parents=True, exist_ok=True)
    kind = (
        "smoke run (bundled sample; checks the pipeline, not the model)" if run["smoke"] else "run"
    )
    report = Report(f"Recipe {Path(run['recipe']).name}: {kind}")
    report.paragraph(f"Command: {run['command']}. Run folder: {cfg.run_dir}.")
    report.table(
        ["step", "seconds"], [[name, fmt(seconds, 1)] for name, seconds in run["seconds"].items()]
    )

    data = run["data"]
    report.heading("Data")
    report.table(
        ["split", "images", "patients"],
        [[name, s["images"], s.get("patients", "")] for name, s in data["splits"].items()],
    )
    if data.get("skipped"):
        report.paragraph(
            "Files left out: " + ", ".join(f"{k}: {v}" for k, v in data["skipped"].items())
        )
    for name, caption in (
        ("co_occurrence_train", "Label co-occurrence of the training split"),
        ("augmentation_grid", "Training films and their augmented versions"),
    ):
        if name in data.get("figures", {}):
            report.image(data["figures"][name], caption)

    if "tune" in run:
        tuned = run["tune"]
        report.heading("Hyperparameter search")
        report.paragraph(
            f"{tuned['oracle']} search, {tuned['trials']} trials; best "
            + ", ".join(f"{k} = {fmt(v, 5)}" for k, v in tuned["hyperparameters"].items())
            + f" ({', '.join(f'{k} {fmt(v)}' for k, v in tuned['objective'].items())})."
        )
        objective = cfg.run_dir / "tune" / "objective.png"
        if objective.is_file():
            report.image(objective, "Objective of each trial")

    training = artifact.meta.get("training", {})
    model = artifact.meta["model"]
    report.heading("Training")
    report.paragraph(
        f"{model['backbone']} ({fmt(model.get('trainable_params'))} "
        f"trainable parameters at the end), {training.get('epochs_run')} epochs, best epoch "
        f"{training.get('best_epoch')} by {training.get('monitor')}; "
        f"{fmt(training.get('wall_time_s'), 1)} s."
    )

    metrics_dir = Path(evaluation["report"])
    rule = evaluation["decision_rule"]
    report.heading(f"Evaluation on {run['evaluate']['split']}")
    rows = []
    for label in evaluation["labels"]:
        disc = evaluation["discrimination"]["labels"][label]
        ci = disc.get("roc_auc_ci") or [None, None]
        for name in ("default", rule):
            m = evaluation["at_thresholds"][name][label]
            rows.append(
                [
                    label,
                    fmt(disc["roc_auc"]),
                    f"{fmt(ci[0])}-{fmt(ci[1])}",
                    "0.5" if name == "default" else name,
                    fmt(m["threshold"]),
                    *(fmt(m[key]) for key in THRESHOLD_METRICS),
                ]
            )
    report.table(
        [
            "label",
            "ROC AUC",
            "95% CI",
            "at",
            "threshold",
            *THRESHOLD_METRICS.values(),
        ],
        rows,
    )
    report.paragraph(f"Full report: {metrics_dir / 'report.md'}.")
    figures = evaluation["figures"]
    for name, caption in (
        ("roc_pr", "ROC and precision-recall curves with the operating points"),
        ("confusion", f"Confusion matrices at the {rule} thresholds"),
        ("training", "Training curves"),
        ("samples", "Sample predictions (green right, red wrong)"),
    ):
        if name in figures:
            report.image(metrics_dir / figures[name], caption)

    if "explain" in run:
        report.heading("Grad-CAM")
        report.paragraph(f"Layers, side by side: {', '.join(run['explain']['layers'])}.")
        for overlay in run["explain"]["overlays"]:
            report.image(overlay, Path(overlay).stem)

    if compared is not None:
        report.heading("Comparison")
        rows = []
        for model in compared["models"]:
            for label, m in model["labels"].items():
                d = m["decision"]
                rows.append(
                    [
                        model["name"],
                        label,
                        fmt(m["roc_auc"]),
                        fmt(d["accuracy"]),
                        fmt(d["precision"]),
                        fmt(d["sensitivity"]),
                        fmt(d["f1"]),
                    ]
                )
        report.table(["model", "label", "ROC AUC", "accuracy", "precision", "recall", "F1"], rows)
        report.paragraph(f"Full comparison: {Path(run['compare']['report']) / 'report.md'}.")
        report.image(compared["figures"]["roc"], "ROC curves of the compared models")
        for path in compared["figures"]["gradcam"]:
            report.image(path, "Grad-CAM of each model on the same film")

    (out / "report.md").write_text(report.markdown(relative_to=out), encoding="utf-8")
    (out / "report.html").write_text(report.html(), encoding="utf-8")
    return str(out / "report.md")
