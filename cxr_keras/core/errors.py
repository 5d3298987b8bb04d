"""The errors every layer raises: a wrong setting (a key, a type or a value out of range),
and a run that ended without its result."""

from __future__ import annotations

__all__ = ["ConfigError", "RunFailedError"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type or range."""


class RunFailedError(RuntimeError):
    """A run ended without the result it exists for (e.g. every trial of a search failed):
    the command exits non-zero and writes no result a later stage could take for one."""
