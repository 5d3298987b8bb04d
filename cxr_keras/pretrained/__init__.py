"""The models that ship with cxr-keras, each a complete artifact folder with its model card
(``kermany_pneumonia``: pneumonia vs normal on pediatric chest X-rays). A command takes
one by name (``cxr-keras predict --model kermany_pneumonia ...``); see ``README.md`` here
for how each was trained and what it scored on data it never saw.

Example:
    >>> "kermany_pneumonia" in pretrained_names()
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED_FOLDER", "pretrained_names"]

PRETRAINED_FOLDER = Path(__file__).resolve().parent


def pretrained_names() -> list[str]:
    """The shipped models' names (their folders), sorted."""
    return sorted(p.parent.name for p in PRETRAINED_FOLDER.glob("*/cxr_model.json"))
