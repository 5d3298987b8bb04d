"""MODEL_CARD.md: written by train and evaluate from the artifact's description, with the
data, the figures with their intervals, the thresholds, the limits and no machine path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxr_keras.artifact.model_card import CARD_FILE, model_card
from cxr_keras.artifact.store import copy_artifact, load_artifact
from cxr_keras.evaluation.evaluate import evaluate
from cxr_keras.training.train import train
from tests.conftest import REPO, subprocess_env, tiny_config


def test_train_writes_a_card_from_the_artifact(trained_artifact):
    card = (trained_artifact.path / CARD_FILE).read_text()
    meta = trained_artifact.meta
    assert card.startswith(f"# Model card: {meta['name']}")
    splits = meta["data"]["summary"]["splits"]
    assert f"| train | {splits['train']['images']} | {splits['train']['patients']} |" in card
    assert "`custom_cnn`" in card and "64x64 px" in card and "rotation 5" in card
    assert "(trained through the Python API)" in card  # no command line was given
    assert "## Known limits" in card and "not a medical device" in card


def test_evaluation_figures_and_the_recipe_card_reach_the_card(tmp_path):
    cfg = tiny_config(
        "carded",
        card={
            "intended_use": "Teaching the pipeline on a pediatric sample.",
            "data_licence": "CC BY 4.0",
            "citations": ["Kermany et al., Cell 2018"],
            "limitations": ["Pediatric films from one hospital only."],
        },
    )
    artifact = train(cfg, run_dir=tmp_path / "carded", progress=False)
    assert "Not evaluated yet" in (tmp_path / "carded" / CARD_FILE).read_text()
    metrics = evaluate(artifact, calibrate=True, bootstrap=200, out=tmp_path / "report")
    card = (tmp_path / "carded" / CARD_FILE).read_text()
    low, high = metrics["discrimination"]["macro"]["roc_auc_ci"]
    assert f"(95% CI {low:.3f}–{high:.3f})" in card
    youden = metrics["at_thresholds"]["youden"]["PNEUMONIA"]
    row = f"| youden | PNEUMONIA | {youden['threshold']:.3f} | {100 * youden['accuracy']:.1f}% |"
    assert row in card
    assert "| youden (decision) |" in card and "Temperature: PNEUMONIA" in card
    assert "ECE " in card and "before temperature scaling" in card
    # how each threshold was estimated and placed
    assert "each rule's point value on it" in card
    assert "each placed midway between the deciding validation score" in card
    assert "## Out-of-distribution detection" in card and "Threshold " in card
    for text in ("Teaching the pipeline", "CC BY 4.0", "Kermany et al., Cell 2018", "one hospital"):
        assert text in card
    assert str(tmp_path) not in card  # no machine path, e.g. of the report
    # the words of the card do not block resuming the same run
    again = tiny_config("carded", card={"limitations": ["Edited later."]})
    assert train(again, run_dir=tmp_path / "carded", progress=False).meta["name"] == "carded"


def test_card_command_regenerates_it(trained_artifact, tmp_path):
    copy = copy_artifact(trained_artifact.path, tmp_path / "copy")
    assert (copy / CARD_FILE).is_file()
    (copy / CARD_FILE).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "cxr_keras.model_card", "--model", str(copy)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (copy / CARD_FILE).read_text() == model_card(load_artifact(copy))


@pytest.mark.parametrize("field", ["citations", "limitations"])
def test_card_lists_must_be_lists(field):
    from cxr_keras.core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"card.{field}"):
        tiny_config("bad", card={field: "one sentence"})


def test_model_choice_reaches_the_card(trained_artifact):
    import copy

    from cxr_keras.artifact.store import Artifact

    meta = copy.deepcopy(trained_artifact.meta)
    assert "Why this model" not in model_card(trained_artifact)  # none given: no line
    meta["config"].setdefault("card", {})["model_choice"] = "It led the learning curves."
    card = model_card(Artifact(trained_artifact.model, meta, trained_artifact.path))
    assert "Why this model: It led the learning curves." in card
