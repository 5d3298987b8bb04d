"""Config loading and validation: early, clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxr_keras.config import apply_overrides, config_from_dict, load_config, read_config_file
from cxr_keras.core.errors import ConfigError
from cxr_keras.core.paths import resolve_path
from cxr_keras.core.serialize import config_to_dict
from cxr_keras.recipes import RECIPES_FOLDER, find_recipe

REPO = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "data": {"source": "folder", "root": "sample:kermany"}}


def test_demo_config_loads_with_overrides():
    cfg = load_config(
        find_recipe("demo"),
        ["data.batch_size=8", "image.size=[96, 112]", "augment.flip=true"],
    )
    assert cfg.data.batch_size == 8
    assert cfg.image.size == (96, 112)
    assert cfg.augment.flip is True
    assert cfg.data.split.method == "patient" and cfg.data.split.test == 0.2
    assert cfg.run_dir == Path("runs") / "demo"


def test_square_size_and_defaults():
    cfg = config_from_dict({**BASE, "image": {"size": 160}})
    assert cfg.image.size == (160, 160)
    assert cfg.image.resize == "squash"
    assert cfg.data.uncertain is None  # the source's default: zeros, CheXpert's paper policy


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"augment": {"rotaion": 5}}, "unknown key 'augment.rotaion' (did you mean 'rotation'?)"),
        (
            {"data": {"source": "folder", "root": "x", "batch_size": "big"}},
            "data.batch_size: expected an integer, got 'big'",
        ),
        ({"image": {"resize": "stretch"}}, "image.resize: expected one of"),
        (
            {"data": {"source": "folder", "root": "x", "split": {"val": 0.6, "test": 0.5}}},
            "val and test must be fractions summing below 1",
        ),
        ({"augment": {"zoom": 1.5}}, "augment.zoom: a fraction below 1"),
        ({"data": {"source": "csv", "root": "x"}}, "data.csv: the csv source needs"),
        (
            {"data": {"source": "folder", "root": "x", "uncertain": {"Edema": "maybe"}}},
            "data.uncertain",
        ),
        ({"name": "../escape"}, "name: a plain folder name"),
    ],
)
def test_invalid_configs_name_the_key(patch, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**BASE, **patch})
    assert message in str(info.value)


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"missing required key 'data\.root'"):
        config_from_dict({"name": "t", "data": {"source": "folder"}})


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_overrides_parse_yaml_values_and_reject_garbage():
    out = apply_overrides({"data": {"labels": None}}, ["data.labels=[A, B]", "seed=7"])
    assert out == {"data": {"labels": ["A", "B"]}, "seed": 7}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["data.batch_size"])


def test_round_trip_to_plain_dict():
    cfg = config_from_dict({**BASE, "image": {"size": [64, 80], "dicom_window": [40, 400]}})
    plain = config_to_dict(cfg)
    assert plain["image"]["size"] == [64, 80]
    assert config_from_dict(plain) == cfg


def test_sample_prefix_resolves_inside_the_package():
    path = resolve_path("sample:nih")
    assert (path / "labels.csv").is_file()
    with pytest.raises(ValueError, match="unknown bundled sample"):
        resolve_path("sample:chexpert")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"patient_id_pattern": "(["}, "data.patient_id_pattern: not a regular expression"),
        (
            {"cache": "memroy"},
            "data.cache: memory, none, or a folder path (with a /), got "
            "'memroy' (did you mean 'memory'?)",
        ),
        ({"uncertain": {}}, "data.uncertain: an empty mapping"),
        ({"shuffle_buffer": 0}, "data.shuffle_buffer: must be >= 1"),
        ({"finding_separator": ""}, "data.finding_separator: must not be empty"),
    ],
)
def test_data_settings_are_checked_early(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"name": "t", "data": {"source": "folder", "root": "x", **data}})
    assert message in str(info.value)


def test_dicom_window_width_must_be_positive():
    with pytest.raises(ConfigError, match="the width must be > 0"):
        config_from_dict({**BASE, "image": {"dicom_window": [40, 0]}})
    cfg = config_from_dict({**BASE, "data": {**BASE["data"], "cache": "runs/cache"}})
    assert cfg.data.cache == "runs/cache"


@pytest.mark.parametrize(
    "recipe",
    sorted([*RECIPES_FOLDER.glob("*.yaml"), *(REPO / "configs").glob("*.yaml")]),
    ids=lambda p: p.stem,
)
def test_every_recipe_is_valid_and_names_existing_data(recipe):
    if read_config_file(recipe)["data"]["root"] is None:
        # a published pipeline: it reads the user's download of its dataset (--data), and
        # its smoke run on the bundled sample is tested in tests/test_recipes.py
        with pytest.raises(ConfigError, match="--data PATH"):
            load_config(recipe)
        cfg = load_config(recipe, ["data.root=somewhere"])
        assert cfg.recipe.smoke and cfg.recipe.smoke_layout
        return
    cfg = load_config(recipe)
    assert recipe.parent == RECIPES_FOLDER or (cfg.search is not None and cfg.search.space)
    roots = cfg.data.root if isinstance(cfg.data.root, list) else [cfg.data.root]
    for value in (*roots, cfg.data.csv):
        if value and not value.startswith("sample:") and not (REPO.parent / "shared").is_dir():
            pytest.skip("the shared data packs are not here")
        if value:  # relative to the config file, as loading made them
            assert resolve_path(value).exists()


def test_paths_in_a_config_file_are_relative_to_it_and_overrides_to_the_caller(tmp_path):
    (tmp_path / "project" / "xrays").mkdir(parents=True)
    config = tmp_path / "project" / "run.yaml"
    config.write_text(
        "name: run\ndata: {source: csv, root: xrays, csv: labels/train.csv}\n", encoding="utf-8"
    )
    cfg = load_config(config)
    assert Path(cfg.data.root) == tmp_path / "project" / "xrays"
    assert Path(cfg.data.csv) == tmp_path / "project" / "labels" / "train.csv"
    # what the caller passes stays as given (the command line makes it absolute)
    assert load_config(config, ["data.root=elsewhere"]).data.root == "elsewhere"
    for kept in ("sample:kermany", "~/xrays", "$HOME/xrays", "gs://bucket/x", "/abs/x"):
        config.write_text(f"name: run\ndata: {{source: folder, root: '{kept}'}}\n")
        assert load_config(config).data.root == kept


def test_a_recipe_is_found_by_name_or_path(tmp_path):
    assert find_recipe("demo") == RECIPES_FOLDER / "demo.yaml"
    assert find_recipe("kermany-resnet50") == RECIPES_FOLDER / "kermany_resnet50_tuned.yaml"
    mine = tmp_path / "demo.yaml"
    mine.write_text("name: x\n")
    assert find_recipe(mine) == mine  # a file wins over a recipe of the same name
    with pytest.raises(ConfigError, match="ambiguous: kermany_customcnn_baseline, "):
        find_recipe("kermany")
    with pytest.raises(ConfigError, match="the recipes: chexpert_densenet121_focal"):
        find_recipe("pneumonia")
    with pytest.raises(ConfigError, match="config file not found"):
        find_recipe("missing/run.yaml")


def test_label_map_and_exclude_are_checked():
    from cxr_keras.data.settings import DataConfig

    with pytest.raises(ConfigError, match="without positives"):
        DataConfig(source="rsna", root="x", labels=["Lung Opacity"], exclude=["Lung Opacity"])
    with pytest.raises(ConfigError, match=r"data\.label_map\.Abnormal: a non-empty list"):
        DataConfig(source="rsna", root="x", label_map={"Abnormal": []})
    with pytest.raises(ConfigError, match=r"data\.label_map\.A: "):
        DataConfig(source="csv", csv="l.csv", root="x", label_map={"A": ["A", "B"]})
