"""JSON and NDJSON feeds, streamed. One module serves both formats; the spec's ``format`` picks.

``format = "json"``
    ``record_path``: the dot path of the array of records, e.g. ``"data.listings"``; ``""`` or absent
    when the document itself is the array. An array met along the way is stepped into with
    ``item`` (``"pages.item.listings"`` reads the listings of every page). The document is read
    incrementally by ijson (its yajl C backend): memory holds one record, however large the array
    or the document. A path the document lacks, or that leads to something other than an array,
    raises FeedFormatError; so does malformed JSON. An array element that is not an object comes
    out as an error record ``{"__error__": "record 7: ...", "__raw__": element}``.

``format = "ndjson"``
    One object per line (UTF-8); blank lines are skipped. A line that is not a JSON object comes out
    as ``{"__error__": "line 7: ...", "__line__": 7, "__raw__": "<the line>"}`` and the feed goes on.

Records are the objects as sent: nested objects and arrays kept, numbers as int or float (as the
standard library reads them; a decimal such as a price comes back exactly through ``str``). The C
parser refuses integers beyond 64 bits: such a document fails as malformed.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

from pipeline.errors import FeedFormatError, SourceConfigError

KINDS = {"start_map": "an object", "start_array": "an array", "string": "a string", "number": "a number",
         "boolean": "a boolean", "null": "null"}
RAW_LIMIT = 1000  # characters of a bad line kept in its error record


class JsonParser:
    """Streams records out of a JSON document or an NDJSON file (see the module docstring)."""

    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if spec.get("format") == "ndjson":
            return ndjson_records(stream)
        return array_records(stream, _record_path(spec), f"record_path {spec.get('record_path', '')!r}")


def _record_path(spec: dict[str, Any]) -> str:
    path = spec.get("record_path") or ""
    if not isinstance(path, str):
        raise SourceConfigError(
            f'json parse spec: record_path must be a dot path such as "data.listings", not {path!r}'
        )
    return path.strip(".")


def array_records(stream: BinaryIO, path: str, described: str) -> Iterator[dict[str, Any]]:
    """The elements of the array at ``path`` (an ijson prefix; ``""`` is the document), one at a time."""
    watch = ArrayWatch(stream, path)
    count = 0
    try:
        for count, element in enumerate(ijson.items(watch, f"{path}.item" if path else "item", use_float=True), 1):
            yield element if isinstance(element, dict) else _not_an_object(count, element)
    except ijson.JSONError as exc:
        raise FeedFormatError(f"malformed JSON: {' '.join(str(exc).split())}") from exc
    if count == 0:
        watch.check(described)


class ArrayWatch:
    """A stream wrapper that follows the JSON events up to the record array.

    ijson yields nothing both for an empty array and for a path the document lacks; watching the
    events before the array tells them apart, and catches an OData-style ``{"error": {"message"}}``
    body. Once the array starts, data passes through untouched. A UTF-8 byte-order mark is dropped.
    """

    def __init__(self, stream: BinaryIO, path: str):
        self._stream, self._path = stream, path
        self._events = ijson.sendable_list()
        self._parser = ijson.parse_coro(self._events, use_float=True)
        self.found: str | None = None  # what the path leads to, once known
        self.server_error: str | None = None
        self._started = False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data and not self._started:
            data, self._started = data.removeprefix(codecs.BOM_UTF8), True
        if data and self.found is None:
            self._parser.send(data)
            self._inspect()
        return data

    def _inspect(self) -> None:
        for prefix, event, value in self._events:
            if prefix == "error.message" and event == "string":
                self.server_error = value
            if prefix == self._path and event in KINDS:
                self.found = KINDS[event]
                break
        self._events.clear()

    def check(self, described: str) -> None:
        """Raise FeedFormatError unless the path led to an (empty) array."""
        if self.found == "an array":
            return
        if self.server_error is not None:
            raise FeedFormatError(f"the source sent an error instead of records: {self.server_error}")
        if self.found is None:
            raise FeedFormatError(f"{described}: the document has nothing there")
        hint = " (set record_path to where the records are)" if not self._path else ""
        raise FeedFormatError(f"{described} leads to {self.found}, not to an array of records{hint}")


def _not_an_object(position: int, element: Any) -> dict[str, Any]:
    return {"__error__": f"record {position}: {_kind(element)} where an object was expected", "__raw__": element}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    kinds = {list: "an array", str: "a string", int: "a number", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def ndjson_records(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    """One record per non-blank line; a bad line becomes an error record."""
    for number, line in enumerate(stream, start=1):
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if line.strip():
            yield _ndjson_record(number, line)


def _ndjson_record(number: int, line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return _line_error(number, f"not valid JSON ({exc})", line)
    if not isinstance(value, dict):
        return _line_error(number, f"{_kind(value)} where an object was expected", line)
    return value


def _line_error(number: int, problem: str, line: bytes) -> dict[str, Any]:
    raw = line.decode("utf-8", "replace").rstrip("\r\n")[:RAW_LIMIT]
    return {"__error__": f"line {number}: {problem}", "__line__": number, "__raw__": raw}


PARSER = JsonParser()
