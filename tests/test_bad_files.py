"""A corpus of bad files, made here from real ones: each is refused with the right reason
when asked for by name, and skipped (logged, counted) inside a dataset without losing any
good image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless

from cxr_keras.core.image_spec import ImageSpec
from cxr_keras.data.io import ImageDecodeError, load_image
from cxr_keras.data.manifest import skipped_files, skipped_summary
from cxr_keras.data.pipeline import make_dataset
from cxr_keras.data.sources import csv_source, folder_source
from cxr_keras.data.verify import verify_files
from cxr_keras.sample_data import sample_files

SPEC = ImageSpec(size=64)

# file name -> the reason code it must be refused with
EXPECTED = {
    "empty.png": "empty",
    "truncated.jpeg": "truncated",
    "truncated.png": "truncated",
    "notes.jpg": "unsupported_format",
    "random_bytes.png": "unsupported_format",
    "page.png": "unsupported_format",
    "scan.tif": "unsupported_format",
    "cmyk.jpg": "unsupported_format",
    "sliver.png": "bad_shape",
    "bomb.png": "too_large",
    "multiframe.dcm": "dicom_multiframe",
    "color.dcm": "dicom_color",
    "report_sr.dcm": "dicom_no_image",
    "ct_slice.dcm": "dicom_not_chest",
    "knee.dcm": "dicom_not_chest",
    "truncated.dcm": "truncated",
    "jpeg_ls.dcm": "dicom_unsupported_syntax",
}
# passes the header check, fails to decode: caught by a full verify or, at the latest,
# dropped by the pipeline
CORRUPT_BODY = "corrupt_body.png"


def _dicom(shared_data: Path) -> pydicom.Dataset:
    return pydicom.dcmread(shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm")


def _write_dicom(ds: pydicom.Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=False)


def _make_bad_files(folder: Path, shared_data: Path) -> None:
    real_jpeg = sample_files("kermany")[0].read_bytes()
    gray = np.asarray(Image.open(sample_files("nih")[0]).convert("L"))
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpeg").write_bytes(real_jpeg[: len(real_jpeg) // 2])
    Image.fromarray(gray).save(folder / "whole.png")
    png = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    body = bytearray(png)  # scramble the compressed pixels, keep the header and IEND
    body[200:-200] = (
        np.random.default_rng(0).integers(0, 256, len(body) - 400, dtype=np.uint8).tobytes()
    )
    (folder / CORRUPT_BODY).write_bytes(bytes(body))
    (folder / "notes.jpg").write_text("radiology report: no acute findings\n")
    (folder / "random_bytes.png").write_bytes(np.random.default_rng(1).bytes(4096))
    (folder / "page.png").write_text("<html><body>404 Not Found</body></html>")
    Image.fromarray(gray).save(folder / "scan.tif")
    Image.fromarray(gray).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.zeros((10, 2000), np.uint8)).save(folder / "sliver.png")
    Image.new("L", (8000, 8000)).save(folder / "bomb.png")  # 64 Mpx: over the 60 Mpx limit

    ds = _dicom(shared_data)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    _write_dicom(ds, folder / "multiframe.dcm")
    ds = _dicom(shared_data)
    rgb = np.repeat(ds.pixel_array[..., None] // 128, 3, axis=-1).astype(np.uint8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    _write_dicom(ds, folder / "color.dcm")
    ds = _dicom(shared_data)
    del ds.PixelData
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    _write_dicom(ds, folder / "report_sr.dcm")
    ds = _dicom(shared_data)
    ds.Modality = "CT"
    _write_dicom(ds, folder / "ct_slice.dcm")
    ds = _dicom(shared_data)
    ds.BodyPartExamined = "KNEE"
    _write_dicom(ds, folder / "knee.dcm")
    whole = (shared_data / "dicom" / "derived_RG1_half_uncompressed.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    ds = _dicom(shared_data)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)])
    _write_dicom(ds, folder / "jpeg_ls.dcm")


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory) -> Path:
    """A Kermany-layout dataset: 6 good images + 1 good DICOM, and every bad file."""
    root = tmp_path_factory.mktemp("corpus")
    for label in ("NORMAL", "PNEUMONIA"):
        (root / label).mkdir()
        for src in [f for f in sample_files("kermany") if f.parent.name == label][:3]:
            shutil.copy(src, root / label / src.name)
    shutil.copy(next((shared_data / "dicom").glob("siim*.dcm")), root / "NORMAL" / "siim.dcm")
    _make_bad_files(root / "PNEUMONIA", shared_data)
    return root


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_asked_for_by_name_each_bad_file_is_refused_with_its_reason(corpus, name):
    path = corpus / "PNEUMONIA" / name
    with pytest.raises(ImageDecodeError) as info:
        load_image(path, SPEC)
    assert info.value.code == EXPECTED[name], info.value.reason
    assert name in str(info.value)  # the message names the file


def test_corrupt_body_fails_on_decode_with_the_file_named(corpus):
    with pytest.raises(ImageDecodeError, match=CORRUPT_BODY) as info:
        load_image(corpus / "PNEUMONIA" / CORRUPT_BODY, SPEC)
    assert info.value.code == "decode_failed"


def test_dataset_skips_bad_files_and_loses_no_good_one(corpus):
    manifest = folder_source(corpus, labels=["PNEUMONIA"])
    assert len(manifest) == 7 + len(EXPECTED) + 1 - 1  # the .tif is not collected as an image
    assert skipped_summary(manifest) == {"unsupported_format": 1}  # scan.tif, by extension
    checked = verify_files(manifest, SPEC, mode="header")
    good = {p.name for p in corpus.rglob("*") if p.name not in EXPECTED and p.is_file()}
    assert {Path(p).name for p in checked["path"]} == good  # 7 good + the corrupt body
    skipped = skipped_files(checked)
    assert (
        dict(zip(skipped["path"].map(lambda p: Path(p).name), skipped["code"], strict=True))
        == EXPECTED
    )
    # the pipeline still drops the file whose body is corrupt, and keeps every good image
    ds = make_dataset(checked, SPEC, batch_size=4, cache="none")
    assert sum(int(x.shape[0]) for x, _, _ in ds) == 7
    # a full verify catches it up front, with its reason
    full = verify_files(manifest, SPEC, mode="full")
    assert len(full) == 7
    assert skipped_summary(full)["decode_failed"] == 1


def test_csv_dataset_with_missing_files_and_a_directory(corpus, tmp_path):
    (tmp_path / "folder.png").mkdir()
    good = sorted((corpus / "NORMAL").glob("*.jpeg"))
    lines = ["path,Finding Labels"] + [f"{p},No Finding" for p in good]
    lines += [f"{tmp_path / 'gone.png'},Effusion", f"{tmp_path / 'folder.png'},Effusion"]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    manifest = csv_source(
        tmp_path / "labels.csv", finding_column="Finding Labels", labels=["Effusion"]
    )
    checked = verify_files(manifest, SPEC)
    assert len(checked) == len(good) == 3
    assert skipped_summary(checked) == {"missing": 1, "unsupported_format": 1}
    assert "file not found" in skipped_files(checked).set_index("code").loc["missing", "reason"]


def test_unverified_dataset_with_a_missing_file_still_trains(corpus):
    from cxr_keras.data.manifest import new_manifest

    good = sorted(str(p) for p in (corpus / "NORMAL").glob("*.jpeg"))
    rows = [{"path": p, "PNEUMONIA": 0.0} for p in [*good, str(corpus / "gone.jpeg")]]
    manifest = verify_files(new_manifest(rows, ["PNEUMONIA"]), SPEC, mode="none")
    assert sum(int(x.shape[0]) for x, _, _ in make_dataset(manifest, SPEC, cache="none")) == 3
