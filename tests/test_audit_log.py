"""The audit log's storage: concurrent writers lose no row, a killed writer leaves a
readable file, old files are migrated and newer ones refused."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

import cxr_keras.artifact.audit_log as audit_log
from cxr_keras.artifact.audit_log import AuditLog, AuditLogError
from tests.conftest import REPO, subprocess_env

# a writer process: `count` answers, one transaction each (as an app worker writes them)
WRITER = """
import sys
from cxr_keras.artifact.audit_log import AuditLog
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = AuditLog(path, key=b"k")
i = 0
while count < 0 or i < count:
    log.write([{"model": name, "probabilities": {"A": i / 1000}, "latency_ms": float(i)}])
    i += 1
"""


def writer(path, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count)],
        cwd=REPO,
        env=subprocess_env(),
        start_new_session=True,
    )


def test_rows_round_trip_with_their_time_range(tmp_path):
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    clock = iter(start + timedelta(hours=6 * i) for i in range(10))
    with AuditLog(tmp_path / "a.db", key=b"k", clock=lambda: next(clock)) as log:
        for i in range(8):
            log.write([{"model": "m", "probabilities": {"A": i / 10}, "refer": i % 2 == 0}])
        rows = log.read()
        assert list(rows["probabilities"].map(lambda p: p["A"])) == [i / 10 for i in range(8)]
        assert list(rows["refer"]) == [1, 0] * 4
        assert rows["time"].iloc[0] == start
        day = log.read(since=datetime(2026, 12, 2), until=datetime(2026, 12, 3))
        assert list(day["time"].dt.hour) == [2, 8, 14, 20]
        with pytest.raises(AuditLogError, match="no such columns"):
            log.write([{"file_name": "chest.png"}])


def test_concurrent_writers_lose_no_row(tmp_path):
    path = tmp_path / "shared.db"
    AuditLog(path, key=b"k").close()  # the schema exists before the race starts
    processes = [writer(path, f"worker{i}", 150) for i in range(3)]
    log = AuditLog(path, key=b"k")

    def thread_writes(name):
        for i in range(100):
            log.write([{"model": name, "latency_ms": float(i)}])

    threads = [threading.Thread(target=thread_writes, args=(f"thread{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=120) == 0
    rows = log.read()
    log.close()
    counts = rows["model"].value_counts().to_dict()
    assert counts == {
        **{f"worker{i}": 150 for i in range(3)},
        **{f"thread{i}": 100 for i in range(4)},
    }
    assert rows["id"].is_unique


def test_a_killed_writer_leaves_a_readable_log(tmp_path):
    path = tmp_path / "killed.db"
    AuditLog(path, key=b"k").close()
    process = writer(path, "victim", -1)  # writes until killed
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            with sqlite3.connect(path, timeout=30) as db:
                if db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= 200:
                    break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    with AuditLog(path, key=b"k") as log:
        rows = log.read()
        assert len(rows) >= 200
        # every committed row is whole, in order, and the file takes new rows
        assert list(rows["latency_ms"]) == [float(i) for i in range(len(rows))]
        log.write([{"model": "after"}])
        assert log.read()["model"].iloc[-1] == "after"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_older_log_is_migrated_and_a_newer_one_refused(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with AuditLog(path, key=b"k") as log:
        log.write([{"model": "before", "probabilities": {"A": 0.25}}])
    later = [*audit_log.MIGRATIONS, "ALTER TABLE answers ADD COLUMN view TEXT"]
    monkeypatch.setattr(audit_log, "MIGRATIONS", later)
    monkeypatch.setattr(audit_log, "SCHEMA_VERSION", len(later))
    with AuditLog(path, key=b"k") as log:
        assert "view" in log.columns()
        log.write([{"model": "after", "view": "PA"}])
        rows = log.read()
    assert list(rows["model"]) == ["before", "after"]
    assert rows["probabilities"][0] == {"A": 0.25} and rows["view"][1] == "PA"
    monkeypatch.setattr(audit_log, "MIGRATIONS", later[:1])
    monkeypatch.setattr(audit_log, "SCHEMA_VERSION", 1)
    with pytest.raises(AuditLogError, match=r"old\.db: written by a newer cxr-keras"):
        AuditLog(path, key=b"k")


def test_a_log_that_cannot_be_opened_names_the_file(tmp_path):
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(AuditLogError, match=r"folder\.db: cannot open the audit log"):
        AuditLog(tmp_path / "folder.db", key=b"k")
