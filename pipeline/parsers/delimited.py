"""Delimited text: CSV, TSV, pipe or any other delimiter, in any encoding, streamed.

Spec keys (all optional; other keys of the parse spec are ignored):

``delimiter``
    One character (default ``","``); ``"tab"`` or ``"\\t"`` for TSV. A longer delimiter (``"~|~"``)
    splits lines literally: such feeds do not quote.
``quote``
    The quote character (default ``'"'``); ``""`` or ``false`` for feeds that never quote, where a
    ``"`` is an ordinary character.
``escape``
    An escape character (``"\\\\"``) for feeds that backslash-escape rather than double quotes.
``encoding``
    Any Python codec name (default ``"utf-8"``). A byte-order mark (UTF-8, UTF-16, UTF-32) wins over it.
``encoding_errors``
    ``"strict"`` (default: an undecodable byte fails the feed, naming its line), ``"replace"`` or
    ``"ignore"``.
``header``
    Whether the first line (after ``skip_lines``) names the columns: default true, or false when
    ``columns`` is given.
``columns``
    The column names of a file without a header line; with ``header = true`` too, they replace the
    header's names.
``skip_lines``
    Physical lines to skip before the header or the first row (default 0).

Records are ``{column: text}``, ``None`` for an empty field. Lines end in LF, CRLF or a lone CR;
blank lines are skipped; quoted fields may hold delimiters and line breaks; one extra empty field
at the end of a row (a trailing delimiter) is ignored, as is an empty last header name. Blank
header names become ``column_<n>`` and repeated ones ``<name>_2``, ``<name>_3``...

A row that cannot be read (too few or too many fields, broken quoting) does not fail the feed: it
comes out as ``{"__error__": "line 12: ...", "__line__": 12, "__raw__": [fields]}``, which mapping
rejects and counts. FeedFormatError is raised only when the file as a whole is unreadable: no
header line, or (with strict decoding) a byte the encoding cannot decode.

Memory: one record plus a 64 KiB read buffer, whatever the size of the file.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.parsers.encoding import codec

CHUNK = 1 << 16
# UTF-32 LE first: its mark begins with UTF-16 LE's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
DELIMITER_ALIASES = {"tab": "\t", "\\t": "\t", "pipe": "|", "comma": ",", "semicolon": ";"}


@dataclass(frozen=True)
class Settings:
    """A delimited spec, validated."""

    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    encoding: str = "utf-8"
    errors: str = "strict"
    header: bool = True
    columns: tuple[str, ...] | None = None
    skip_lines: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Settings:
        """Read and check the spec keys; a bad one raises SourceConfigError naming it."""
        columns = spec.get("columns")
        settings = cls(
            delimiter=_delimiter(spec.get("delimiter", ",")),
            quote=spec.get("quote", '"') or None,
            escape=spec.get("escape") or None,
            encoding=codec(spec.get("encoding", "utf-8")),
            errors=_error_handler(spec.get("encoding_errors", "strict")),
            header=bool(spec.get("header", columns is None)),
            columns=_columns(columns),
            skip_lines=_skip_lines(spec.get("skip_lines", 0)),
        )
        settings.check()
        return settings

    def dialect(self) -> dict[str, Any]:
        """Keyword arguments for ``csv.reader``."""
        if self.quote is None:
            return {"delimiter": self.delimiter, "quoting": csv.QUOTE_NONE, "escapechar": self.escape}
        return {"delimiter": self.delimiter, "quotechar": self.quote, "escapechar": self.escape}

    def check(self) -> None:
        if not self.header and self.columns is None:
            raise SourceConfigError("delimited parse spec: header = false needs columns = [...]")
        if self.delimiter in (self.quote, self.escape):
            raise SourceConfigError("delimited parse spec: the delimiter cannot also be the quote or escape character")
        if len(self.delimiter) > 1:
            return
        try:
            csv.reader([], **self.dialect())
        except (TypeError, ValueError) as exc:
            raise SourceConfigError(f"delimited parse spec: {exc}") from exc


def _delimiter(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SourceConfigError(f"delimited parse spec: delimiter must be a non-empty string, not {value!r}")
    value = DELIMITER_ALIASES.get(value.lower(), value)
    if "\n" in value or "\r" in value:
        raise SourceConfigError("delimited parse spec: a line break cannot be the delimiter")
    return value


def _error_handler(name: Any) -> str:
    try:
        codecs.lookup_error(str(name))
    except LookupError:
        raise SourceConfigError(
            f"delimited parse spec: encoding_errors must be strict, replace or ignore, not {name!r}"
        ) from None
    return str(name)


def _columns(columns: Any) -> tuple[str, ...] | None:
    if columns is None:
        return None
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise SourceConfigError("delimited parse spec: columns must be a non-empty list of names")
    return _column_names(columns)


def _skip_lines(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SourceConfigError(f"delimited parse spec: skip_lines must be a whole number >= 0, not {value!r}")
    return value


class DelimitedParser:
    """Streams records out of delimited text (see the module docstring for the spec)."""

    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        settings = Settings.from_spec(spec)
        rows = _rows(LineReader(stream, settings.encoding, settings.errors), settings)
        columns = _header(rows, settings)
        for line, fields, problem in rows:
            yield _record(columns, line, fields, problem)


class LineReader:
    """The decoded lines of a binary stream, each with its line ending, one at a time.

    Decoding is incremental, so a multi-byte character split across reads is fine; a byte the
    codec rejects (with strict errors) raises FeedFormatError naming its line. A file whose
    first 64 KiB hold CRs but no LF is read as CR-terminated (classic Mac exports).
    """

    def __init__(self, stream: BinaryIO, encoding: str, errors: str = "strict"):
        self._stream, self._encoding, self._errors = stream, encoding, errors
        self._newline = "\n"
        self._pending = ""
        self.completed = 0  # line endings seen so far

    def __iter__(self) -> Iterator[str]:
        for text in self._texts():
            yield from self._split(text)
        if self._pending:
            yield self._pending

    def _texts(self) -> Iterator[str]:
        first = self._stream.read(CHUNK)
        self._encoding = next((name for bom, name in BOMS if first.startswith(bom)), self._encoding)
        if b"\n" not in first and b"\r" in first:
            self._newline = "\r"
        decoder = codecs.getincrementaldecoder(self._encoding)(self._errors)
        yield self._decode(decoder, first, final=not first)
        while chunk := self._stream.read(CHUNK):
            yield self._decode(decoder, chunk, final=False)
        yield self._decode(decoder, b"", final=True)

    def _decode(self, decoder: codecs.IncrementalDecoder, data: bytes, final: bool) -> str:
        try:
            return decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from exc

    def _decode_error(self, exc: UnicodeDecodeError) -> FeedFormatError:
        before = bytes(exc.object[: exc.start]).decode(self._encoding, "replace")
        line = self.completed + before.count(self._newline) + 1
        bad = bytes(exc.object[exc.start : exc.end]).hex(" ")
        return FeedFormatError(
            f"cannot decode {self._encoding} ({exc.reason}: 0x{bad}); set the parse spec's encoding "
            f'(e.g. "cp1252") or encoding_errors = "replace"',
            line=line,
        )

    def _split(self, text: str) -> list[str]:
        parts = (self._pending + text).split(self._newline)
        self._pending = parts.pop()
        self.completed += len(parts)
        return [part + self._newline for part in parts]


Row = tuple[int, list[str], str | None]  # (first line, fields, problem)


def _rows(lines: Iterable[str], settings: Settings) -> Iterator[Row]:
    """Non-blank rows with the line each starts on; a row that cannot be read carries a problem."""
    lines = iter(lines)
    for _ in range(settings.skip_lines):
        next(lines, None)
    read = _split_rows if len(settings.delimiter) > 1 else _csv_rows
    for line, fields, problem in read(lines, settings):
        if problem or not _blank(fields):
            yield line + settings.skip_lines, fields, problem


def _csv_rows(lines: Iterator[str], settings: Settings) -> Iterator[Row]:
    reader = csv.reader(lines, **settings.dialect())
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, [], str(exc)
            continue
        yield start, fields, None


def _split_rows(lines: Iterator[str], settings: Settings) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r\n").split(settings.delimiter), None


def _blank(fields: list[str]) -> bool:
    return not fields or (len(fields) == 1 and not fields[0].strip())


def _header(rows: Iterator[Row], settings: Settings) -> tuple[str, ...]:
    """The column names: the configured ones, or those of the header line (consumed)."""
    if not settings.header:
        assert settings.columns is not None
        return settings.columns
    first = next(rows, None)
    if first is None:
        raise FeedFormatError("the file is empty: expected a header line (or set columns and header = false)")
    line, fields, problem = first
    if problem:
        raise FeedFormatError(f"cannot read the header: {problem}", line=line)
    if settings.columns is not None:
        return settings.columns
    return _column_names(fields)


def _column_names(names: list[str]) -> tuple[str, ...]:
    """Stripped names: a blank last one dropped, other blanks numbered, repeats suffixed."""
    names = [name.strip().lstrip("\ufeff") for name in names]
    if len(names) > 1 and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    unique = []
    for position, name in enumerate(names, start=1):
        name = name or f"column_{position}"
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return tuple(unique)


def _record(columns: tuple[str, ...], line: int, fields: list[str], problem: str | None) -> dict[str, Any]:
    if len(fields) == len(columns) + 1 and not fields[-1]:
        fields = fields[:-1]  # a trailing delimiter
    if problem is None and len(fields) != len(columns):
        problem = f"{len(fields)} fields where there are {len(columns)} columns"
    if problem is not None:
        return {"__error__": f"line {line}: {problem}", "__line__": line, "__raw__": fields}
    return {name: value or None for name, value in zip(columns, fields)}


PARSER = DelimitedParser()
