"""Multi-worker training with tf.distribute.MultiWorkerMirroredStrategy: two CPU workers
on 127.0.0.1 (TF_CONFIG), each training the toolkit's model with Keras ``fit``.

In TensorFlow 2.21 with Keras 3.15 this is blocked upstream (tensorflow/tensorflow#72388:
Keras' TF trainer converts a PerReplica batch to a tensor while building the model, then
reduces scalar logs over axis 0). The first test shows that failure as it happens; the
second states the behaviour the toolkit wants and is marked expected to fail, strictly:
when an upgrade fixes it, it fails as "unexpectedly passed" and the route opens. Until
then the working routes are MirroredStrategy on one machine (``training.strategy:
mirrored``) and KerasTuner's distributed trials (``python -m cxr_keras.tune --workers``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.settings import DataConfig, SplitConfig
from cxr_keras.data.shard_writer import write_shards
from tests.conftest import REPO, free_port, subprocess_env

UPSTREAM = "tensorflow/tensorflow#72388"
KNOWN_ERRORS = ("PerReplica", "Invalid reduction dimension")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Run the two workers once; their result files (or None where one wrote none)."""
    out = tmp_path_factory.mktemp("multi_worker")
    shards = out / "shards"
    data = DataConfig(source="folder", root="sample:kermany", split=SplitConfig(val=0.2))
    write_shards(data, ImageSpec(size=32), out=shards, shard_size=40, seed=1)
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for index in range(2):
        env = {
            **subprocess_env(),
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "tests" / "multi_worker_fit.py"),
                    str(out),
                    str(shards),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    logs = []
    for worker in workers:
        try:
            logs.append(worker.communicate(timeout=240)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for w in workers:
                os.killpg(w.pid, signal.SIGKILL)
            logs.append("timed out")
    results = []
    for index in range(2):
        path = out / f"worker-{index}.json"
        results.append(json.loads(path.read_text()) if path.is_file() else None)
    return results, logs


def test_multi_worker_fit_is_blocked_by_the_upstream_issue(two_workers):
    results, logs = two_workers
    assert all(r is not None for r in results), logs  # both workers ran to their verdict
    assert all(r["replicas"] == 2 for r in results)  # the cluster formed over TF_CONFIG
    for result in results:
        if result["ok"]:
            pytest.fail(f"multi-worker fit works now ({UPSTREAM} fixed?): open the route")
        assert any(known in result["error"] for known in KNOWN_ERRORS), result["error"]


@pytest.mark.xfail(strict=True, reason=f"{UPSTREAM}: Keras fit under MultiWorkerMirroredStrategy")
def test_two_workers_train_the_same_model(two_workers):
    results, logs = two_workers
    assert all(r is not None and r["ok"] for r in results), logs
    assert results[0]["weights"] == pytest.approx(results[1]["weights"], rel=1e-6)
