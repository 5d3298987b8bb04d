"""The error every layer raises for a wrong setting: a key, a type or a value out of range."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type or range."""
