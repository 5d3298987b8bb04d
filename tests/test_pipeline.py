"""The tf.data pipeline: shapes, masks, class weights, seeded shuffles, caches, mixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.batching import label_arrays
from cxr_keras.data.io import load_image
from cxr_keras.data.manifest import new_manifest
from cxr_keras.data.mixing import build_label_mixing
from cxr_keras.data.pipeline import make_dataset
from cxr_keras.data.sources import csv_source, folder_source
from cxr_keras.sample_data import sample_path

SPEC = ImageSpec(size=48)


@pytest.fixture(scope="module")
def kermany():
    return folder_source(sample_path("kermany"))


def test_batches_match_load_image_and_labels(kermany):
    part = kermany.iloc[:10].copy()
    part.attrs = dict(kermany.attrs)
    x, y, w = next(iter(make_dataset(part, SPEC, batch_size=10)))
    assert x.shape == (10, 48, 48, 1) and x.dtype.name == "float32"
    np.testing.assert_array_equal(x.numpy()[3], load_image(part["path"][3], SPEC))
    np.testing.assert_array_equal(y.numpy()[:, 0], part["PNEUMONIA"].to_numpy())
    assert (w.numpy() == 1.0).all()


def test_ignored_labels_are_masked():
    nan = float("nan")
    df = new_manifest(
        [
            {"path": "/a", "A": 1.0, "B": nan},
            {"path": "/b", "A": 0.0, "B": 1.0},
            {"path": "/c", "A": 0.0, "B": 0.0},
        ],
        labels=["A", "B"],
    )
    y, mask = label_arrays(df)
    assert y.tolist() == [[1, 0], [0, 1], [0, 0]]
    assert mask.tolist() == [[1, 0], [1, 1], [1, 1]]


def test_training_shuffle_is_seeded_and_reshuffles_each_epoch(kermany):
    def dataset(seed, cache):
        return make_dataset(
            kermany.iloc[:24],
            SPEC,
            labels=["PNEUMONIA"],
            batch_size=24,
            training=True,
            seed=seed,
            cache=cache,
        )

    def epoch(ds):  # one image statistic per position, in the order the epoch yields them
        return next(iter(ds))[0].numpy().mean(axis=(1, 2, 3))

    ds = dataset(1, "memory")
    first, second = epoch(ds), epoch(ds)
    np.testing.assert_array_equal(first, epoch(dataset(1, "memory")))  # same seed, same order
    assert not np.array_equal(first, second)  # a new order every epoch
    np.testing.assert_allclose(np.sort(first), np.sort(second))  # of the same images
    assert not np.array_equal(first, epoch(dataset(2, "memory")))
    np.testing.assert_allclose(np.sort(epoch(dataset(1, "none"))), np.sort(first))


def test_file_cache_is_written_and_reused(kermany, tmp_path):
    part = kermany.iloc[:8].copy()
    part.attrs = dict(kermany.attrs)
    first = np.concatenate(
        [
            x.numpy()
            for x, _, _ in make_dataset(part, SPEC, labels=["PNEUMONIA"], cache=str(tmp_path))
        ]
    )
    assert any(p.name.startswith("images-") for p in tmp_path.iterdir())
    again = np.concatenate(
        [
            x.numpy()
            for x, _, _ in make_dataset(part, SPEC, labels=["PNEUMONIA"], cache=str(tmp_path))
        ]
    )
    np.testing.assert_array_equal(first, again)


def test_mixup_mixes_labels_and_keeps_ignored_entries_ignored():
    import tensorflow as tf

    mix = build_label_mixing(mixup_alpha=0.4, seed=0)
    n = 6
    x = tf.reshape(tf.eye(n * 4)[:n], (n, 4, n, 1))  # image i: a single 1 at pixel i
    y = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    w = tf.constant([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    xm, ym, wm = (t.numpy() for t in mix(x, y, w))
    y, w = y.numpy(), w.numpy()
    mixed = 0
    for i in range(n):
        pixels = xm[i].reshape(-1)[:n]  # the mixed image: lam at pixel i, 1 - lam at its partner
        partner = (
            int(np.argmax(np.where(np.arange(n) == i, -1.0, pixels))) if pixels[i] < 1 - 1e-6 else i
        )
        lam = pixels[i]
        mixed += partner != i and 0.02 < lam < 0.98
        np.testing.assert_allclose(ym[i], lam * y[i] + (1 - lam) * y[partner], atol=1e-5)
        both = (w[i] > 0) & (w[partner] > 0)
        np.testing.assert_array_equal(wm[i], np.where(both, 1.0, 0.0))
    assert mixed >= 2  # the batch was really mixed
    assert wm[0, 1] == 0.0  # image 0 ignores label B, whatever it was mixed with


def test_cutmix_runs_in_the_pipeline(shared_data):
    every = csv_source(
        shared_data / "nih_cxr14_sample" / "labels.csv",
        labels=["Effusion", "Mass"],
        patient_column="patient_id",
    )
    # Half positive: mixing two negatives gives no fractional label, so a batch of mostly
    # negatives could pass through CutMix/MixUp unchanged by chance (stateful random ops in
    # tf.data are not reproducible from the seed alone).
    positive = every[["Effusion", "Mass"]].max(axis=1) == 1
    nih = pd.concat([every[positive].iloc[:8], every[~positive].iloc[:8]])
    nih.attrs = dict(every.attrs)
    mix = build_label_mixing(cutmix_alpha=1.0, mixup_alpha=0.2, seed=1)
    ds = make_dataset(
        nih,
        SPEC,
        labels=["Effusion", "Mass"],
        batch_size=8,
        training=True,
        seed=0,
        label_mixing=mix,
    )
    batches = list(ds)
    assert len(batches) == 2
    plain = np.concatenate(
        [
            y.numpy()
            for _, y, _ in make_dataset(
                nih, SPEC, labels=["Effusion", "Mass"], batch_size=8, training=True, seed=0
            )
        ]
    )
    mixed = np.concatenate([y.numpy() for _, y, _ in batches])
    for x, y, w in batches:
        assert x.shape == (8, 48, 48, 1)
        assert np.all((y.numpy() >= 0) & (y.numpy() <= 1)) and np.all(w.numpy() == 1.0)
    fractional = (mixed > 0.01) & (mixed < 0.99)
    assert fractional.any() and not ((plain > 0.01) & (plain < 0.99)).any()


def test_empty_manifest_is_refused(kermany):
    with pytest.raises(ValueError, match="manifest is empty"):
        make_dataset(kermany.iloc[:0], SPEC, labels=["PNEUMONIA"])


def test_file_cache_never_serves_stale_labels(kermany, tmp_path):
    part = kermany.iloc[:6].copy()
    part.attrs = dict(kermany.attrs)
    (first,) = list(make_dataset(part, SPEC, batch_size=6, cache=str(tmp_path)))  # all: cached
    relabelled = part.copy()
    relabelled["PNEUMONIA"] = 1.0 - relabelled["PNEUMONIA"]
    relabelled.loc[relabelled.index[0], "PNEUMONIA"] = float("nan")
    ((x, y, w),) = list(make_dataset(relabelled, SPEC, batch_size=6, cache=str(tmp_path)))
    np.testing.assert_array_equal(x.numpy(), first[0].numpy())  # the cached images
    expected_y = np.nan_to_num(relabelled["PNEUMONIA"].to_numpy())
    np.testing.assert_array_equal(y.numpy()[:, 0], expected_y)
    assert w.numpy()[0, 0] == 0.0 and set(w.numpy()[1:, 0]) == {1.0}


def test_a_file_cache_left_locked_by_a_killed_run_is_recovered(kermany, tmp_path):
    import os
    import subprocess
    import sys

    part = kermany.iloc[:8].copy()
    part.attrs = dict(kermany.attrs)
    part.to_csv(tmp_path / "part.csv", index=False)
    script = (
        "import os, signal, sys, pandas as pd\n"
        "from cxr_keras.core.image_spec import ImageSpec\n"
        "from cxr_keras.data.manifest import new_manifest\n"
        "from cxr_keras.data.pipeline import make_dataset\n"
        "df = new_manifest(pd.read_csv(sys.argv[1]), ['PNEUMONIA'])\n"
        "it = iter(make_dataset(df, ImageSpec(size=48), batch_size=2, cache=sys.argv[2]))\n"
        "next(it)\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # killed while writing the cache\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "part.csv"), str(tmp_path / "cache")],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        timeout=120,
    )
    assert list((tmp_path / "cache").glob("*.lockfile"))  # the stale lock is there
    images = [
        x for x, _, _ in make_dataset(part, SPEC, batch_size=8, cache=str(tmp_path / "cache"))
    ]
    assert sum(int(x.shape[0]) for x in images) == 8
    assert list((tmp_path / "cache").glob("*.index"))  # and the cache is now complete


def test_a_cache_another_live_process_writes_is_not_touched(kermany, tmp_path):
    import os

    part = kermany.iloc[:4].copy()
    part.attrs = dict(kermany.attrs)
    make_dataset(part, SPEC, cache=str(tmp_path))  # creates the owner file for its prefix
    (owner,) = tmp_path.glob("*.owner")
    prefix = str(owner)[: -len(".owner")]
    owner.write_text(str(os.getppid()))  # a live process claims it
    lock = Path(f"{prefix}_0.lockfile")
    lock.write_text("Created at: 0")
    batches = list(make_dataset(part, SPEC, batch_size=4, cache=str(tmp_path)))
    assert sum(int(x.shape[0]) for x, _, _ in batches) == 4  # cached in memory instead
    assert lock.is_file()
