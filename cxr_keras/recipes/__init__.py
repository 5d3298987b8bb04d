"""The recipes that ship with cxr-keras: published chest X-ray pipelines as YAML configs
(``kermany_resnet50_tuned``, ``chexpert_densenet121_focal``, ``nih14_resnet50_lse``, ...)
and the demo on the bundled sample, installed with the package.

A command takes a recipe by name (``cxr-keras train --recipe demo``; ``-`` and ``_`` are
the same, and a unique beginning is enough: ``kermany-resnet50``) or any config file by
path. A recipe whose data is not bundled leaves ``data.root`` empty: give it with
``--data PATH``.

Example:
    >>> find_recipe("demo").name, find_recipe("kermany-resnet50").name
    ('demo.yaml', 'kermany_resnet50_tuned.yaml')
    >>> "nih14_resnet50_lse" in recipe_names()
    True
"""

from __future__ import annotations

import os
from pathlib import Path

from cxr_keras.core.errors import ConfigError

__all__ = ["RECIPES_FOLDER", "find_recipe", "recipe_names"]

RECIPES_FOLDER = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """The shipped recipes' names, sorted."""
    return sorted(path.stem for path in RECIPES_FOLDER.glob("*.yaml"))


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """The config file a ``--recipe``/``--config`` value names: an existing file as given,
    else the shipped recipe of that name (or of a unique beginning of it). A ConfigError
    lists the recipes when none matches, or the matches when several do."""
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_file():
        return path
    text = str(name_or_path)
    looks_like_path = os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    key = text.removesuffix(".yaml").replace("-", "_")
    names = recipe_names()
    matches = [key] if key in names else [n for n in names if n.startswith(key)]
    if len(matches) == 1 and not looks_like_path:
        return RECIPES_FOLDER / f"{matches[0]}.yaml"
    if looks_like_path:
        raise ConfigError(f"{text}: config file not found")
    if matches:
        raise ConfigError(f"recipe {text!r} is ambiguous: {', '.join(matches)}")
    raise ConfigError(
        f"{text}: neither a config file nor a recipe; the recipes: {', '.join(names)}"
    )
