"""Lazy re-exports for a package's ``__init__`` (PEP 562): a documented name is imported
from the module that defines it on first use, so importing one light submodule of the
package (its settings, read by the run's config) does not import the heavy ones.

Example:
    >>> namespace = {"__name__": "demo"}
    >>> getattr_, dir_ = lazy_exports(namespace, {"sqrt": "math"})
    >>> getattr_("sqrt")(9.0), "sqrt" in namespace, dir_()
    (3.0, True, ['__name__', 'sqrt'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``,
    re-exporting ``exports`` (public name -> the module that defines it). A name, once
    imported, is kept in the namespace, so later lookups are plain attribute reads."""

    def getattr_(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *exports})

    return getattr_, dir_
