"""Images that are not pediatric chest films, for the out-of-distribution benchmark.

Everything comes from packages installed from PyPI (no download at run time) or is
generated here, and is written as ordinary files so it reaches the model through
``predict``'s own decoding:

- ``natural``: photographs and pictures shipped with scikit-image, scikit-learn and
  matplotlib (a brick wall, a cat, coffee, coins, a rocket, text, ...), each in colour
  where it has colour and also as a grayscale copy, the hard case for a detector that
  cannot lean on colour.
- ``medical``: images of other body parts and modalities: MR, CT and ultrasound DICOMs
  from pydicom and pydicom-data, a tibia radiograph, each also exported as a PNG (which
  carries no modality tag to refuse it by), a brain MR from matplotlib, retina
  photographs and a CT phantom from scikit-image.
- ``synthetic``: black, white and grey images, noise, gradients, stripes, checkerboards
  and smooth blobs, in several sizes and aspect ratios.

Missing optional packages (scikit-image, pydicom-data) shrink the sets; the counts are
printed by the benchmark.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PICTURES = [
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
    "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png",
    "logo.png", "moon.png", "motorcycle_left.png", "page.png", "rocket.jpg", "text.png",
    "cell.png", "clock_motion.png", "chessboard_GRAY.png",
]  # fmt: skip
SKIMAGE_MEDICAL = ["retina.jpg", "microaneurysms.png", "phantom.png"]
PYDICOM_MEDICAL = ["CT_small.dcm", "MR_small.dcm"]
PYDICOM_DATA_MEDICAL = ["MR2_UNCR.dcm", "RG3_UNCR.dcm", "US1_UNCR.dcm", "emri_small.dcm"]


def _package_dir(module: str, sub: str) -> Path | None:
    try:
        mod = __import__(module, fromlist=["__file__"])
    except ImportError:
        return None
    return Path(os.path.dirname(mod.__file__)) / sub


def _save(image: np.ndarray | Image.Image, path: Path) -> Path:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def natural_images(out: Path) -> list[Path]:
    """Photographs and pictures, in colour as shipped and as grayscale copies."""
    sources = []
    skimage_data = _package_dir("skimage", "data")
    if skimage_data is not None:
        sources += [skimage_data / n for n in SKIMAGE_PICTURES if (skimage_data / n).is_file()]
    sklearn_images = _package_dir("sklearn", "datasets/images")
    if sklearn_images is not None:
        sources += sorted(sklearn_images.glob("*.jpg"))
    mpl_data = _package_dir("matplotlib", "mpl-data/sample_data")
    if mpl_data is not None:
        sources += [mpl_data / "grace_hopper.jpg", mpl_data / "Minduka_Present_Blue_Pack.png"]
    files = []
    for source in sources:
        with Image.open(source) as im:
            im.load()
            name = source.stem
            files.append(_save(im.convert("RGB"), out / "natural" / f"{name}.png"))
            files.append(_save(im.convert("L"), out / "natural_gray" / f"{name}.png"))
    return files


def medical_images(out: Path) -> list[Path]:
    """Other body parts and modalities: DICOMs as they are, the rest as PNG/JPEG."""
    files = []
    pydicom_files = _package_dir("pydicom", "data/test_files")
    pydicom_data = _package_dir("data_store", "data")
    for folder, names in ((pydicom_files, PYDICOM_MEDICAL), (pydicom_data, PYDICOM_DATA_MEDICAL)):
        for name in names if folder is not None else []:
            if (folder / name).is_file():
                files.append(Path(shutil.copy(folder / name, out / "medical" / name)))
                files.append(_png_export(folder / name, out / "medical" / f"{name}.png"))
    skimage_data = _package_dir("skimage", "data")
    for name in SKIMAGE_MEDICAL if skimage_data is not None else []:
        with Image.open(skimage_data / name) as im:
            im.load()
            files.append(_save(im, out / "medical" / f"{Path(name).stem}.png"))
    mpl_data = _package_dir("matplotlib", "mpl-data/sample_data")
    if mpl_data is not None and (mpl_data / "s1045.ima.gz").is_file():
        # a 256x256 16-bit brain MR slice, shipped raw (little-endian uint16)
        with gzip.open(mpl_data / "s1045.ima.gz") as handle:
            raw = np.frombuffer(handle.read(), "<u2")
        brain = raw.reshape(256, 256).astype(np.float64)
        brain = (255 * brain / max(brain.max(), 1)).astype(np.uint8)
        files.append(_save(brain, out / "medical" / "brain_mr.png"))
    return files


def _png_export(dicom: Path, path: Path) -> Path:
    """A DICOM's pixels as an 8-bit PNG (min-max), as a user exports a slice to share it."""
    import pydicom

    pixels = pydicom.dcmread(dicom).pixel_array.astype(np.float64)
    while pixels.ndim > 2 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[len(pixels) // 2]  # the middle frame
    pixels = (pixels - pixels.min()) / max(np.ptp(pixels), 1e-9)
    return _save((255 * pixels).astype(np.uint8), path)


def synthetic_images(out: Path, *, seed: int = 0) -> list[Path]:
    """Constant images, noise, gradients, stripes, checkerboards and blobs."""
    rng = np.random.default_rng(seed)
    files = []
    for h, w in ((224, 224), (512, 384), (300, 600)):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        smooth = np.asarray(
            Image.fromarray(
                rng.uniform(0, 255, (h // 32 + 1, w // 32 + 1)).astype(np.uint8)
            ).resize((w, h), Image.BICUBIC)
        )
        images = {
            "black": np.zeros((h, w)),
            "white": np.full((h, w), 255.0),
            "grey": np.full((h, w), 128.0),
            "uniform_noise": rng.uniform(0, 255, (h, w)),
            "gaussian_noise": np.clip(rng.normal(128, 40, (h, w)), 0, 255),
            "horizontal_gradient": 255 * xx / xx.max(),
            "vertical_gradient": 255 * yy / yy.max(),
            "radial_gradient": 255 * (1 - np.hypot(xx - xx.mean(), yy - yy.mean()) / 0.75),
            "stripes": 255.0 * ((xx * 20).astype(int) % 2),
            "checkerboard": 255.0 * (((xx * 8).astype(int) + (yy * 8).astype(int)) % 2),
            "smooth_blobs": smooth.astype(np.float64),
            "dark_noise": rng.uniform(0, 12, (h, w)),
        }
        for name, values in images.items():
            pixels = np.clip(values, 0, 255).astype(np.uint8)
            files.append(_save(pixels, out / "synthetic" / f"{name}_{w}x{h}.png"))
        colour_noise = rng.uniform(0, 255, (h, w, 3)).astype(np.uint8)
        files.append(_save(colour_noise, out / "synthetic" / f"colour_noise_{w}x{h}.png"))
    return files


def mildly_changed(films: list[str], out: Path, *, seed: int = 0) -> list[Path]:
    """Each film with one change a film from another day or device may show (JPEG
    quality 60, gamma 0.85 or 1.15, contrast 0.85, a 4 % crop, a slight blur): still
    in distribution, so a detector should flag few of them."""
    from PIL import ImageFilter

    changes = {
        "jpeg60": lambda im: im,
        "gamma0.85": lambda im: im.point(lambda v: round(255 * (v / 255) ** 0.85)),
        "gamma1.15": lambda im: im.point(lambda v: round(255 * (v / 255) ** 1.15)),
        "contrast0.85": lambda im: im.point(lambda v: round(128 + (v - 128) * 0.85)),
        "crop4": lambda im: im.crop(
            (im.width * 4 // 100, im.height * 4 // 100, im.width * 96 // 100, im.height * 96 // 100)
        ),
        "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
    }
    rng = np.random.default_rng(seed)
    names = sorted(changes)
    files = []
    for film in films:
        name = names[rng.integers(len(names))]
        with Image.open(film) as im:
            changed = changes[name](im.convert("L"))
        path = out / "mildly_changed" / f"{Path(film).stem}_{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        changed.save(path, quality=60 if name == "jpeg60" else 95)
        files.append(path)
    return files


def build_all(out: Path) -> dict[str, list[Path]]:
    """Write every set under ``out``; returns {set name: files}."""
    (out / "medical").mkdir(parents=True, exist_ok=True)
    natural = natural_images(out)
    return {
        "natural (colour)": [p for p in natural if p.parent.name == "natural"],
        "natural (grayscale)": [p for p in natural if p.parent.name == "natural_gray"],
        "other medical images": medical_images(out),
        "synthetic": synthetic_images(out),
    }
