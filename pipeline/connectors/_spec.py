"""Reading a source's ``[download]`` table: typed look-ups that fail with SourceConfigError.

A wrong spec is a person's mistake, so it is reported before any connection is made, naming
the key and what was found there.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import SourceConfigError

REQUIRED: Any = object()


def text(spec: dict[str, Any], key: str, default: Any = REQUIRED) -> Any:
    """A string value; ``default`` (which may be None) when the key is absent or empty."""
    value = _get(spec, key, default)
    if value is not default and not isinstance(value, str):
        raise SourceConfigError(f"download.{key} must be a string, got {value!r}")
    return value


def integer(spec: dict[str, Any], key: str, default: Any = REQUIRED, *, minimum: int = 0) -> Any:
    """A whole number no smaller than ``minimum``."""
    value = _get(spec, key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SourceConfigError(f"download.{key} must be a whole number >= {minimum}, got {value!r}")
    return value


def number(spec: dict[str, Any], key: str, default: float) -> float:
    """A positive number of seconds (or any positive quantity)."""
    value = _get(spec, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SourceConfigError(f"download.{key} must be a positive number, got {value!r}")
    return float(value)


def flag(spec: dict[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise SourceConfigError(f"download.{key} must be true or false, got {value!r}")
    return value


def strings(spec: dict[str, Any], key: str, default: Any = REQUIRED) -> Any:
    """One string or a list of strings, always returned as a tuple."""
    value = _get(spec, key, default)
    if value is default:
        return value
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) and v for v in values):
        raise SourceConfigError(f"download.{key} must be a string or a list of strings, got {value!r}")
    return tuple(values)


def _get(spec: dict[str, Any], key: str, default: Any) -> Any:
    value = spec.get(key)
    if value is None or value == "":
        if default is REQUIRED:
            raise SourceConfigError(f"download.{key} is required")
        return default
    return value
