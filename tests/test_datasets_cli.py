"""The `python -m cxr_keras.datasets summary` command as `make demo` runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from cxr_keras.recipes import RECIPES_FOLDER

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd, timeout=240):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "cxr_keras.datasets", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_summary_on_the_bundled_sample(tmp_path):
    result = _run(
        [
            "summary",
            "--config",
            str(RECIPES_FOLDER / "demo.yaml"),
            "--run-name",
            "clitest",
            "--set",
            "image.size=64",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "262 images, 186 patients, 1 label(s)" in result.stdout
    out = tmp_path / "runs" / "clitest" / "data"
    summary = json.loads((out / "summary.json").read_text())
    splits = summary["splits"]
    assert sum(s["images"] for s in splits.values()) == 262
    assert set(splits) == {"train", "val", "test"}
    assert summary["skipped"] == {}
    with Image.open(out / "augmentation_grid.png") as grid:
        assert grid.size[0] > 600 and grid.size[1] > 300
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 263 and "split" in manifest[0]


def test_bad_config_gives_one_clear_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {source: folder, root: sample:kermany}\naugment: {rotaion: 3}\n")
    result = _run(["summary", "--config", str(bad)], cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "unknown key 'augment.rotaion' (did you mean 'rotation'?)" in result.stderr
    assert "Traceback" not in result.stderr
    missing = _run(
        [
            "summary",
            "--config",
            str(bad),
            "--set",
            "augment={}",
            "--set",
            "data.root=/nonexistent/folder",
        ],
        cwd=tmp_path,
        timeout=60,
    )
    assert missing.returncode == 2 and "dataset folder not found" in missing.stderr
