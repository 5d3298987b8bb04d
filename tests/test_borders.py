"""Border cropping (cxr_keras.data.borders) on a real radiograph padded by hand, and the
same crop in load_image, the tf.data pipeline, read_image and the stored image spec."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.core.serialize import section_from_dict
from cxr_keras.data.borders import content_box, crop_borders
from cxr_keras.data.io import frame_offset, load_image, read_image
from cxr_keras.data.manifest import new_manifest
from cxr_keras.data.pipeline import make_dataset
from cxr_keras.sample_data import sample_path

REAL = sample_path("kermany") / "NORMAL" / "IM-0191-0001.jpeg"
TOP, BOTTOM, LEFT, RIGHT = 40, 25, 30, 18


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    """The real radiograph as 8-bit gray, checked to have no frame of its own."""
    pixels = np.asarray(Image.open(REAL).convert("L"))
    assert [int(v) for v in content_box(pixels[..., None], scale=1 / 255)] == [0, 0, *pixels.shape]
    return pixels


def padded(pixels: np.ndarray) -> np.ndarray:
    """The film in a frame of three kinds: black above and below (with burned-in text),
    white on the left, mid-gray on the right."""
    h, w = pixels.shape
    out = np.zeros((TOP + h + BOTTOM, LEFT + w + RIGHT), np.uint8)
    out[:, :LEFT] = 255
    out[:, LEFT + w :] = 128
    out[TOP : TOP + h, LEFT : LEFT + w] = pixels
    out[8:20, LEFT + 10 : LEFT + 18] = 250  # a marker ("R") burned into the black frame
    return out


def test_content_box_finds_the_film_in_a_mixed_frame(film):
    box = [int(v) for v in content_box(padded(film)[..., None], scale=1 / 255)]
    assert box == [TOP, LEFT, *film.shape]
    cropped = np.asarray(crop_borders(padded(film)[..., None], 1 / 255))
    np.testing.assert_array_equal(cropped[..., 0], film)


def test_frame_survives_jpeg_and_loads_like_the_unpadded_film(tmp_path, film):
    """After JPEG compression (ringing at the frame's edge) the model input of the padded
    file stays within a few grey levels of the unpadded one's; without cropping it does not."""
    path = tmp_path / "padded.jpeg"
    Image.fromarray(padded(film)).save(path, quality=90)
    spec = ImageSpec(size=128, crop_borders=True)
    top, left, height, width = (int(v) for v in content_box(read_image(path)))
    assert abs(top - TOP) <= 4 and abs(left - LEFT) <= 4
    assert abs(height - film.shape[0]) <= 8 and abs(width - film.shape[1]) <= 8
    reference = load_image(REAL, ImageSpec(size=128))
    assert np.abs(load_image(path, spec) - reference).mean() < 0.02
    assert np.abs(load_image(path, ImageSpec(size=128)) - reference).mean() > 0.05
    assert read_image(path, spec).shape[:2] == (height, width)
    assert frame_offset(path, spec) == (top, left) and frame_offset(path, ImageSpec()) == (0, 0)


def test_pipeline_crops_as_load_image_does(tmp_path, film):
    paths = []
    for i, size in enumerate((224, 300)):  # one file already at the input size
        image = Image.fromarray(padded(film)).resize((size, size))
        paths.append(tmp_path / f"p{i}.png")
        image.save(paths[-1])
    spec = ImageSpec(size=224, crop_borders=True)
    manifest = new_manifest([{"path": str(p), "A": 1.0} for p in paths], labels=["A"])
    x, _, _ = next(iter(make_dataset(manifest, spec, batch_size=2, cache="none")))
    for i, path in enumerate(paths):
        np.testing.assert_allclose(x.numpy()[i], load_image(path, spec), atol=1e-6)


def test_no_frame_or_too_large_a_frame_leaves_the_image_whole():
    flat = np.full((60, 50, 1), 0.4, np.float32)
    assert [int(v) for v in content_box(flat)] == [0, 0, 60, 50]
    small = np.zeros((100, 100, 1), np.float32)
    small[45:55, 40:60] = np.random.default_rng(1).uniform(0.3, 0.9, (10, 20, 1))
    assert [int(v) for v in content_box(small)] == [0, 0, 100, 100]  # kept < half a side


def test_crop_borders_is_part_of_the_stored_image_spec():
    assert section_from_dict(ImageSpec, {"size": 64, "crop_borders": True}).crop_borders
    assert section_from_dict(ImageSpec, {"size": 64}).crop_borders is False  # old artifacts


def test_explain_shifts_file_pixel_boxes_onto_the_cropped_film(trained_artifact, tmp_path, film):
    """Boxes are given in the file's pixels; with crop_borders the film starts at the
    frame's edge, so the box explain scores is moved by the removed frame."""
    from cxr_keras.artifact.store import copy_artifact, load_artifact, write_meta
    from cxr_keras.explanation.explain import explain

    path = tmp_path / "padded.png"
    Image.fromarray(padded(film)).save(path)
    copy = copy_artifact(trained_artifact.path, tmp_path / "cropping")
    meta = load_artifact(copy).meta
    meta["image_spec"]["crop_borders"] = True
    write_meta(meta, copy)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"path,finding,x,y,w,h\n{path.name},PNEUMONIA,{LEFT + 50},{TOP + 60},80,90\n")
    summary = explain(copy, [path], out=tmp_path / "explain", boxes=boxes, mc_passes=0)
    scored = summary["images"][0]["explained"][0]["boxes"]
    assert scored[0]["box"] == [50.0, 60.0, 80.0, 90.0]
