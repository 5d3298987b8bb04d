"""Optional downloads of the public datasets through ``kagglehub`` (``pip install
'cxr-keras[download]'``), for the named adapters of :mod:`cxr_keras.data.adapters`.

Nothing is downloaded at import time. Kaggle needs an account for competitions and for
some datasets: set ``KAGGLE_USERNAME`` and ``KAGGLE_KEY`` or put ``kaggle.json`` in
``~/.kaggle`` (kaggle.com, Settings, API, Create New Token). Every failure (no kagglehub,
offline, no credentials, rules not accepted) is a :class:`DownloadError` that says what to
do. CheXpert is not on Kaggle under its licence: the error says where to get it.

Example:
    >>> sorted(DOWNLOADS)
    ['kermany', 'nih', 'nih-sample', 'rsna']
    >>> download("chexpert")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cxr_keras.data.download.DownloadError: chexpert: CheXpert is distributed by Stanford AIMI...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOWNLOADS", "DownloadError", "KaggleDownload", "download"]

log = logging.getLogger(__name__)


class DownloadError(Exception):
    """A dataset could not be downloaded; the message says why and what to do."""


@dataclass(frozen=True)
class KaggleDownload:
    """Where a dataset is on Kaggle, and the adapter that opens what arrives."""

    kind: str  # "dataset" or "competition"
    handle: str
    adapter: str
    about: str

    @property
    def url(self) -> str:
        section = "competitions" if self.kind == "competition" else "datasets"
        return f"https://www.kaggle.com/{section}/{self.handle}"


DOWNLOADS = {
    "kermany": KaggleDownload(
        "dataset",
        "paultimothymooney/chest-xray-pneumonia",
        "kermany",
        "Kermany et al. pediatric CXR, 5,856 images, 1.2 GB (CC BY 4.0)",
    ),
    "nih": KaggleDownload(
        "dataset",
        "nih-chest-xrays/data",
        "nih",
        "NIH ChestX-ray14, 112,120 images, about 45 GB (no usage restrictions; cite Wang 2017)",
    ),
    "nih-sample": KaggleDownload(
        "dataset",
        "nih-chest-xrays/sample",
        "nih",
        "a 5,606-image random sample of NIH ChestX-ray14, about 4 GB",
    ),
    "rsna": KaggleDownload(
        "competition",
        "rsna-pneumonia-detection-challenge",
        "rsna",
        "RSNA Pneumonia Detection Challenge DICOMs, about 4 GB (accept the competition rules)",
    ),
}

_NOT_ON_KAGGLE = {
    "chexpert": (
        "CheXpert is distributed by Stanford AIMI under its research use agreement, not "
        "through Kaggle: register and download CheXpert-v1.0-small at "
        "https://stanfordaimi.azurewebsites.net/datasets/8cbd9ed4-2eb9-4565-affc-111cf4f7ebe2, "
        "unpack it, then: python -m cxr_keras.datasets summary chexpert <folder>"
    ),
}

_CREDENTIALS = (
    "Kaggle credentials are needed: set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json "
    "in ~/.kaggle (kaggle.com > Settings > API > Create New Token)"
)


def download(name: str, output_dir: str | Path | None = None, force: bool = False) -> Path:
    """Download a public dataset with kagglehub; returns the folder it is in.

    ``output_dir``: download there instead of kagglehub's cache (``~/.cache/kagglehub``).
    The returned folder opens with the adapter named in :data:`DOWNLOADS`, e.g.
    ``open_dataset("kermany", download("kermany"))``.
    """
    if name in _NOT_ON_KAGGLE:
        raise DownloadError(f"{name}: {_NOT_ON_KAGGLE[name]}")
    if name not in DOWNLOADS:
        known = sorted([*DOWNLOADS, *_NOT_ON_KAGGLE])
        raise DownloadError(f"unknown dataset {name!r}; known: {', '.join(known)}")
    source = DOWNLOADS[name]
    try:
        import kagglehub
    except ImportError:
        raise DownloadError(
            f"{name}: downloading needs kagglehub: pip install 'cxr-keras[download]' "
            f"(or download {source.url} by hand and unpack it)"
        ) from None
    if source.kind == "competition":
        fetch = kagglehub.competition_download
    else:
        fetch = kagglehub.dataset_download
    options = {"force_download": force}
    if output_dir is not None:
        options["output_dir"] = str(output_dir)
    log.info("downloading %s (%s) from %s", name, source.about, source.url)
    try:
        return Path(fetch(source.handle, **options))
    except Exception as exc:  # kagglehub raises requests' and its own errors
        raise DownloadError(f"{name}: {_explain(exc, source)}") from exc


def _explain(exc: Exception, source: KaggleDownload) -> str:
    """What went wrong, in the words a user can act on."""
    import requests

    name = type(exc).__name__
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return f"cannot reach kaggle.com (offline or behind a proxy?): {name}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if name in ("UnauthenticatedError", "CredentialError") or status == 401:
        return _CREDENTIALS
    if status == 403:
        rules = f"; accept the rules at {source.url}/rules" if source.kind == "competition" else ""
        return f"Kaggle refused access (403){rules}. {_CREDENTIALS}"
    if status == 404:
        return f"{source.url} was not found on Kaggle (moved or renamed?)"
    return f"{name}: {exc}"
