"""Loading artifacts: every broken or inconsistent one gets an ArtifactError that says why;
copies are atomic."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.artifact.store import ArtifactError, copy_artifact, load_artifact
from cxr_keras.pretrained import PRETRAINED_FOLDER


@pytest.fixture
def broken(trained_artifact, tmp_path):
    """A fresh copy of the session's artifact, to damage."""

    def copy(name: str):
        target = tmp_path / name
        shutil.copytree(trained_artifact.path, target, ignore=shutil.ignore_patterns("train"))
        return target, json.loads((target / "cxr_model.json").read_text())

    return copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda meta: [meta], "expected a JSON object"),
        (lambda meta: {**meta, "labels": []}, "labels must be a non-empty list"),
        (lambda meta: {k: v for k, v in meta.items() if k != "image_spec"}, "image_spec"),
        (lambda meta: {**meta, "schema_version": "v1"}, "schema_version must be a number"),
        (lambda meta: {**meta, "schema_version": 99}, "newer than this cxr-keras"),
        (lambda meta: {**meta, "temperature": 0}, "temperature must be a number > 0"),
        (lambda meta: {**meta, "thresholds": {"default": {}}}, "needs a threshold for every"),
        (
            lambda meta: {
                **meta,
                "labels": ["PNEUMONIA", "Effusion"],
                "thresholds": {"default": {"PNEUMONIA": 0.5, "Effusion": 0.5}},
            },
            "1 outputs but cxr_model.json names 2 labels",
        ),
    ],
)
def test_inconsistent_descriptions_are_refused(broken, damage, message):
    path, meta = broken("bad")
    (path / "cxr_model.json").write_text(json.dumps(damage(meta)))
    with pytest.raises(ArtifactError, match=message):
        load_artifact(path)


def test_damaged_model_and_missing_files(broken, tmp_path):
    path, _ = broken("truncated")
    data = (path / "model.keras").read_bytes()
    (path / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="cannot load the model"):
        load_artifact(path)
    with pytest.raises(ArtifactError, match="no such artifact folder, and not a shipped model"):
        load_artifact(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path / "empty")
    # the model file named instead of its folder: the error says which folder to pass
    with pytest.raises(ArtifactError, match=f"pass its folder: --model {path}"):
        load_artifact(path / "model.keras")


def test_a_shipped_model_is_found_by_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifact = load_artifact("kermany_pneumonia")
    assert artifact.path == PRETRAINED_FOLDER / "kermany_pneumonia"
    assert artifact.labels == ["PNEUMONIA"]
    (tmp_path / "kermany_pneumonia").mkdir()  # a folder of that name here is what is meant
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact("kermany_pneumonia")


def test_old_schema_gets_documented_defaults(broken):
    path, meta = broken("old")
    for key in ("thresholds", "decision_rule", "temperature", "referral", "schema_version"):
        meta.pop(key)
    (path / "cxr_model.json").write_text(json.dumps(meta))
    artifact = load_artifact(path)
    assert artifact.thresholds() == [0.5] and artifact.temperatures == [1.0]
    assert artifact.meta["schema_version"] == 1 and artifact.meta["referral"] is None


def test_temperature_is_applied(broken, trained_artifact):
    path, meta = broken("calibrated")
    (path / "cxr_model.json").write_text(json.dumps({**meta, "temperature": 2.0}))
    logits = np.array([[-2.0], [0.0], [3.0]])
    result = Predictor(load_artifact(path)).from_logits(logits)
    np.testing.assert_allclose(result.probabilities, 1 / (1 + np.exp(-logits / 2.0)))
    assert result.decisions.ravel().tolist() == [False, True, True]


def test_copy_replaces_a_whole_artifact(trained_artifact, tmp_path):
    target = tmp_path / "models" / "demo"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("from an older export")
    copy_artifact(trained_artifact.path, target)
    assert sorted(p.name for p in target.iterdir()) == [
        "MODEL_CARD.md",
        "cxr_model.json",
        "model.keras",
        "ood.npz",  # the out-of-distribution detector travels with the model
    ]
    assert copy_artifact(target, target) == target.resolve()  # onto itself: nothing to do
    assert not list(target.parent.glob(".demo.*"))
