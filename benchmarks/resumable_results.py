"""The results file of a benchmark that trains one point at a time: rows already there
are read back so an interrupted sweep resumes, and each new row is appended as soon as
its point finishes (shared by learning_curve.py and robust_selection.py).

Example:
    >>> done = read_rows(Path("runs/learning_curve/results.csv"))  # doctest: +SKIP
    >>> append_row(Path("runs/x.csv"), {"a": 1}, fields=["a"])  # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    """The rows written so far (empty when none); the folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict, *, fields: list[str]) -> dict:
    """Append ``row`` (the header first in a new file); returns it as read back (text)."""
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if f.tell() == 0:
            writer.writeheader()
        writer.writerow(row)
    return {k: str(v) for k, v in row.items()}
