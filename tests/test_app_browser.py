"""The web app in a real browser: ``python -m cxr_keras.app`` on a free loopback port,
driven by Debian's Chromium (headless) through Playwright.

``make test`` installs Chromium where it can (root with apt). Without a browser these
tests skip with a loud reason; with ``CXR_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a
missing browser fails instead. Screenshots go to ``runs/app_browser/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.sample_data import sample_files
from tests.conftest import REPO, free_port, subprocess_env

SCREENSHOTS = REPO / "runs" / "app_browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests may run as root in a container
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MAX_MB = 2  # the app's upload limit in these tests; every real film used is smaller
RESULT_TIMEOUT_MS = 60_000


def _chromium() -> str:
    """The Chromium binary, or skip (fail under CXR_REQUIRE_BROWSER=1) saying what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    names = [os.environ.get("CXR_CHROMIUM", ""), "chromium", "chromium-browser"]
    binary = next((found for name in names if name and (found := shutil.which(name))), None)
    if binary is None:
        missing.append("a Chromium binary (Debian: apt install chromium; or set CXR_CHROMIUM)")
    if missing:
        message = "BROWSER TESTS NOT RUN: missing " + " and ".join(missing)
        if os.environ.get("CXR_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def app_temp(tmp_path_factory) -> Path:
    """The app process's temporary folder, where it makes its uploads folder."""
    return tmp_path_factory.mktemp("app_temp")


@pytest.fixture(scope="module")
def app_url(trained_artifact, tmp_path_factory, app_temp):
    """The app's URL, served by the real command line in its own process."""
    _chromium()  # skip before paying for a server
    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    temp = app_temp
    command = [
        sys.executable,
        "-m",
        "cxr_keras.app",
        "--model",
        str(trained_artifact.path),
        "--port",
        str(port),
        "--max-mb",
        str(MAX_MB),
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=log_path.parent,
            env={**subprocess_env(), "TMPDIR": str(temp)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                pytest.fail(f"the app did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    # a stopped app leaves no upload behind (a DICOM's tags hold names and dates)
    assert not list(temp.glob("cxr-keras-uploads-*")), log_path.read_text()[-2000:]


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
    yield page
    context.close()


def _upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))
    # the download link appears once the server holds the file
    page.wait_for_selector(f"#upload a[download='{path.name}']", timeout=30_000)
    page.locator("#analyse").click()


def test_a_real_film_gets_probabilities_and_an_overlay(page, trained_artifact):
    film = sample_files("kermany")[-1]  # a real PNEUMONIA film from the official TRAIN set
    expected = Predictor(trained_artifact).predict_files([film])
    probability = expected.probabilities[0, 0]
    _upload(page, film)
    shown = page.locator("#probabilities .cxr-probability")
    shown.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert shown.inner_text() == f"{probability:.3f}"
    assert page.locator("#probabilities .cxr-label").inner_text() == "PNEUMONIA"
    decision = "positive" if expected.decisions[0, 0] else "negative"
    assert f"{decision}: {probability:.3f}" in page.locator("#probabilities").inner_text()
    summary = page.locator("#summary").inner_text()
    assert film.name in summary and f"{probability:.3f}" in summary
    assert page.locator("#referral").inner_text().startswith("Referral: ")
    overlay = page.locator("#overlays img").first
    overlay.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('#overlays img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=RESULT_TIMEOUT_MS,
    )
    assert page.locator("#preview img").count() == 1
    assert "not a diagnostic device" in page.locator("#disclaimer").inner_text()
    assert page.locator("#status").inner_text().strip() == ""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / "analysis.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000


def test_a_corrupt_file_gets_a_message_in_the_page(page, tmp_path):
    corrupt = tmp_path / "corrupt_film.jpeg"
    corrupt.write_bytes(sample_files("kermany")[0].read_bytes()[:1500])
    _upload(page, corrupt)
    status = page.locator("#status")
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('Cannot analyse')",
        timeout=RESULT_TIMEOUT_MS,
    )
    message = status.inner_text()
    assert "corrupt_film.jpeg" in message and "truncated JPEG" in message
    assert page.locator("#probabilities .cxr-probability").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "corrupt_file.png"), full_page=True)


def test_an_upload_over_the_limit_gets_a_message_in_the_page(page, tmp_path):
    large = tmp_path / "huge_scan.png"
    large.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(MAX_MB * 2**20 + 1))
    page.locator("#upload input[type=file]").set_input_files(str(large))
    toast = page.get_by_text("exceed the maximum allowed size")
    toast.wait_for(timeout=30_000)
    assert "huge_scan.png" in page.locator("body").inner_text()


def test_an_example_case_runs_when_clicked(page):
    example = page.locator("#examples button.gallery-item").first
    caption, _, name = example.inner_text().partition(": ")
    example.click()
    page.locator("#probabilities .cxr-probability").wait_for(timeout=RESULT_TIMEOUT_MS)
    summary = page.locator("#summary").inner_text()
    assert name.strip() in summary
    if caption == "clear positive":
        assert "Top finding" in summary
    elif caption == "clear negative":
        assert "No finding at or above its threshold" in summary


def test_an_image_unlike_the_training_films_gets_a_warning(page, tmp_path):
    import sklearn.datasets

    photo = tmp_path / "photograph.jpg"
    shutil.copy(Path(sklearn.datasets.__file__).parent / "images" / "china.jpg", photo)
    _upload(page, photo)
    page.wait_for_function(
        "() => document.querySelector('#ood-warning').innerText.includes('unlike the films')",
        timeout=RESULT_TIMEOUT_MS,
    )
    warning = page.locator("#ood-warning").inner_text()
    assert "not to be trusted" in warning and "a colour image" in warning
    referral = page.locator("#referral").inner_text()
    assert referral.startswith("Referral: yes") and "out of distribution" in referral
    assert "Intended use:" in page.locator("#intended-use").inner_text()
    assert "Known limits" in page.locator("#intended-use").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "out_of_distribution.png"), full_page=True)


def test_a_16_bit_png_with_12_bit_values_reads_like_the_film(
    page, trained_artifact, tmp_path, app_temp
):
    from PIL import Image

    film = sample_files("kermany")[-1]
    values = np.asarray(Image.open(film).convert("L"), np.uint16) * 16  # 0..4080: 12 bits
    png = tmp_path / "film_12bit.png"
    Image.fromarray(values.astype(np.uint16)).save(png)
    expected = Predictor(trained_artifact).predict_files([film]).probabilities[0, 0]
    _upload(page, png)
    shown = page.locator("#probabilities .cxr-probability")
    shown.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert float(shown.inner_text()) == pytest.approx(expected, abs=0.011)
    assert "tiny part of the range" not in page.locator("#ood-warning").inner_text()
    assert page.locator("#preview img").count() == 1
    page.wait_for_function(  # the analysis is over and its upload is gone
        "() => document.querySelector('#summary').innerText.includes('film_12bit.png')",
        timeout=RESULT_TIMEOUT_MS,
    )
    uploads = list(app_temp.glob("cxr-keras-uploads-*"))
    assert len(uploads) == 1  # the app's own folder, while it runs
    assert list(uploads[0].rglob("film_12bit.png")) == []
