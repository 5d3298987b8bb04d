"""Dataset downloads: every failure is a clear DownloadError; nothing is downloaded here
(kagglehub is replaced by a stand-in that records its calls or raises its errors)."""

from __future__ import annotations

import sys
import types

import pytest
import requests

from cxr_keras.data.download import DOWNLOADS, DownloadError, download
from cxr_keras.datasets import main as datasets_main


def fake_kagglehub(monkeypatch, outcome):
    """Install a stand-in kagglehub whose downloads return ``outcome(handle)`` or raise it."""
    calls = []

    def fetch(kind):
        def call(handle, **options):
            calls.append((kind, handle, options))
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return call

    module = types.SimpleNamespace(
        dataset_download=fetch("dataset"), competition_download=fetch("competition")
    )
    monkeypatch.setitem(sys.modules, "kagglehub", module)
    return calls


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Client Error", response=response)


def test_download_calls_kagglehub_with_the_official_handle(monkeypatch, tmp_path):
    calls = fake_kagglehub(monkeypatch, str(tmp_path))
    assert download("kermany", tmp_path / "k", force=True) == tmp_path
    assert calls == [
        (
            "dataset",
            "paultimothymooney/chest-xray-pneumonia",
            {"force_download": True, "output_dir": str(tmp_path / "k")},
        )
    ]
    download("rsna")
    assert calls[-1][:2] == ("competition", "rsna-pneumonia-detection-challenge")
    assert {d.adapter for d in DOWNLOADS.values()} == {"kermany", "nih", "rsna"}


@pytest.mark.parametrize(
    ("name", "error", "expected"),
    [
        ("kermany", requests.ConnectionError("no route"), "cannot reach kaggle.com"),
        ("nih", http_error(401), "KAGGLE_USERNAME and KAGGLE_KEY"),
        ("rsna", http_error(403), "rsna-pneumonia-detection-challenge/rules"),
        ("nih-sample", http_error(404), "was not found on Kaggle"),
    ],
)
def test_download_failures_say_what_to_do(monkeypatch, name, error, expected):
    fake_kagglehub(monkeypatch, error)
    with pytest.raises(DownloadError, match=expected):
        download(name)


def test_without_kagglehub_or_for_chexpert(monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # import kagglehub -> ImportError
    with pytest.raises(DownloadError, match=r"pip install 'cxr-keras\[download\]'"):
        download("kermany")
    with pytest.raises(DownloadError, match="Stanford AIMI"):
        download("chexpert")
    with pytest.raises(DownloadError, match="unknown dataset 'mimic'"):
        download("mimic")


def test_download_cli(monkeypatch, tmp_path, capsys):
    fake_kagglehub(monkeypatch, str(tmp_path))
    assert datasets_main(["download", "nih-sample"]) == 0
    out = capsys.readouterr().out
    assert f"next: python -m cxr_keras.datasets summary nih {tmp_path}" in out
    fake_kagglehub(monkeypatch, requests.ConnectionError("offline"))
    assert datasets_main(["download", "kermany"]) == 2
    assert "cannot reach kaggle.com" in capsys.readouterr().err
