"""Shared fixtures: where the real data packs are, and small helpers.

The packs live in ``../shared/data`` beside the checkout (or ``$CXR_SHARED_DATA``). Tests
that need them skip with a clear message when they are absent, unless
``CXR_REQUIRE_DATA=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A fixed key for pseudonymous DICOM patient ids: no per-user key file is written by tests.
os.environ.setdefault("CXR_KERAS_PATIENT_KEY", "tests-only-key")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data packs (kermany_pneumonia, nih_cxr14_sample, dicom, ...)."""
    if not (SHARED / "kermany_pneumonia").is_dir():
        message = (
            f"real data packs not found at {SHARED}; set CXR_SHARED_DATA to the folder "
            "holding kermany_pneumonia/, nih_cxr14_sample/, dicom/ and label_files/"
        )
        if os.environ.get("CXR_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED


def tiny_config(name: str = "fixture", **sections):
    """A config for a small, fast model on the bundled Kermany sample (64 px custom CNN)."""
    from cxr_keras.config import config_from_dict

    raw = {
        "name": name,
        "seed": 7,
        "data": {
            "source": "folder",
            "root": "sample:kermany",
            "labels": ["PNEUMONIA"],
            "split": {"method": "patient", "val": 0.25, "test": 0.2},
            "batch_size": 16,
        },
        "image": {"size": 64},
        "augment": {"rotation": 5, "zoom": 0.05},
        "model": {"backbone": "custom_cnn", "filters": [8, 16, 32], "dropout": 0.1},
        "training": {
            "epochs": 3,
            "learning_rate": 0.003,
            "class_weights": "balanced",
            "tensorboard": False,
        },
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return config_from_dict(raw)


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory):
    """One small model trained once per test session, shared by the tests that need one."""
    from cxr_keras.training.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "fixture"
    return train(tiny_config(), run_dir=run_dir, progress=False)


def tiny_nih_model(run_dir: Path, name: str, labels: list[str], test: float = 0.3):
    """A one-epoch 64 px multi-label model of the bundled NIH sample, for these findings."""
    from cxr_keras.training.train import train

    cfg = tiny_config(
        name,
        data={
            "source": "csv",
            "root": "sample:nih",
            "csv": "sample:nih/labels.csv",
            "finding_column": "finding_labels",
            "patient_column": "patient_id",
            "view_column": "view",
            "labels": labels,
            "split": {"method": "patient", "val": 0.3, "test": test},
        },
        training={"epochs": 1},
    )
    return train(cfg, run_dir=run_dir, progress=False)


def free_port() -> int:
    """A TCP port free on the loopback interface now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_source(target: Path) -> Path:
    """The package and its build files copied to ``target``, for a test that builds or
    installs it (pip builds in the source folder: no build folder lands in the checkout)."""
    import shutil

    shutil.copytree(
        REPO / "cxr_keras", target / "cxr_keras", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, target / name)
    return target


def subprocess_env() -> dict:
    """The environment for running the package's CLIs from a test."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def kill_when(command: list[str], cwd: Path, ready, timeout: float = 240) -> None:
    """Start ``command``, wait until ``ready()`` (or the timeout), then SIGKILL its whole
    process group: the way a run is interrupted in the resume tests."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not ready():
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
