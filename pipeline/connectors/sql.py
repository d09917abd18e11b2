"""The ``sql`` connector: a query against a remote database, streamed to NDJSON files.

The rows come through a server-side cursor (``yield_per``: PostgreSQL's named cursors,
PyMySQL's unbuffered cursor; SQLite reads lazily anyway), ``batch_size`` at a time, and go to
``rows-0001.ndjson``, ``rows-0002.ndjson``... at most ``rows_per_file`` rows each, one JSON
object per row keyed by the result's column names (alias them uniquely), ``PayloadFile(format=
"ndjson", meta={part, rows})``. At least one file is written, empty if the query found nothing.
Memory stays flat however many rows there are. The engine lives for one fetch.

Values: datetimes, dates and times in ISO 8601 (naive stays naive: the source's ``timezone``
says what it means), Decimals as strings (no float rounding), UUIDs as text, binary columns
skipped (``binary = "base64"`` keeps them as base64 text), anything else JSON cannot hold as text.
SQLite has no datetime type: what it stores (usually text such as ``2026-03-14 22:35:13.000000``)
comes through as it is, so such a source may need a ``timestamp_format``.

Download spec (``kind = "sql"``):

=====================  =========================================================================
``url``                a SQLAlchemy URL, secrets resolved; required
``query``              SQL with a ``:since`` parameter, e.g. ``... WHERE modified >= :since``;
                       required. On full runs ``:since`` is 1900-01-01 unless ``full_query`` is set
``full_query``         SQL for full runs (no parameters), e.g. without the WHERE clause
``since_timezone``     IANA zone of the naive times ``:since`` is compared with (default UTC):
                       ``since`` is converted to it and passed naive
``batch_size``         rows per fetch from the cursor (default 5000)
``rows_per_file``      rows per NDJSON file (default 100000)
``binary``             ``"skip"`` (default) or ``"base64"``
``timeout``            seconds to connect (default 30)
=====================  =========================================================================

Errors: refused connections, timeouts, lost connections, deadlocks -> SourceUnavailable;
rejected credentials (PostgreSQL SQLSTATE 28P01/28000, or libpq's message when connecting;
MariaDB/MySQL 1045/1044/1698) -> SourceAuthError; an unknown database or a missing SQLite
file -> FeedNotFound; bad SQL, unknown tables or columns, a bad spec -> SourceConfigError.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import DateTime, bindparam, create_engine, exc as sa_exc, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from pipeline.connectors import FetchRequest, Payload, PayloadFile, _spec
from pipeline.errors import (
    FeedNotFound, PermanentError, PipelineError, SourceAuthError, SourceConfigError, SourceUnavailable,
)

FULL_SINCE = dt.datetime(1900, 1, 1)
_BIND = re.compile(r"(?<![:\w\\]):since\b(?!:)")  # SQLAlchemy's own pattern for text() binds
_BINARY = (bytes, bytearray, memoryview)


@dataclass(frozen=True)
class SqlSpec:
    """The ``[download]`` table of a sql source; see the module docstring."""

    url: str
    query: str
    full_query: str | None = None
    since_timezone: str | None = None
    batch_size: int = 5000
    rows_per_file: int = 100_000
    binary: str = "skip"
    timeout: float = 30

    def __post_init__(self):
        if self.binary not in ("skip", "base64"):
            raise SourceConfigError(f'download.binary must be "skip" or "base64", got {self.binary!r}')

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SqlSpec:
        """The ``[download]`` table, checked."""
        return cls(
            url=_spec.text(spec, "url"),
            query=_spec.text(spec, "query"),
            full_query=_spec.text(spec, "full_query", None),
            since_timezone=_spec.text(spec, "since_timezone", None),
            batch_size=_spec.integer(spec, "batch_size", 5000, minimum=1),
            rows_per_file=_spec.integer(spec, "rows_per_file", 100_000, minimum=1),
            binary=_spec.text(spec, "binary", "skip"),
            timeout=_spec.number(spec, "timeout", 30.0),
        )

    def statement(self, since: dt.datetime | None):
        """The query to run and its parameters."""
        if since is None and self.full_query:
            return text(self.full_query), {}
        statement = text(self.query)
        if not _BIND.search(self.query):
            return statement, {}
        statement = statement.bindparams(bindparam("since", type_=DateTime()))
        return statement, {"since": FULL_SINCE if since is None else self._naive(since)}

    def _naive(self, since: dt.datetime) -> dt.datetime:
        try:
            zone = ZoneInfo(self.since_timezone) if self.since_timezone else dt.timezone.utc
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SourceConfigError(f"sql: unknown since_timezone {self.since_timezone!r}") from exc
        aware = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(zone).replace(tzinfo=None)


class SqlConnector:
    """Streams a query's rows to NDJSON files; see the module docstring for the spec."""

    kind: ClassVar[str] = "sql"

    def fetch(self, request: FetchRequest) -> Payload:
        """Runs the query (``full_query`` on full runs if set) and writes its rows as NDJSON."""
        spec = SqlSpec.from_spec(request.spec)
        statement, parameters = spec.statement(request.since)
        with _translated(spec.url):
            engine = _engine(spec)
            try:
                with engine.connect() as connection:
                    streaming = connection.execution_options(yield_per=spec.batch_size)
                    # closed even when writing fails: the server-side cursor goes with it
                    with streaming.execute(statement, parameters) as result:
                        files = _write_files(result, request, spec)
            finally:
                engine.dispose()
        return Payload(files)


def _engine(spec: SqlSpec) -> Engine:
    url = make_url(spec.url)
    if url.get_backend_name() == "sqlite":
        _check_sqlite_file(url)
    return create_engine(url, poolclass=NullPool, connect_args=_connect_args(url, spec.timeout))


def _check_sqlite_file(url: URL) -> None:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:") and not Path(database).exists():
        raise FeedNotFound(f"sql: the SQLite database {database} does not exist")


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_timeout": max(1, int(timeout))}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": timeout}
    if backend == "sqlite":
        return {"timeout": timeout}
    return {}


# -- NDJSON ---------------------------------------------------------------------------------------

def _write_files(result, request: FetchRequest, spec: SqlSpec) -> list[PayloadFile]:
    encode, files = _encoder(list(result.keys()), spec.binary), []
    # the size must be given: partitions() of a Connection's yield_per would fetch everything at once
    rows = (row for partition in result.partitions(spec.batch_size) for row in partition)
    while True:
        part = len(files) + 1
        path = request.workdir / f"rows-{part:04d}.ndjson"
        count = _write_part(path, islice(rows, spec.rows_per_file), encode)
        if count == 0 and files:
            path.unlink()
            return files
        files.append(PayloadFile(path=path, size=path.stat().st_size, format="ndjson",
                                 meta={"part": part, "rows": count}))
        request.progress(f"{path.name}: {count} rows")
        if count < spec.rows_per_file:
            return files


def _write_part(path: Path, rows: Iterator, encode: Callable[[Any], str]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(encode(row))
            count += 1
    return count


class _Binary(Exception):
    """A row holds bytes that are to be skipped."""


def _encoder(keys: list[str], binary: str) -> Callable[[Any], str]:
    """A function from a row to its NDJSON line."""
    default = _json_value if binary == "base64" else _no_binary
    dumps = json.JSONEncoder(default=default, ensure_ascii=False, separators=(",", ":")).encode
    plain = json.JSONEncoder(default=_json_value, ensure_ascii=False, separators=(",", ":")).encode

    def encode(row) -> str:
        try:
            return dumps(dict(zip(keys, row))) + "\n"
        except _Binary:  # rare: only rows that hold bytes pay for the filtering
            return plain({k: v for k, v in zip(keys, row) if not isinstance(v, _BINARY)}) + "\n"

    return encode


def _no_binary(value: Any) -> Any:
    if isinstance(value, _BINARY):
        raise _Binary
    return _json_value(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, _BINARY):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


# -- errors ---------------------------------------------------------------------------------------

_BY_CODE: dict[str | int, type[PipelineError]] = {
    # PostgreSQL SQLSTATE, exact codes, then classes (first two characters)
    "28P01": SourceAuthError, "28000": SourceAuthError, "3D000": FeedNotFound,
    "08": SourceUnavailable, "53": SourceUnavailable, "57": SourceUnavailable, "40": SourceUnavailable,
    "42": SourceConfigError, "22": SourceConfigError, "0A": SourceConfigError,
    # MariaDB / MySQL error numbers
    1044: SourceAuthError, 1045: SourceAuthError, 1698: SourceAuthError, 1049: FeedNotFound,
    1040: SourceUnavailable, 1205: SourceUnavailable, 1213: SourceUnavailable, 2002: SourceUnavailable,
    2003: SourceUnavailable, 2006: SourceUnavailable, 2013: SourceUnavailable,
    1054: SourceConfigError, 1064: SourceConfigError, 1146: SourceConfigError,
    # SQLite result codes
    "SQLITE_BUSY": SourceUnavailable, "SQLITE_LOCKED": SourceUnavailable, "SQLITE_CANTOPEN": FeedNotFound,
    "SQLITE_ERROR": SourceConfigError, "SQLITE_AUTH": SourceAuthError, "SQLITE_NOTADB": SourceConfigError,
}
# libpq reports connection failures without a SQLSTATE; its messages are all there is
_LIBPQ = (
    (re.compile(r"password authentication failed|role \".*\" does not exist|no pg_hba\.conf entry|"
                r"authentication failed|password is required|no password supplied"), SourceAuthError),
    (re.compile(r"database \".*\" does not exist"), FeedNotFound),
)
_BY_CLASS: tuple[tuple[type[Exception], type[PipelineError]], ...] = (
    (sa_exc.OperationalError, SourceUnavailable), (sa_exc.InterfaceError, SourceUnavailable),
    (sa_exc.InternalError, PermanentError), (sa_exc.DBAPIError, SourceConfigError),
)


@contextmanager
def _translated(url: str):
    """Turns SQLAlchemy and driver errors into pipeline errors that name the (password-free) URL."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc, _safe(url)) from exc
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise SourceConfigError(f"sql: bad url {_safe(url)}: {exc}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise SourceConfigError(f"sql {_safe(url)}: {exc}") from exc


def _database_error(exc: sa_exc.DBAPIError, url: str) -> PipelineError:
    orig = exc.orig
    message = f"sql {url}: {str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__}"
    return _error_class(exc, orig)(message)


def _error_class(exc: sa_exc.DBAPIError, orig: BaseException) -> type[PipelineError]:
    errno = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
    sqlstate = getattr(orig, "sqlstate", None)
    for code in (errno, sqlstate, sqlstate and sqlstate[:2], getattr(orig, "sqlite_errorname", None)):
        if code is not None and code in _BY_CODE:
            return _BY_CODE[code]
    for pattern, error in _LIBPQ:
        if pattern.search(str(orig)):
            return error
    return next(error for kind, error in _BY_CLASS if isinstance(exc, kind))


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable url>"


CONNECTOR = SqlConnector()
