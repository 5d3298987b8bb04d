"""Pseudonymous patient ids for DICOM data: a keyed hash (HMAC-SHA256) of PatientID.

DICOM files carry identifying tags (names, ids, birth dates). cxr-keras never copies them
into manifests, outputs or logs; where patient ids are needed (to split by patient), the
PatientID is replaced by ``HMAC(key, PatientID)``. Without the secret key the stand-in
cannot be reversed by trying likely ids (a plain salted hash with a public salt could).

The key is, in order: ``data.patient_id_key`` in the config, the environment variable
``CXR_KERAS_PATIENT_KEY``, or a random key created once per user in
``~/.config/cxr-keras/patient_id.key``. Share the same key between machines to get the
same ids, and so the same splits, everywhere.

Example:
    >>> key = b"a secret"
    >>> hash_patient_id("9RG1", key) == hash_patient_id("9RG1", key)
    True
    >>> hash_patient_id("9RG1", key) != hash_patient_id("9RG1", b"another")
    True
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

__all__ = ["KEY_ENV", "hash_patient_id", "patient_id_key"]

KEY_ENV = "CXR_KERAS_PATIENT_KEY"
log = logging.getLogger(__name__)


def _key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cxr-keras" / "patient_id.key"


def patient_id_key(configured: str | None = None) -> bytes:
    """The secret key for :func:`hash_patient_id` (config value, environment, or key file)."""
    if configured:
        return configured.encode()
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = _key_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(secrets.token_hex(32))
        log.info(
            "created a secret key for pseudonymous DICOM patient ids at %s "
            "(set %s to share one key between machines)",
            path,
            KEY_ENV,
        )
    return path.read_text().strip().encode()


def hash_patient_id(patient_id: str, key: bytes) -> str:
    """A keyed, irreversible stand-in for a DICOM PatientID (16 hex digits)."""
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]
