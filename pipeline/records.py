"""Mapped records between the parse and load steps: gzip'd NDJSON in the object store.

Values keep their types across the trip: timestamps as ISO 8601, decimals as strings, both
revived by the RESO field table on the way back.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any, BinaryIO

from core.reso import LISTING_FIELDS


def dump(record: dict[str, Any], out: IO[str]) -> None:
    out.write(json.dumps(record, default=_encode, separators=(",", ":"), ensure_ascii=False))
    out.write("\n")


def load_all(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    with gzip.open(stream, "rt", encoding="utf-8") as text:
        for line in text:
            if line.strip():
                yield _revive(json.loads(line))


def writer(path) -> IO[str]:
    return io.TextIOWrapper(gzip.open(path, "wb", compresslevel=5), encoding="utf-8")


def _encode(value: Any) -> str:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a mapped record")


def _revive(record: dict[str, Any]) -> dict[str, Any]:
    for name, (_, kind) in LISTING_FIELDS.items():
        value = record.get(name)
        if value is None:
            continue
        if kind == "decimal":
            record[name] = Decimal(value)
        elif kind == "timestamp":
            record[name] = dt.datetime.fromisoformat(value)
    return record
