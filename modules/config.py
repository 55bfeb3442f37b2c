"""Typed configs from plain dicts, with errors a catalogue author can act on.

A model or task config is a dataclass. `build_config(cls, params)` fills it from a dict
(as read from YAML), refuses unknown keys, checks the type of every field, and lets the
dataclass's own `__post_init__` check ranges and choices by raising `ConfigError`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, get_args, get_origin


class ConfigError(ValueError):
    """A bad config value. `key` is the field name (or '' for the whole config)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _check(key: str, value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"{value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        errors = []
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(key, value, arg)
            except ConfigError as e:
                errors.append(e.message)
        raise ConfigError(key, f"{value!r} has the wrong type; expected {' or '.join(_type_name(a) for a in get_args(tp))}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"{value!r} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"{value!r} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"{value!r} must be a number")
        if not math.isfinite(value):
            raise ConfigError(key, f"{value!r} must be a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"{value!r} must be a string")
        return value
    return value


def build_config(cls: type, params: dict[str, Any]):
    """Instantiate dataclass `cls` from `params`, with type and key checks."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(unknown[0], f"unknown key; allowed: {', '.join(sorted(fields))}")
    missing = [
        n for n, f in fields.items()
        if n not in params and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(missing[0], "is required")
    values = {k: _check(k, v, hints[k]) for k, v in params.items()}
    return cls(**values)


def config_fields(cls: type) -> dict[str, Any]:
    """Field name -> default (or None when required), for documentation and checks."""
    out = {}
    for f in dataclasses.fields(cls):
        out[f.name] = None if f.default is dataclasses.MISSING else f.default
    return out


def require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(key, message)
