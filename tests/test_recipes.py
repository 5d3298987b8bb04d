"""The published-pipeline recipes (cxr_keras/recipes/): each smoke run goes end to end on the
bundled sample written in its dataset's layout, through the real adapter, and leaves its
report, plots and heatmaps. Runs in-process in one scratch folder (the layouts are shared)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxr_keras.artifact.store import load_artifact
from cxr_keras.core.errors import ConfigError
from cxr_keras.recipes import RECIPES_FOLDER
from cxr_keras.workflow.recipe import recipe_config, run_recipe

RECIPES = RECIPES_FOLDER
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working folder for the module (runs/ and the smoke layouts go there)."""
    folder = tmp_path_factory.mktemp("recipes")
    before = os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(before)


def _png(path) -> bool:
    return Path(path).read_bytes()[:4] == PNG


def _common_outputs(run: dict) -> tuple:
    """What every recipe leaves: the report with its figures, the evaluation, heatmaps."""
    run_dir = Path(run["run_dir"])
    report = Path(run["report"])
    assert report.is_file() and (report.parent / "report.html").stat().st_size > 10_000
    assert run["name"].endswith("_smoke") and run["smoke"]
    evaluation = Path(run["evaluate"]["report"])
    metrics = json.loads((evaluation / "metrics.json").read_text())
    for name in ("roc_pr", "confusion", "samples", "errors", "training", "reliability"):
        assert _png(evaluation / metrics["figures"][name]), name
    assert run["explain"]["overlays"] and all(_png(p) for p in run["explain"]["overlays"])
    text = report.read_text()
    for heading in ("## Data", "## Training", "## Evaluation on test", "## Grad-CAM"):
        assert heading in text
    links = [line.split("](", 1)[1][:-1] for line in text.splitlines() if line.startswith("![")]
    assert links and all((report.parent / p.replace("%20", " ")).is_file() for p in links)
    return run_dir, metrics, load_artifact(run_dir)


def test_every_recipe_has_a_smoke_section_and_a_gpu_setting(scratch):
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    for recipe in (
        "rsna_resnet50_binary",
        "chexpert_densenet121_focal",
        "kermany_resnet50_tuned",
        "nih14_resnet50_lse",
        "kermany_customcnn_vs_resnet",
    ):
        assert recipe in names
        full = recipe_config(RECIPES / f"{recipe}.yaml", ["data.root=unread"])
        assert full.recipe.smoke and full.recipe.smoke_layout
        assert full.model.weights == "imagenet" and full.training.mixed_precision == "auto"
        assert not full.training.run_eagerly  # only the smoke run trades speed for no graph


def test_rsna_resnet50_binary(scratch):
    run = run_recipe(RECIPES / "rsna_resnet50_binary.yaml", smoke=True)
    run_dir, metrics, artifact = _common_outputs(run)
    manifest = pd.read_csv(run_dir / "data" / "manifest.csv")
    assert manifest["path"].str.endswith(".dcm").all() and len(manifest) == 108
    assert set(manifest["view"]) <= {"PA", "AP"}  # read from the DICOM headers
    assert artifact.labels == ["Lung Opacity"]
    assert artifact.meta["preprocess"]["contrast"] == "equalize"
    config = artifact.meta["config"]
    assert config["training"]["optimizer"] == "adamw" and config["augment"]["flip"]
    splits = manifest.groupby("split")["patient_id"].nunique()
    assert 0.15 < splits["test"] / splits.sum() < 0.3  # the 80/20 patient split
    # metrics at 0.5 and at the Youden point, both in the report
    assert metrics["at_thresholds"]["default"]["Lung Opacity"]["threshold"] == 0.5
    assert metrics["decision_rule"] == "youden"
    assert "| Lung Opacity |" in Path(run["report"]).read_text()
    summary = json.loads((run_dir / "explain" / "summary.json").read_text())
    assert summary["layers"] == ["conv3_block4_out", "conv4_block6_out", "conv5_block3_out"]
    heatmaps = summary["images"][0]["explained"][0]["heatmaps"]
    assert all(np.load(path).ndim == 2 for path in heatmaps.values()) and len(heatmaps) == 3


def test_chexpert_densenet121_focal(scratch, recwarn):
    run = run_recipe(RECIPES / "chexpert_densenet121_focal.yaml", smoke=True)
    run_dir, _, artifact = _common_outputs(run)
    # the best epoch's weights carry the frozen phase's optimizer: not worth a warning
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]
    assert artifact.labels == ["Effusion", "Edema", "Cardiomegaly"]
    manifest = pd.read_csv(run_dir / "data" / "manifest.csv")
    assert "LATERAL" not in set(manifest["view"])  # frontal only
    assert manifest[artifact.labels].notna().all().all()  # U-Zeros: -1 and blank are 0
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest[manifest["split"] == "test"]["path"].str.contains("/valid/").all()
    phases = [p["name"] for p in artifact.meta["training"]["phases"]]
    assert phases == ["train", "fine_tune"]
    config = artifact.meta["config"]
    assert config["training"]["loss"] == "focal" and config["training"]["focal_gamma"] == 2.0
    assert config["training"]["fine_tune"]["unfreeze_from"] == "conv5_block2_concat"
    assert artifact.meta["training"]["phases"][1]["freeze"] == "conv5_block2_concat"
    assert len(artifact.meta["thresholds"]["youden"]) == 3  # one threshold per class
    assert (run_dir / "train" / "best.weights.h5").is_file()  # what resuming starts from
    summary = json.loads((run_dir / "explain" / "summary.json").read_text())
    assert summary["layers"] == ["conv5_block16_concat"]


def test_kermany_resnet50_tuned(scratch, recwarn):
    run = run_recipe(RECIPES / "kermany_resnet50_tuned.yaml", smoke=True)
    _, metrics, artifact = _common_outputs(run)
    # the trials (in-process here) silence Keras' false "ran out of data" at each validation
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
    assert (
        run["tune"]["trials"] == 2 and "## Hyperparameter search" in Path(run["report"]).read_text()
    )
    best = run["tune"]["hyperparameters"]
    config = artifact.meta["config"]
    assert config["model"]["dense_units"] == best["model.dense_units"]
    assert config["training"]["learning_rate"] == pytest.approx(best["training.learning_rate"])
    assert artifact.model.get_layer("head_dense").kernel_regularizer is not None
    assert config["training"]["class_weights"] == "balanced"
    at = metrics["at_thresholds"][metrics["decision_rule"]]["PNEUMONIA"]
    for name in ("accuracy", "precision", "sensitivity", "f1"):
        assert 0 <= at[name] <= 1 or at[name] is None
    assert metrics["discrimination"]["labels"]["PNEUMONIA"]["roc_auc"] is not None
    history = artifact.meta["training"]["history"]
    assert "binary_accuracy" in history[0] and "val_loss" in history[0]


def test_nih14_resnet50_lse(scratch):
    run = run_recipe(RECIPES / "nih14_resnet50_lse.yaml", smoke=True)
    run_dir, metrics, artifact = _common_outputs(run)
    assert len(artifact.labels) == 14
    assert artifact.model.get_layer("transition").output.shape[-1] == 1024
    assert artifact.model.get_layer("pool_lse").r == 10
    assert artifact.meta["config"]["training"]["class_weights"] == "positive"
    assert _png(run_dir / "data" / "co_occurrence_train.png")
    assert "Label co-occurrence of the training split" in Path(run["report"]).read_text()
    assert set(metrics["discrimination"]["labels"]) == set(artifact.labels)  # per class
    manifest = pd.read_csv(run_dir / "data" / "manifest.csv")
    assert set(manifest["split"]) == {"train", "val", "test"}  # the official test list kept


def test_kermany_customcnn_vs_resnet(scratch):
    run = run_recipe(RECIPES / "kermany_customcnn_vs_resnet.yaml", smoke=True)
    _, _, artifact = _common_outputs(run)
    phases = artifact.meta["training"]["phases"]
    assert [p["name"] for p in phases] == ["train", "fine_tune"]
    assert phases[1]["learning_rate"] == pytest.approx(phases[0]["learning_rate"] / 10)
    assert phases[0]["freeze"] == "backbone" and phases[1]["freeze"] == "conv5_block1_1_conv"
    baseline = load_artifact(run["compare"]["with"][0])
    assert baseline.meta["model"]["backbone"] == "custom_cnn"
    assert baseline.meta["config"]["model"]["filters"] == [32, 64, 128]
    comparison = json.loads((Path(run["compare"]["report"]) / "comparison.json").read_text())
    assert [m["backbone"] for m in comparison["models"]] == ["resnet50", "custom_cnn"]
    for model in comparison["models"]:
        decision = model["labels"]["PNEUMONIA"]["decision"]
        assert set(decision) >= {"accuracy", "precision", "sensitivity", "f1", "threshold"}
    difference = comparison["auc_differences"]["kermany_customcnn_baseline_smoke"]["PNEUMONIA"]
    a, b = (m["labels"]["PNEUMONIA"]["roc_auc"] for m in comparison["models"])
    assert difference["difference"] == pytest.approx(b - a, abs=1e-6)
    assert len(comparison["figures"]["gradcam"]) == 2
    assert all(_png(p) for p in comparison["figures"]["gradcam"])
    assert "## Comparison" in Path(run["report"]).read_text()


def test_compare_refuses_models_of_other_labels_or_other_images(scratch):
    from cxr_keras.evaluation.compare import compare

    if not Path("runs/kermany_customcnn_baseline_smoke").is_dir():
        pytest.skip("uses the smoke runs of the tests above (run the whole module)")

    with pytest.raises(ValueError, match="predicts"):
        compare(["runs/rsna_resnet50_binary_smoke", "runs/kermany_resnet50_tuned_smoke"])
    # the same label on other images: a copy whose test evaluation lost a film
    import shutil

    other = Path(shutil.copytree("runs/kermany_customcnn_baseline_smoke", "runs/copy"))
    predictions = other / "evaluation" / "test" / "predictions.csv"
    pd.read_csv(predictions).iloc[1:].to_csv(predictions, index=False)
    with pytest.raises(ValueError, match="different images"):
        compare(["runs/kermany_resnet50_tuned_smoke", other])


def test_compare_cli_writes_its_report(scratch):
    import subprocess
    import sys

    if not Path("runs/kermany_customcnn_baseline_smoke").is_dir():
        pytest.skip("uses the smoke runs of the tests above (run the whole module)")
    models = ["runs/kermany_resnet50_two_phase_smoke", "runs/kermany_customcnn_baseline_smoke"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxr_keras.compare",
            "--models",
            *models,
            "--out",
            "runs/cmp",
            "--images",
            "1",
            "--bootstrap",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    comparison = json.loads(Path("runs/cmp/comparison.json").read_text())
    assert [m["backbone"] for m in comparison["models"]] == ["resnet50", "custom_cnn"]
    assert len(comparison["figures"]["gradcam"]) == 1 and Path("runs/cmp/report.html").is_file()


def test_recipe_cli_names_a_missing_recipe(scratch, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "cxr_keras.recipe", "--config", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "no.yaml: config file not found" in result.stderr


def test_a_smoke_setting_that_is_not_a_setting_is_refused(scratch, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\ndata: {source: folder, root: sample:kermany}\n"
        "recipe: {smoke: {training.epoch: 1}}\n"
    )
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        recipe_config(recipe, smoke=True)
