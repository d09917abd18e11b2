"""A small TOML writer for sources.toml (the standard library only reads TOML)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def dumps_sources(sources: list[dict[str, Any]]) -> str:
    """``[[source]]`` tables, each with its nested tables (download, parse, fields, values...)."""
    return "\n".join(_source(s) for s in sources)


def _source(source: dict[str, Any]) -> str:
    lines = ["[[source]]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in source.items() if not isinstance(v, dict)]
    for name, table in source.items():
        if isinstance(table, dict):
            lines += _table(f"source.{_key(name)}", table)
    return "\n".join(lines) + "\n"


def _table(path: str, table: dict[str, Any]) -> list[str]:
    lines = ["", f"[{path}]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for name, sub in table.items():
        if isinstance(sub, dict):
            lines += _table(f"{path}.{_key(name)}", sub)
    return lines


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if value is None:
        raise ValueError("TOML has no null; leave the key out")
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
