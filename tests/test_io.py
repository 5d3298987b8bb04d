"""Decoding: DICOM (MONOCHROME1/2, JPEG 2000, JPEG baseline), 8/16-bit PNG, RGB, and the
one load_image that training and prediction share."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxr_keras.core.image_spec import ImageSpec, resize_steps
from cxr_keras.data.io import decode_dicom, load_image, prepare_image, read_header, read_image
from cxr_keras.data.pipeline import make_image_dataset
from cxr_keras.sample_data import sample_files

SPEC = ImageSpec(size=256)


def _spine_and_lungs(image: np.ndarray) -> tuple[float, float]:
    """Mean of the mediastinum/spine strip and of both lung fields of a PA film."""
    h, w = image.shape[:2]
    rows = slice(int(0.3 * h), int(0.6 * h))
    spine = image[rows, int(0.46 * w) : int(0.54 * w)].mean()
    lungs = np.concatenate(
        [
            image[rows, int(0.2 * w) : int(0.32 * w)].ravel(),
            image[rows, int(0.68 * w) : int(0.8 * w)].ravel(),
        ]
    ).mean()
    return float(spine), float(lungs)


@pytest.mark.parametrize(
    "name",
    [
        "pydicom_data_RG1_J2KI.dcm",
        "derived_RG1_half_uncompressed.dcm",
        "siim_acr_pneumothorax_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
    ],
)
def test_every_dicom_decodes_with_bone_bright(shared_data, name):
    path = shared_data / "dicom" / name
    raw = pydicom.dcmread(path)
    image = load_image(path, SPEC)[..., 0]
    assert image.shape == (256, 256) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.1
    spine, lungs = _spine_and_lungs(image)
    assert spine > lungs + 0.15, (raw.PhotometricInterpretation, spine, lungs)
    # MONOCHROME1 stores bone dark: the raw pixel relation is the reverse
    raw_spine, raw_lungs = _spine_and_lungs(raw.pixel_array.astype(float))
    if raw.PhotometricInterpretation == "MONOCHROME1":
        assert raw_spine < raw_lungs
    else:
        assert raw_spine > raw_lungs


def test_jpeg2000_matches_the_uncompressed_copy(shared_data):
    lossy = load_image(shared_data / "dicom" / "pydicom_data_RG1_J2KI.dcm", SPEC)
    plain = load_image(shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm", SPEC)
    assert np.corrcoef(lossy.ravel(), plain.ravel())[0, 1] > 0.99
    assert np.abs(lossy - plain).mean() < 0.01


def test_dicom_window_options(shared_data):
    path = shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm"
    header = decode_dicom(path, ImageSpec(dicom_window="header"))
    minmax = decode_dicom(path, ImageSpec(dicom_window="minmax"))
    assert header.shape == minmax.shape == (977, 920)
    assert minmax.min() == 0.0 and minmax.max() == 1.0  # min-max spans the range
    assert header.min() > 0.05  # the header window 15000/30000 is wider than the data
    narrow = decode_dicom(path, ImageSpec(dicom_window=(12000.0, 8000.0)))
    assert (narrow == 0).mean() + (narrow == 1).mean() > 0.2  # a narrow window clips
    siim = next((shared_data / "dicom").glob("siim*.dcm"))
    with pytest.raises(ValueError, match="has no VOI LUT or window"):
        decode_dicom(siim, ImageSpec(dicom_window="header"))


def test_png_16_bit_keeps_its_precision(tmp_path):
    ramp = (np.arange(256 * 256, dtype=np.uint32).reshape(256, 256) % 65536).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    decoded = read_image(path)[..., 0]
    np.testing.assert_allclose(decoded, ramp / 65535.0, atol=1e-6)
    assert len(np.unique(decoded)) > 256  # more than 8 bits survived


@pytest.mark.parametrize("bits", [10, 12, 14])
def test_a_16_bit_png_of_fewer_bits_is_scaled_by_the_range_it_uses(tmp_path, bits):
    """PACS and DICOM converters write 10- to 14-bit values into 16-bit PNGs: divided by
    65535 such a film reached the model almost black. The same real film saved as 8-bit
    PNG, as full 16-bit PNG and as a {bits}-bit PNG gives the same model input, in
    load_image and in the tf.data pipeline alike."""
    film = np.asarray(Image.open(sample_files("kermany")[0]).convert("L"), np.float64) / 255
    levels = 2**bits - 1
    saved = {
        "8": (film * 255).round().astype(np.uint8),
        "16": (film * 65535).round().astype(np.uint16),
        "fewer": (film * levels).round().astype(np.uint16),
    }
    paths = []
    for name, values in saved.items():
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(values).save(paths[-1])
    assert int(np.asarray(Image.open(paths[-1])).max()) <= levels  # stored as 16-bit, few bits
    spec = ImageSpec(size=128)
    inputs = [load_image(path, spec) for path in paths]
    assert float(inputs[2].max()) > 0.9  # not a dark film
    np.testing.assert_allclose(inputs[2], inputs[0], atol=1.5 / 255)
    np.testing.assert_allclose(inputs[1], inputs[0], atol=1e-3)
    batch = next(iter(make_image_dataset(paths, spec, batch_size=3))).numpy()
    np.testing.assert_array_equal(batch[2], inputs[2])
    np.testing.assert_allclose(read_image(paths[2])[..., 0], film, atol=0.5 / levels + 1e-6)


def test_rgb_and_gray_agree(tmp_path):
    gray = np.asarray(Image.open(sample_files("kermany")[0]).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), mode="LA").save(
        tmp_path / "la.png"
    )
    a, b, c = (read_image(tmp_path / n) for n in ("gray.png", "rgb.png", "la.png"))
    assert a.shape == b.shape == c.shape == (*gray.shape, 1)
    np.testing.assert_allclose(a, b, atol=1.5 / 255)
    np.testing.assert_array_equal(a, c)


def test_resize_modes_keep_or_change_the_aspect_ratio():
    wide = np.zeros((100, 200, 1), np.float32)
    wide[:, 50:150] = 1.0  # a central white square
    squash = prepare_image(wide, ImageSpec(size=64, resize="squash")).numpy()[..., 0]
    pad = prepare_image(wide, ImageSpec(size=64, resize="pad")).numpy()[..., 0]
    crop = prepare_image(wide, ImageSpec(size=64, resize="crop")).numpy()[..., 0]
    assert squash[32, 2] == 0.0 and squash[32, 32] == 1.0 and squash[0, 32] == 1.0
    assert pad[0, 32] == 0.0 and pad[32, 32] == 1.0  # black bars above and below
    assert crop.min() > 0.99  # the central square is all white


def test_load_image_equals_the_pipeline_for_every_format(shared_data, tmp_path):
    """No training/serving skew: eager load_image == tf.data pipeline, bit for bit."""
    spec = ImageSpec(size=96)
    png = tmp_path / "nih.png"
    Image.open(sample_files("nih")[0]).save(png)
    paths = [
        sample_files("kermany")[0],
        sample_files("nih")[0],
        png,
        shared_data / "dicom" / "pydicom_data_RG1_J2KI.dcm",
    ]
    batch = next(iter(make_image_dataset(paths, spec, batch_size=len(paths)))).numpy()
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(load_image(path, spec), batch[i])


def test_read_header_reports_format_and_view(shared_data):
    header = read_header(shared_data / "dicom" / "pydicom_data_RG1_J2KI.dcm")
    assert (header.format, header.width, header.height, header.view) == ("dicom", 1841, 1955, "PA")
    assert read_header(sample_files("nih")[0]).format == "jpeg"


@pytest.mark.parametrize("resize", ["squash", "pad", "crop"])
@pytest.mark.parametrize("shape", [(512, 362), (2000, 1500), (96, 112), (100, 80), (300, 900)])
def test_resize_plan_extra_steps_and_graph_choice_change_nothing(resize, shape):
    """A dataset runs the largest plan of its files for all of them, and files of unknown
    size get the graph's own plan: both must give exactly the values of the file's plan."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 1)).astype(np.uint8)
    spec = ImageSpec(size=(96, 112), resize=resize)
    steps = resize_steps(*shape, spec)
    own = prepare_image(image, spec, scale=1 / 255, steps=steps).numpy()
    assert own.shape == (96, 112, 1) and own.min() >= 0.0 and own.max() <= 1.0
    np.testing.assert_array_equal(
        prepare_image(image, spec, scale=1 / 255, steps=max(steps, 0) + 2), own
    )
    np.testing.assert_array_equal(prepare_image(image, spec, scale=1 / 255, steps=None), own)


def test_pyramid_downscale_agrees_with_area_averaging():
    import tensorflow as tf

    spec = ImageSpec(size=224)
    for path in sample_files("nih")[:5]:  # 512 px films
        image = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=1)
        area = tf.image.resize(image, (224, 224), method="area").numpy() / 255
        ours = prepare_image(image, spec, scale=1 / 255, steps=resize_steps(512, 512, spec)).numpy()
        assert np.abs(ours - area).mean() < 0.005


def test_a_dataset_of_mixed_sizes_matches_load_image(tmp_path):
    spec = ImageSpec(size=64)
    big = np.asarray(Image.open(sample_files("nih")[0]).convert("L"))
    Image.fromarray(big).save(tmp_path / "big.png")  # 512 px: three halvings
    Image.fromarray(big[:70, :90]).save(tmp_path / "small.png")  # no halving
    Image.fromarray(big[:64, :64]).save(tmp_path / "exact.png")  # a plain copy
    paths = sorted(tmp_path.glob("*.png"))
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.data.pipeline import make_dataset
    from cxr_keras.data.verify import verify_files

    df = verify_files(new_manifest([{"path": str(p), "A": 0.0} for p in paths], ["A"]), spec)
    assert sorted(
        resize_steps(h, w, spec) for h, w in zip(df["height"], df["width"], strict=True)
    ) == [-1, 0, 3]
    batch = next(iter(make_dataset(df, spec, batch_size=3)))[0].numpy()
    for i, path in enumerate(df["path"]):
        np.testing.assert_array_equal(batch[i], load_image(path, spec))


def _rg1_with_lut(shared_data, tmp_path, vr: str):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm")
    ds.PixelData = (ds.pixel_array // 8).astype("<u2").tobytes()  # 12-bit values
    ds.BitsStored, ds.HighBit = 12, 11
    del ds.WindowCenter, ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    table = np.linspace(0, 65535, 4096).astype("<u2")
    item.add_new(0x00283006, vr, table.tobytes() if vr == "OW" else [int(v) for v in table])
    ds.VOILUTSequence = Sequence([item])
    path = tmp_path / f"lut_{vr}.dcm"
    ds.save_as(path, enforce_file_format=False)
    return path


def test_voi_lut_as_numbers_or_bytes_gives_the_same_bone_bright_image(shared_data, tmp_path):
    us = load_image(_rg1_with_lut(shared_data, tmp_path, "US"), SPEC)[..., 0]
    ow = load_image(_rg1_with_lut(shared_data, tmp_path, "OW"), SPEC)[..., 0]
    np.testing.assert_allclose(us, ow, atol=1e-6)
    spine, lungs = _spine_and_lungs(us)
    assert spine > lungs + 0.15


def test_dicom_without_preamble_or_extension(shared_data, tmp_path):
    src = shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm"
    raw = src.read_bytes()
    bare = tmp_path / "IM000001"  # no extension, no 128-byte preamble + DICM
    bare.write_bytes(raw[132:])
    assert read_header(bare).format == "dicom"
    np.testing.assert_array_equal(load_image(bare, SPEC), load_image(src, SPEC))


def test_jpeg_with_trailing_bytes_is_not_truncated(tmp_path):
    path = tmp_path / "trailer.jpeg"
    path.write_bytes(sample_files("kermany")[0].read_bytes() + b"\0" * 4096)
    np.testing.assert_array_equal(
        load_image(path, SPEC), load_image(sample_files("kermany")[0], SPEC)
    )


def test_very_large_images_match_between_prediction_and_load_image(tmp_path):
    from cxr_keras.data.manifest import new_manifest
    from cxr_keras.data.pipeline import make_dataset

    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (2100, 2100), np.uint8)).save(path)
    spec = ImageSpec(size=16)  # seven halvings
    assert resize_steps(2100, 2100, spec) == 7
    expected = load_image(path, spec)
    predicted = next(iter(make_image_dataset([path], spec, 1)))[0].numpy()
    unverified = make_dataset(
        new_manifest([{"path": str(path), "A": 0.0}], ["A"]), spec, batch_size=1, cache="none"
    )  # sizes unknown: the largest plan
    np.testing.assert_array_equal(predicted, expected)
    np.testing.assert_array_equal(next(iter(unverified))[0][0].numpy(), expected)


def test_one_decode_gives_the_film_and_the_model_input_exactly():
    from cxr_keras.data.io import read_image_and_input

    spec = ImageSpec(size=96, resize="pad")
    for path in (sample_files("kermany")[-1], sample_files("nih")[0], *sample_files("dicom")):
        original, model_input = read_image_and_input(path, spec)
        np.testing.assert_array_equal(original, read_image(path, spec))
        np.testing.assert_array_equal(model_input, load_image(path, spec))
