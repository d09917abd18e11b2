"""``sql_blob``: photos kept as rows of a remote database, the image bytes in a BLOB column.

Any database SQLAlchemy reaches (SQLite, MariaDB/MySQL, PostgreSQL): one query per listing,
one row per photo. BLOB, LONGBLOB and bytea values all arrive as bytes (memoryviews are
copied). The job sniffs, hashes and stores them like any fetched photo.

Spec (the source's ``[images]`` table, ``strategy = "sql_blob"``):

=====================  =========================================================================
``url``                a SQLAlchemy URL, secrets resolved; required
``query``              SQL with a ``:key`` parameter, one row per photo of that listing; required,
                       e.g. ``SELECT seq AS n, img AS data FROM photos WHERE listing_uid = :key``
``key_field``          the RESO field of the listing's record bound to ``:key`` (default ListingKey)
``order_column``       the result column with the photo's 1-based position (default ``n``)
``data_column``        the result column with the image bytes (default ``data``)
``caption_column``     optional: a column with the photo's caption
``modified_column``    optional: a column with the photo's modification time
``modified_timezone``  IANA zone of naive modification times (default UTC)
``timeout``            seconds to connect (default 30)
=====================  =========================================================================

Columns are matched by name, case-insensitively (PostgreSQL folds unquoted aliases). Rows come
sorted by order; when two rows share an order the first is kept. A row whose bytes are NULL is
a photo that could not be had (counted, fetched again next run); an order that is not a whole
number is a mistake in the query (SourceConfigError).

Each worker thread opens its own engine with a pool of one connection (plus one overflow),
checked before use, and disposes of it when the batch is done. Errors are translated as the
``sql`` connector does: refused connections and timeouts -> SourceUnavailable (the job retries
later), rejected credentials -> SourceAuthError, a missing SQLite file or database ->
FeedNotFound, bad SQL or an unknown column -> SourceConfigError.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import QueuePool

from pipeline.connectors.sql import _check_sqlite_file, _connect_args, _translated
from pipeline.errors import SourceConfigError
from pipeline.images import ListingPhotos, Photo

_KEY = re.compile(r"(?<![:\w\\]):key\b(?!:)")  # SQLAlchemy's own pattern for text() binds
_BINARY = (bytes, bytearray, memoryview)
CAPTION_LENGTH = 255  # media.caption


@dataclass(frozen=True)
class SqlBlobSpec:
    """The ``[images]`` table of a sql_blob source; see the module docstring."""

    url: str
    query: str
    key_field: str = "ListingKey"
    order_column: str = "n"
    data_column: str = "data"
    caption_column: str | None = None
    modified_column: str | None = None
    modified_timezone: str = "UTC"
    timeout: float = 30.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SqlBlobSpec:
        """The table, checked: a wrong value fails before any connection is made."""
        found = {name: _text(spec, name) for name in (
            "url", "query", "key_field", "order_column", "data_column", "caption_column",
            "modified_column", "modified_timezone")}
        for name in ("url", "query"):
            if found[name] is None:
                raise SourceConfigError(f"images.{name} is required for the sql_blob strategy")
        made = cls(**{k: v for k, v in found.items() if v is not None}, timeout=_seconds(spec, "timeout", 30.0))
        made.check()
        return made

    def check(self) -> None:
        """``:key`` used, the time zone known."""
        if not _KEY.search(self.query):
            raise SourceConfigError("images.query must select one listing's photos with a :key parameter")
        self.zone()

    def zone(self) -> dt.tzinfo:
        try:
            return ZoneInfo(self.modified_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SourceConfigError(f"images.modified_timezone {self.modified_timezone!r} is not an IANA zone") from exc


def _text(spec: Mapping[str, Any], name: str) -> str | None:
    value = spec.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise SourceConfigError(f"images.{name} must be a string, got {value!r}")
    return value


def _seconds(spec: Mapping[str, Any], name: str, default: float) -> float:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SourceConfigError(f"images.{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class SqlBlobStrategy:
    """Photos as rows of a remote database; see the module docstring for the spec."""

    name = "sql_blob"
    stores = True

    @contextmanager
    def open(self, spec: dict[str, Any], environ: Mapping[str, str]) -> Iterator[SqlBlobSource]:
        """One engine for the calling worker thread, disposed of when the block ends."""
        settings = SqlBlobSpec.from_spec(spec)
        engine = _engine(settings)
        try:
            yield SqlBlobSource(engine, settings)
        finally:
            engine.dispose()


def _engine(spec: SqlBlobSpec) -> Engine:
    with _translated(spec.url):
        url = make_url(spec.url)
        if url.get_backend_name() == "sqlite":
            _check_sqlite_file(url)
        # one thread queries at a time: one pooled connection, pinged first (servers drop idle ones)
        return create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=1, pool_pre_ping=True,
                             connect_args=_connect_args(url, spec.timeout))


class SqlBlobSource:
    """A listing's photo rows, read through one engine."""

    def __init__(self, engine: Engine, spec: SqlBlobSpec):
        self.engine = engine
        self.spec = spec
        self.statement = text(spec.query)
        self.zone = spec.zone()

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        """Every photo row of the listing, in order."""
        key = self._key(listing)
        if key is None:  # this listing lacks the key field: its photos fail, the others go on
            return [Photo(1, error=f"{listing.listing_key}: images.key_field {self.spec.key_field} is empty")]
        with _translated(self.spec.url), self.engine.connect() as connection:
            result = connection.execute(self.statement, {"key": key})
            columns = _Columns.of(list(result.keys()), self.spec)
            rows = result.all()
        return [self._photo(listing, order, row, columns) for order, row in _by_order(rows, columns.order)]

    def _key(self, listing: ListingPhotos) -> Any:
        field = self.spec.key_field
        value = {"ListingKey": listing.listing_key, "ListingId": listing.listing_id}.get(field)
        value = listing.record.get(field) if value is None else value
        return None if value in (None, "") else value

    def _photo(self, listing: ListingPhotos, order: int, row: Sequence, columns: _Columns) -> Photo:
        data = row[columns.data]
        if data is None or not isinstance(data, _BINARY):
            what = "NULL" if data is None else f"a {type(data).__name__}, not bytes"
            return Photo(order, error=f"{listing.listing_key} #{order}: {self.spec.data_column} is {what}")
        caption = row[columns.caption] if columns.caption is not None else None
        modified = row[columns.modified] if columns.modified is not None else None
        return Photo(order, data=bytes(data), caption=_caption(caption), modified=_moment(modified, self.zone))


@dataclass(frozen=True)
class _Columns:
    """Positions of the spec's columns in a result row."""

    order: int
    data: int
    caption: int | None
    modified: int | None

    @classmethod
    def of(cls, keys: list[str], spec: SqlBlobSpec) -> _Columns:
        def find(name: str | None, key: str) -> int | None:
            if name is None:
                return None
            folded = [k.casefold() for k in keys]
            if name.casefold() not in folded:
                raise SourceConfigError(f"images.{key} {name!r} is not a column of the query's result "
                                        f"(it returns {', '.join(keys) or 'nothing'})")
            return folded.index(name.casefold())

        return cls(find(spec.order_column, "order_column"), find(spec.data_column, "data_column"),
                   find(spec.caption_column, "caption_column"), find(spec.modified_column, "modified_column"))


def _by_order(rows: Sequence[Sequence], column: int) -> list[tuple[int, Sequence]]:
    """(order, row) sorted by order; the first row of a repeated order wins."""
    kept: dict[int, Sequence] = {}
    for row in rows:
        kept.setdefault(_order(row[column]), row)
    return sorted(kept.items(), key=lambda item: item[0])


def _order(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise SourceConfigError(f"images.order_column must hold whole numbers, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise SourceConfigError(f"images.order_column must hold whole numbers, got {value!r}")
    return int(number)


def _caption(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip()[:CAPTION_LENGTH] or None


def _moment(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    """An aware time from a datetime or ISO text (SQLite keeps text); naive ones are in ``zone``."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


STRATEGY = SqlBlobStrategy()
