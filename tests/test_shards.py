"""TFRecord shards: the round trip keeps labels and pixels, and training reads them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data import prepare_data, split_frame
from cxr_keras.data.batching import label_arrays
from cxr_keras.data.pipeline import make_dataset, make_indexed_dataset
from cxr_keras.data.settings import DataConfig, SplitConfig
from cxr_keras.data.shard_reader import read_index
from cxr_keras.data.shard_writer import write_shards
from cxr_keras.recipes import RECIPES_FOLDER
from tests.conftest import subprocess_env

SPEC = ImageSpec(size=48)
DATA = DataConfig(source="folder", root="sample:kermany", split=SplitConfig(val=0.2, test=0.1))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "kermany"
    index = write_shards(DATA, SPEC, out=out, shard_size=40, seed=3)
    return out, index


def test_index_counts_every_image_in_files_of_at_most_the_shard_size(shards):
    out, index = shards
    original = prepare_data(DATA, SPEC, seed=3)
    assert index["encoding"] == "png16" and index["labels"] == ["PNEUMONIA"]
    for split in ("train", "val", "test"):
        part = index["splits"][split]
        assert part["images"] == int((original["split"] == split).sum())
        assert len(part["files"]) == -(-part["images"] // 40)
        assert all((out / f).stat().st_size > 0 for f in part["files"])
    assert read_index(out) == index


def test_round_trip_keeps_labels_splits_and_pixels(shards):
    out, _ = shards
    original = prepare_data(DATA, SPEC, seed=3)
    sharded = prepare_data(DataConfig(source="shards", root=str(out)), SPEC)
    assert sorted(sharded["path"]) == sorted(original["path"])
    merged = original.merge(sharded, on="path", suffixes=("", "_shard"))
    assert (merged["split"] == merged["split_shard"]).all()  # the patient split is kept
    assert (merged["patient_id"] == merged["patient_id_shard"]).all()
    assert (merged["PNEUMONIA"] == merged["PNEUMONIA_shard"]).all()
    # pixels: every image read from the shards against the folder pipeline's
    val = split_frame(sharded, "val").reset_index(drop=True)
    got = {}
    for positions, images in make_indexed_dataset(val, SPEC, batch_size=16):
        for i, image in zip(positions.numpy(), images.numpy(), strict=True):
            got[val["path"][i]] = image
    folder_val = split_frame(original, "val").reset_index(drop=True)
    expected = {}
    for positions, images in make_indexed_dataset(folder_val, SPEC, batch_size=16):
        for i, image in zip(positions.numpy(), images.numpy(), strict=True):
            expected[folder_val["path"][i]] = image
    assert set(got) == set(expected) and len(got) == len(val)
    for path, image in expected.items():
        stored = np.round(image * 65535) / 65535  # what a 16-bit PNG holds, exactly
        assert np.array_equal(got[path], stored.astype(np.float32)), path
        assert np.abs(got[path] - image).max() <= 0.5 / 65535 + 1e-7


def test_training_batches_carry_the_manifest_labels_and_masks(shards):
    out, _ = shards
    sharded = prepare_data(DataConfig(source="shards", root=str(out)), SPEC)
    train = split_frame(sharded, "train").reset_index(drop=True)
    ds = make_dataset(train, SPEC, batch_size=8, training=True, seed=1, cache="none")
    x, y, w = next(iter(ds))
    assert tuple(x.shape) == (8, 48, 48, 1) and tuple(y.shape) == (8, 1)
    assert float(w.numpy().min()) == 1.0
    seen = sum(len(batch[0]) for batch in make_dataset(train, SPEC, batch_size=16))
    assert seen == len(train)
    labels = np.concatenate([b[1].numpy() for b in make_dataset(train, SPEC, batch_size=16)])
    assert labels.sum() == label_arrays(train)[0].sum()  # the same labels, in some order


def test_a_part_of_a_split_reads_only_its_rows(shards):
    out, _ = shards
    sharded = prepare_data(DataConfig(source="shards", root=str(out)), SPEC)
    part = split_frame(sharded, "train").iloc[::3].reset_index(drop=True)
    rows = [int(i) for b in make_indexed_dataset(part, SPEC, batch_size=32) for i in b[0]]
    assert sorted(rows) == list(range(len(part)))


def test_a_different_image_spec_is_refused(shards):
    out, _ = shards
    sharded = prepare_data(DataConfig(source="shards", root=str(out)), SPEC)
    with pytest.raises(ValueError, match="re-shard"):
        make_dataset(sharded, ImageSpec(size=64))
    with pytest.raises(ValueError, match="not a shard folder"):
        read_index(out.parent / "nothing")


def test_any_gfile_path_works(tmp_path):
    """TensorFlow's in-memory file system stands in for gs:// and s3://."""
    root = "ram://cxr-shards/kermany"
    data = DataConfig(source="folder", root="sample:kermany", split=SplitConfig(val=0.2))
    write_shards(data, ImageSpec(size=32), out=root, shard_size=100)
    sharded = prepare_data(DataConfig(source="shards", root=root), ImageSpec(size=32))
    batch = next(iter(make_dataset(sharded, ImageSpec(size=32), batch_size=4)))
    assert tuple(batch[0].shape) == (4, 32, 32, 1)


def test_shard_cli_then_train_and_evaluate_without_the_original_files(tmp_path):
    import shutil

    from cxr_keras.config import load_config
    from cxr_keras.data.manifest import read_manifest
    from cxr_keras.evaluation.evaluate import evaluate
    from cxr_keras.sample_data import sample_path
    from cxr_keras.training.train import train

    films = shutil.copytree(sample_path("kermany"), tmp_path / "films")
    out = tmp_path / "shards"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxr_keras.shard",
            "--data",
            str(RECIPES_FOLDER / "demo.yaml"),
            "--out",
            str(out),
            "--shard-size",
            "64",
            "--set",
            "image.size=48",
            "--set",
            f"data.root={films}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    index = json.loads((out / "index.json").read_text())
    assert sum(s["images"] for s in index["splits"].values()) == 262
    shutil.rmtree(films)  # as on a cluster: only the shards travel
    cfg = load_config(
        RECIPES_FOLDER / "demo.yaml",
        [
            "data.source=shards",
            f"data.root={out}",
            "image.size=48",
            "training.epochs=1",
            "name=from_shards",
            "model.filters=[8, 16]",
        ],
    )
    artifact = train(cfg, run_dir=tmp_path / "run", progress=False)
    saved = read_manifest(tmp_path / "run" / "train" / "manifest.csv")
    assert len(saved) == 262 and saved.attrs["shards"]["root"] == str(out)  # resumes read shards
    assert artifact.meta["ood"]["fitted_on"]["images"] > 0  # the detector read the shards
    report = evaluate(artifact, split="test", out=tmp_path / "report", bootstrap=100)
    assert report["evaluated"]["images"] == index["splits"]["test"]["images"]
    assert report["out_of_distribution"]["detector"] is True
    for name in ("errors", "samples"):  # the film grids read the shards too
        assert (tmp_path / "report" / report["figures"][name]).stat().st_size > 1000


def test_auto_shard_policy_is_file_with_enough_files_per_worker_else_data(shards, monkeypatch):
    import tensorflow as tf

    out, index = shards
    sharded = prepare_data(DataConfig(source="shards", root=str(out)), SPEC)
    train = split_frame(sharded, "train")
    policy = tf.data.experimental.AutoShardPolicy
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert len(index["splits"]["train"]["files"]) >= 2
    ds = make_dataset(train, SPEC, batch_size=8)
    assert ds.options().experimental_distribute.auto_shard_policy == policy.FILE
    val = split_frame(sharded, "val")
    assert len(index["splits"]["val"]["files"]) == 2
    cluster["cluster"]["worker"].append("127.0.0.1:3")  # three workers, two val files
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    ds = make_dataset(val, SPEC, batch_size=8)
    assert ds.options().experimental_distribute.auto_shard_policy == policy.DATA
