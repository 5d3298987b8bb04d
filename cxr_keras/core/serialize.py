"""Config dataclasses to plain dicts and back, validated: unknown keys, wrong types and
values outside their choices raise :class:`ConfigError` naming the key.

Example:
    >>> from cxr_keras.core.image_spec import ImageSpec
    >>> section_from_dict(ImageSpec, {"size": [64, 64]}).size
    (64, 64)
    >>> config_to_dict(ImageSpec(size=32))["size"]
    [32, 32]
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from cxr_keras.core.errors import ConfigError

__all__ = ["build_section", "config_to_dict", "section_from_dict"]


def section_from_dict(cls: type, raw: dict, where: str = ""):
    """Validate a plain dict into one config section, e.g. the ``ImageSpec`` of an artifact.

    Example:
        >>> from cxr_keras.core.image_spec import ImageSpec
        >>> section_from_dict(ImageSpec, {"size": [64, 64]}).size
        (64, 64)
    """
    return build_section(cls, raw, where)


def config_to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-serialisable dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def build_section(cls: type, raw: Any, where: str) -> Any:
    """Validate ``raw`` into the dataclass ``cls``; ``where`` names it in errors (the
    config path, e.g. ``data.split``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(fields)}"
        raise ConfigError(f"unknown key {_join(where, key)!r}{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(hints[name], raw[name], _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {_join(where, name)!r}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own, precise error
            return _coerce(options[0], value, where)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc).split(": ", 1)[-1])
        raise ConfigError(f"{where}: expected {' or '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if isinstance(value, int) and not isinstance(value, bool) and args[0] is int:
            return value  # a square size; the dataclass expands it
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(
            _coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - programming error


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)
