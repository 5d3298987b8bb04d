"""The prediction audit log: one row per answer, in an embedded SQLite database.

``predict --log FILE``, the app (and its HTTP API) and Python callers of the
:class:`~cxr_keras.artifact.predictor.Predictor` (``Predictor(artifact,
audit_log=AuditLog(FILE))``) write here what they answered: when, with which model (its
name and a hash of its weights), on which image (a keyed hash of its pixels, its size and
its file format), each label's probability, decision and threshold, the referral flag and
its reasons, the out-of-distribution score and flag, the latency, and the cxr-keras
version. ``python -m cxr_keras.monitor`` reads it back to report drift.

No person's data is ever stored: no file name, no path, no DICOM tag. The image is named
by ``HMAC-SHA256(key, pixels)``, with the key of the pseudonymous patient ids
(:func:`cxr_keras.data.privacy.patient_id_key`): the same film sent twice gets the same
hash, and without the key nobody can test whether a given image was sent.

One file, WAL mode, a busy timeout: several app workers (threads or processes) can write
at once, each answer is committed in its own transaction, and a writer killed mid-way
leaves every committed row readable. The schema carries a version (``PRAGMA
user_version``); opening an older file migrates it in place (:data:`MIGRATIONS`), and a
file written by a newer cxr-keras is refused rather than misread.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "audit.db")
    >>> with AuditLog(path, key=b"k") as log:
    ...     written = log.write([{"model": "m", "probabilities": {"PNEUMONIA": 0.9}}])
    ...     log.read()["probabilities"][0]
    {'PNEUMONIA': 0.9}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = [
    "JSON_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AuditLog",
    "AuditLogError",
    "pixel_digest",
    "weights_digest",
]

# Each entry moves the schema one version up; a later field is a new entry (an ALTER
# TABLE), never an edit of an old one, so every file ever written can be brought up to date.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE answers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,                -- UTC, ISO 8601
        channel TEXT,                      -- predict | app | python
        model TEXT,                        -- the artifact's name
        weights_sha256 TEXT,               -- of the model's weight values
        image_hash TEXT,                   -- HMAC-SHA256(key, the pixels the model read)
        source TEXT,                       -- png | jpeg | dicom | ... | array
        width INTEGER,                     -- of the image as sent
        height INTEGER,
        mean_intensity REAL,               -- of the model input, in [0, 1]
        contrast REAL,                     -- its standard deviation
        probabilities TEXT,                -- JSON {label: probability}
        decisions TEXT,                    -- JSON {label: true/false}
        thresholds TEXT,                   -- JSON {label: threshold}
        decision_rule TEXT,
        refer INTEGER,                     -- 0 / 1
        referral_reasons TEXT,             -- JSON [reason, ...]
        ood INTEGER,                       -- 0 / 1
        ood_score REAL,                    -- NULL: no detector in the artifact
        ood_reasons TEXT,                  -- JSON [reason, ...]
        latency_ms REAL,
        cxr_keras_version TEXT
    );
    CREATE INDEX answers_time ON answers (time);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
JSON_COLUMNS = (
    "probabilities",
    "decisions",
    "thresholds",
    "referral_reasons",
    "ood_reasons",
)
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's transaction


class AuditLogError(ValueError):
    """An audit log that cannot be opened or written; the message names the file."""


def pixel_digest(image: np.ndarray, key: bytes) -> str:
    """A keyed hash of an image's pixels (as 8-bit values, with its shape): the same
    film gets the same hash however it was sent, and nobody without the key can tell
    which film it was.

    Example:
        >>> x = np.zeros((4, 4, 1), np.float32)
        >>> pixel_digest(x, b"k") == pixel_digest(x.copy(), b"k") != pixel_digest(x, b"j")
        True
    """
    pixels = np.round(np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
    message = repr(pixels.shape).encode() + pixels.tobytes()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def weights_digest(model) -> str:
    """SHA-256 of a Keras model's weight values, in order (unlike the ``.keras`` file's,
    it does not change when the same weights are saved again)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight))
        digest.update(repr((value.dtype.str, value.shape)).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """One SQLite audit log file (see the module docstring).

    ``key``: the secret for image hashes (default: the pseudonymous patient-id key);
    ``clock``: returns the time of an answer (default: now, UTC; a replay of old answers
    passes its own). Safe to share between threads; open one per process.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        from cxr_keras.data.privacy import patient_id_key

        self.path = Path(path)
        self.key = key if key is not None else patient_id_key()
        self.clock = clock or _now
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: every transaction is begun and ended here, explicitly
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint
            self._migrate()
        except sqlite3.Error as exc:
            raise AuditLogError(f"{self.path}: cannot open the audit log ({exc})") from None

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one process migrates, the others wait
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise AuditLogError(
                        f"{self.path}: written by a newer cxr-keras (schema {version}; this "
                        f"one reads up to {SCHEMA_VERSION}): upgrade cxr-keras to read it"
                    )
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {step + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def write(self, rows: Sequence[dict]) -> int:
        """Append answers (dicts keyed by column; lists and dicts stored as JSON, a row
        without ``time`` gets the clock's), in one transaction; returns how many."""
        if not rows:
            return 0
        columns = self.columns()
        unknown = sorted({k for row in rows for k in row} - set(columns))
        if unknown:
            raise AuditLogError(f"{self.path}: no such columns {unknown}")
        now = _utc(self.clock()).isoformat(timespec="milliseconds")  # one format: sortable
        names = [c for c in columns if c != "id"]
        values = [
            [_sql_value(row.get(c, now if c == "time" else None)) for c in names] for row in rows
        ]
        sql = f"INSERT INTO answers ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, values)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise AuditLogError(f"{self.path}: cannot write the audit log ({exc})") from None
        return len(rows)

    def columns(self) -> list[str]:
        """The answers table's columns, in order."""
        with self._lock:
            return [r[1] for r in self._db.execute("PRAGMA table_info(answers)")]

    def read(self, *, since: datetime | None = None, until: datetime | None = None):
        """The logged answers as a DataFrame (JSON columns decoded, ``time`` as UTC
        timestamps), oldest first; ``since`` / ``until``: a time range, until exclusive."""
        import pandas as pd

        where, params = [], []
        for bound, op in ((since, ">="), (until, "<")):
            if bound is not None:
                where.append(f"time {op} ?")
                params.append(_utc(bound).isoformat(timespec="milliseconds"))
        sql = "SELECT * FROM answers" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            frame = pd.read_sql_query(sql + " ORDER BY time, id", self._db, params=params)
        for column in JSON_COLUMNS:
            frame[column] = [json.loads(v) if isinstance(v, str) else None for v in frame[column]]
        frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
        return frame

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sql_value(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if isinstance(value, (np.bool_, bool)):
        return int(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="milliseconds")
    return value
