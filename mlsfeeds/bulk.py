"""Seeding at bulk-insert speed: listings that no table holds yet, written the fastest way each
database takes rows in.

- SQLite: ``executemany`` of plain tuples in big transactions (values already in the form
  SQLAlchemy would have bound: floats for decimals, its datetime text, JSON text), with a
  larger page cache for the duration.
- PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3.

On both, the non-unique indexes of ``listings`` and ``media`` (and on PostgreSQL their foreign
keys) are dropped first and built again from the models' metadata at the end (one sort beats a
million random B-tree insertions, one join a million trigger calls), and
photo rows never cross the driver: one ``INSERT ... SELECT`` per chunk derives them from the
listings just written, the photo URL template turned into SQL concatenation.

The rows, their ids and their order are the ones the incremental path writes for the same seed:
``tests/integration/test_seed.py`` compares both against golden digests of the stored values.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import islice
from operator import itemgetter
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    cast,
    func,
    insert,
    inspect,
    literal,
    select,
)
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from core.db import refresh_statistics
from core.models import Listing, Media
from core.reso import LISTING_FIELDS, city_key
from sandbox.listings import PHOTO_URL_TEMPLATE

CHUNK = 50_000  # listings per transaction: about 450,000 photo rows with them
SQLITE_CACHE_KIB = 128 * 1024  # the unique (source_id, listing_key) index takes keys at random
POSTGRES_INDEX_MEMORY = "256MB"  # maintenance_work_mem: each index built in one sort
BULK_DIALECTS = ("sqlite", "postgresql")
TABLES = (Listing.__table__, Media.__table__)
UTC = dt.timezone.utc

Progress = Callable[[int, int], None]


class Chunk(NamedTuple):
    """Listings ready for the driver, and what their photo rows need to know."""

    rows: list[tuple]
    photos: int  # photo rows these listings have
    most_photos: int


class Layout:
    """Where each field of a generated row goes: the ``listings`` columns, in insert order.

    ``fields`` names the row's positions (RESO names, ``SourceId`` first); a field without a
    listings column is left out, and a listings column the rows lack is written as NULL, as the
    incremental path does.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        columns = {"SourceId": ("source_id", "text"), **LISTING_FIELDS}
        picked = [i for i, name in enumerate(fields) if name in columns]
        self._pick = itemgetter(*picked)
        self.columns = [columns[fields[i]][0] for i in picked]
        kinds = [columns[fields[i]][1] for i in picked]
        self.decimals = [p for p, kind in enumerate(kinds) if kind == "decimal"]
        self.timestamps = [p for p, kind in enumerate(kinds) if kind == "timestamp"]
        missing = [column for column, _ in LISTING_FIELDS.values() if column not in self.columns]
        self._city = fields.index("City")
        self.columns += ["city_key"] + missing + ["first_seen", "last_seen", "extra"]
        self.nulls = (None,) * len(missing)
        self.photos = fields.index("PhotosCount")

    def values(self, row: tuple) -> tuple:
        """The row's listings values (and the city_key derived from them), without the trailing
        NULLs and bookkeeping columns."""
        return (*self._pick(row), city_key(row[self._city]))

    def chunk(self, rows: list[tuple], ready: list[tuple]) -> Chunk:
        counts = [row[self.photos] for row in rows]
        return Chunk(ready, sum(counts), max(counts, default=0))


class SqliteWriter:
    """``executemany`` of values already in the form SQLAlchemy's SQLite binding gives them."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        marks = ", ".join("?" * len(layout.columns))
        self.sql = f"INSERT INTO {Listing.__tablename__} ({', '.join(layout.columns)}) VALUES ({marks})"

    def prepare(self, rows: list[tuple]) -> Chunk:
        now = _sqlite_time(dt.datetime.now(UTC))
        stamp = (*self.layout.nulls, now, now, "{}")  # ..., first_seen, last_seen, extra
        decimals, timestamps, values = self.layout.decimals, self.layout.timestamps, self.layout.values
        ready = []
        for row in rows:
            out = list(values(row))
            for i in decimals:  # Numeric binds as float on SQLite
                if out[i] is not None:
                    out[i] = float(out[i])
            for i in timestamps:
                if out[i] is not None:
                    out[i] = _sqlite_time(out[i])
            ready.append((*out, *stamp))
        return self.layout.chunk(rows, ready)

    def write(self, conn: Connection, chunk: Chunk) -> None:
        conn.exec_driver_sql(self.sql, chunk.rows)

    @contextmanager
    def tuned(self, conn: Connection):
        """A page cache big enough for the random index inserts; the pooled connection's own
        size back afterwards."""
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def _sqlite_time(value: dt.datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text for a UTC instant: ``2026-05-31 23:59:59.000000``."""
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat(" ", "microseconds")[:26]


class PostgresWriter:
    """``COPY ... FROM STDIN``: psycopg formats Decimal and aware datetimes itself."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.sql = f"COPY {Listing.__tablename__} ({', '.join(layout.columns)}) FROM STDIN"

    def prepare(self, rows: list[tuple]) -> Chunk:
        now = dt.datetime.now(UTC)
        stamp = (*self.layout.nulls, now, now, "{}")
        values = self.layout.values
        return self.layout.chunk(rows, [(*values(row), *stamp) for row in rows])

    def write(self, conn: Connection, chunk: Chunk) -> None:
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor, cursor.copy(self.sql) as copy:
            for row in chunk.rows:
                copy.write_row(row)

    @contextmanager
    def tuned(self, conn: Connection):
        """Memory to build each index in one sort, for this connection only."""
        conn.exec_driver_sql(f"SET maintenance_work_mem = '{POSTGRES_INDEX_MEMORY}'")
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql("RESET maintenance_work_mem")
            conn.commit()


WRITERS = {"sqlite": SqliteWriter, "postgresql": PostgresWriter}


def bulk_seed(engine: Engine, rows: Iterator[tuple], layout: Layout, total: int,
              progress: Progress | None = None, chunk_size: int | None = None) -> int:
    """Write ``rows`` (listings of sources that have none yet); returns the photo rows written.

    Chunks of ``chunk_size`` listings (default ``CHUNK``) are committed one by one.
    """
    writer = WRITERS[engine.dialect.name](layout)
    with engine.connect() as conn:
        with writer.tuned(conn), _loosened(conn, TABLES):
            photos = _write_chunks(conn, writer, rows, chunk_size or CHUNK, partial(_report, progress, total))
        _after_bulk_write(conn)
    return photos


def _write_chunks(conn: Connection, writer, rows: Iterator[tuple], size: int, report: Callable) -> int:
    """Two stages overlap: this thread generates a chunk and hands its listings to the driver;
    a second one then derives the chunk's photos and commits while this one generates the next.

    The second stage runs in the database's C code without the GIL, so the two really run at
    once. The driver's row binding stays on this thread: a Python thread competing for the GIL
    would stall it at every row. The connection is never used by both at the same time.
    """
    done = photos = 0
    with ThreadPoolExecutor(1, "seed-photos") as finisher:
        pending: Future | None = None
        while generated := list(islice(rows, size)):
            chunk = writer.prepare(generated)
            photos += _settle(pending)
            report(done)
            last_id = conn.scalar(select(func.coalesce(func.max(Listing.id), 0)))
            writer.write(conn, chunk)
            pending = finisher.submit(_finish_chunk, conn, last_id, chunk)
            done += len(chunk.rows)
        photos += _settle(pending)
    report(done)
    return photos


def _report(progress: Progress | None, total: int, done: int) -> None:
    if progress and done:
        progress(done, total)


def _finish_chunk(conn: Connection, last_id: int, chunk: Chunk) -> int:
    _write_media(conn, last_id, chunk.most_photos)
    conn.commit()
    return chunk.photos


def _settle(pending: Future | None) -> int:
    return pending.result() if pending else 0


def _after_bulk_write(conn: Connection) -> None:
    """What follows every bulk write: the planner's statistics refreshed for the new rows.

    One place on purpose: whatever else must learn that the data changed (a cache generation,
    say) belongs here too. PostgreSQL's VACUUM runs outside a transaction; it also sets the
    visibility map that lets the planner choose index-only scans.
    """
    conn.commit()
    refresh_statistics(conn.engine, tuple(table.name for table in TABLES))


def _write_media(conn: Connection, after_id: int, most: int) -> None:
    """The photo rows of the listings with ids above ``after_id``, made by the database."""
    if not most:
        return
    numbers = select(literal(1, Integer).label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < most))
    photos = (
        select(Listing.id, numbers.c.n, _photo_url_sql(numbers.c.n))
        .join(numbers, numbers.c.n <= Listing.photos_count)
        .where(Listing.id > after_id)
        .order_by(Listing.id, numbers.c.n)  # media ids in the order the incremental path gives
    )
    conn.execute(insert(Media).from_select(["listing_id", "order", "url"], photos))


def _photo_url_sql(n):
    """``PHOTO_URL_TEMPLATE.format(n=n, **record)`` as SQL over a listings row."""
    columns = {"SourceId": Listing.source_id, "n": cast(n, String)}
    columns.update({name: getattr(Listing, column) for name, (column, _) in LISTING_FIELDS.items()})
    parts = []
    for literal_text, field, spec, conversion in string.Formatter().parse(PHOTO_URL_TEMPLATE):
        if literal_text:
            parts.append(literal(literal_text, String))
        if field is not None:
            if spec or conversion or field not in columns:
                raise ValueError(f"photo URL template field {{{field}}} has no plain column to read")
            parts.append(columns[field])
    url = parts[0]
    for part in parts[1:]:
        url = url.concat(part)
    return url


@contextmanager
def _loosened(conn: Connection, tables: Iterable[Table]):
    """Without the tables' non-unique indexes (and on PostgreSQL their foreign keys) for the
    block; all built again after it, even when it fails (its open transaction is rolled back
    first). Unique indexes stay: they guard the data.

    PostgreSQL checks a foreign key with a trigger per row, about half the cost of each photo
    row; adding the constraint back checks all rows in one join. SQLite cannot drop a
    constraint without rebuilding the table, and its check is a cheap primary-key probe.
    """
    indexes, keys = _secondary_indexes(conn, tables), _foreign_keys(conn, tables)
    for ddl in [DropConstraint(key) for key in keys] + [DropIndex(index) for index in indexes]:
        conn.execute(ddl)
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        for ddl in [CreateIndex(index) for index in indexes] + [AddConstraint(key) for key in keys]:
            conn.execute(ddl)
        conn.commit()


def _secondary_indexes(conn: Connection, tables: Iterable[Table]) -> list[Index]:
    """The models' non-unique indexes that the database has (a newer migration's may be missing)."""
    inspector = inspect(conn)
    found = []
    for table in tables:
        present = {ix["name"] for ix in inspector.get_indexes(table.name)}
        found += [ix for ix in table.indexes if not ix.unique and ix.name in present]
    return found


def _foreign_keys(conn: Connection, tables: Iterable[Table]) -> list[ForeignKeyConstraint]:
    """On PostgreSQL, the tables' foreign keys that the database has; elsewhere none."""
    if conn.dialect.name != "postgresql":
        return []
    inspector = inspect(conn)
    found = []
    for table in tables:
        present = {fk["name"] for fk in inspector.get_foreign_keys(table.name)}
        found += [fk for fk in table.foreign_key_constraints if fk.name in present]
    return found
