"""Parsers: one module per format. A parser only reads.

``records(stream, spec)`` yields one dict per record (source field name → value, text or
JSON-typed) from a binary stream, holding no more than a record or a page in memory however
large the feed. Malformed input raises FeedFormatError saying where.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol


class Parser(Protocol):
    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]: ...


FORMATS = {
    "delimited": "delimited",
    "rets-compact": "rets_compact",
    "xml": "xml",
    "json": "json",
    "ndjson": "json",
    "odata": "odata",
}


def parser_for(format_name: str) -> Parser:
    from importlib import import_module

    from pipeline.errors import SourceConfigError

    if format_name not in FORMATS:
        raise SourceConfigError(f"unknown parse format {format_name!r}; use one of {', '.join(sorted(FORMATS))}")
    return import_module(f"pipeline.parsers.{FORMATS[format_name]}").PARSER
