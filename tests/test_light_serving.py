"""The lightweight serving path: the same model inputs without TensorFlow, the same answers
from the ONNX export as from the Keras model, and TensorFlow never imported on the way."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="the [serve] extra (onnxruntime) is not installed")
pytest.importorskip("simplejpeg", reason="the [serve] extra (simplejpeg) is not installed")

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import load_image
from cxr_keras.data.numpy_io import load_image_numpy
from cxr_keras.pretrained import PRETRAINED_FOLDER
from cxr_keras.sample_data import sample_files
from cxr_keras.serving.light_predictor import ExportedPredictor
from cxr_keras.serving.predict import predict
from tests.conftest import REPO, copy_source, subprocess_env

SHIPPED = PRETRAINED_FOLDER / "kermany_pneumonia"
SPECS = [
    ImageSpec(size=224),  # the shipped model's: squash
    ImageSpec(size=128, resize="pad", crop_borders=True),
    ImageSpec(size=(160, 96), resize="crop"),
]


@pytest.fixture(scope="module")
def films(shared_data, tmp_path_factory):
    """Real films of every kind a user sends: Kermany JPEGs of both packs, adult NIH
    films, the real DICOMs (MONOCHROME1 JPEG 2000, uncompressed, ...), and a 12-bit film
    in a 16-bit PNG."""
    folder = tmp_path_factory.mktemp("light_films")
    kermany = sorted((shared_data / "kermany_pneumonia" / "val").glob("*/*.jpeg"))[::40]
    small = sorted((shared_data / "kermany_pneumonia_224" / "val").glob("*/*.jpeg"))[::200]
    nih = sorted((shared_data / "nih_cxr14_sample" / "images").glob("*"))[::60]
    dicoms = sorted((shared_data / "dicom").glob("*.dcm"))
    twelve_bit = folder / "twelve_bit.png"
    pixels = np.asarray(Image.open(kermany[0]).convert("L"), np.uint16) * 16
    Image.fromarray(pixels).save(twelve_bit)
    return [*kermany, *small, *nih, *dicoms, twelve_bit]


def test_the_model_input_is_tensorflows_to_the_bit(films):
    for spec in SPECS:
        for film in films:
            expected = load_image(film, spec)
            np.testing.assert_array_equal(load_image_numpy(film, spec), expected, err_msg=film)


@pytest.mark.parametrize("runtime", ["onnx", "litert"])
def test_the_export_answers_as_the_keras_model(films, runtime):
    light = ExportedPredictor.from_artifact(SHIPPED, runtime=runtime)
    full = Predictor.from_path(SHIPPED)
    a, b = light.predict_files(films), full.predict_files(films)
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-4
    assert (a.decisions == b.decisions).all() and a.ood_reasons == b.ood_reasons
    relative = np.abs(a.ood_scores - b.ood_scores) / np.maximum(np.abs(b.ood_scores), 1)
    assert relative.max() < 1e-3
    assert a.decisions.any() and not a.decisions.all()  # both classes among the films


@pytest.fixture(scope="module")
def serve_install(tmp_path_factory) -> Path:
    """The python of a fresh virtualenv where ``pip install 'cxr-keras[serve]'`` was run
    (from a copy of the source, so no build folder lands in the checkout), at the pinned
    versions: the install a PACS hook or a serverless function gets."""
    where = tmp_path_factory.mktemp("serve_install")
    source = copy_source(where / "source")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    constraints = REPO / "requirements" / "constraints.txt"
    install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run = subprocess.run(
        [*install, "--constraint", constraints, f"{source}[serve]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return python


def test_the_serve_install_answers_as_the_keras_model_without_tensorflow(
    films, serve_install, tmp_path
):
    listed = subprocess.run(
        [serve_install, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert {"onnxruntime", "ai-edge-litert", "simplejpeg", "pydicom", "cxr-keras"} <= installed
    heavy = {"tensorflow", "keras", "keras-tuner", "scipy", "scikit-learn", "matplotlib"}
    assert not heavy & installed and not any(n.startswith("opencv") for n in installed)

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for film in films[::3]:
        shutil.copy(film, inbox / film.name)
    (inbox / "broken.jpeg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    dicom = pydicom.dcmread(sample_files("dicom")[0])
    dicom.PatientName = "Doe^Jane"
    dicom.save_as(inbox / "study.dcm")
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}  # the install only
    full_document = predict(SHIPPED, [inbox], out=tmp_path / "full", mc_passes=0, prevalence=0.3)
    full = pd.read_csv(tmp_path / "full" / "predictions.csv")
    assert [p["file"] for p in full_document["problems"]] == ["broken.jpeg"]
    for runtime in ("onnx", "litert"):
        out = tmp_path / runtime
        command = [serve_install, "-m", "cxr_keras.predict", "--model", SHIPPED, "--out", out]
        run = subprocess.run(
            [
                *command,
                inbox,
                "--runtime",
                runtime,
                "--log",
                out / "audit.db",
                "--prevalence",
                "0.3",
            ],
            cwd=tmp_path,  # not the checkout: nothing of it is on the path
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        light = pd.read_csv(out / "predictions.csv")
        assert len(light) == len(full) == len(list(inbox.iterdir())) - 1  # the broken file
        assert list(light["path"]) == list(full["path"])
        for column in ("PNEUMONIA", "PNEUMONIA_before_adaptation"):
            assert np.abs(light[column] - full[column]).max() < 1e-4, runtime
        assert list(light["decision"]) == list(full["decision"])
        assert list(light["ood"]) == list(full["ood"])
        assert list(light["refer"]) == list(full["refer"])
        document = json.loads((out / "predictions.json").read_text())
        assert document["runtime"] == runtime and "MC-dropout" in document["referral_note"]
        assert [p["file"] for p in document["problems"]] == ["broken.jpeg"]

    # what needs TensorFlow says what to install, in one line, not a traceback
    for stage, extra_args, hint in (
        ("predict", ["--out", tmp_path / "k", inbox], "--runtime onnx or litert"),
        ("evaluate", [], "pip install 'cxr-keras[full]'"),
    ):
        run = subprocess.run(
            [serve_install, "-m", f"cxr_keras.{stage}", "--model", SHIPPED, *extra_args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
        assert "pip install 'cxr-keras[full]'" in run.stderr and hint in run.stderr


def test_what_the_light_path_cannot_do_is_refused_with_the_way_out(trained_artifact, tmp_path):
    film = sample_files("kermany")[0]
    for option in ({"gradcam": True}, {"mc_passes": 5}):
        with pytest.raises(ValueError, match="use --runtime keras"):
            predict(SHIPPED, [film], out=tmp_path / "x", runtime="onnx", **option)
    with pytest.raises(ValueError, match="no onnx export here"):
        predict(trained_artifact.path, [film], out=tmp_path / "x", runtime="onnx")
    # an export made before the operating point changed is not used
    stale = copy_artifact(SHIPPED, tmp_path / "stale")
    shutil.copytree(SHIPPED / "export", stale / "export")
    meta = load_artifact(stale).meta
    rule = meta["decision_rule"]
    meta["thresholds"][rule] = {"PNEUMONIA": 0.5}
    write_meta(meta, stale)
    with pytest.raises(ValueError, match=r"older than the artifact.*export it again"):
        ExportedPredictor.from_artifact(stale)
