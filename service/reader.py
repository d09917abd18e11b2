"""Prepared SELECTs run on a pooled DB-API connection: SQLAlchemy's SQL, without its per-call cost.

A search page costs the database about 0.2 ms on SQLite; through a Session, a Connection and a
Result it cost about 1 ms (checking a connection out and beginning, post-compiling expanding
IN lists, building Row objects). Here a statement is compiled once per dialect, its bind and
result processors (the same SQLAlchemy type processors: Decimal scale, UTC datetimes) are
looked up once, and a call binds its values, runs the SQL on the raw connection of the engine's
pool and processes only the columns that need it. The values are those SQLAlchemy would give.

Statements passed here must not use expanding parameters: a list becomes one parameter per
item (see service/statements.py), so each length has its own compiled SQL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Engine, Select


@dataclass
class Prepared:
    sql: str
    compiled: Any  # sqlalchemy Compiled: supplies the defaults of binds the statement fixes itself
    positional: tuple[str, ...] | None  # bind names in order, for positional paramstyles
    binders: dict[str, Callable]
    types: list  # the selected columns' types
    dialect: Any
    # (column index, processor) for the columns that need one; learnt from the first result,
    # since some drivers' processors depend on the column's type code in the cursor description.
    results: tuple[tuple[int, Callable], ...] | None = None

    def parameters(self, values: dict[str, Any]):
        bound = self.compiled.construct_params(values)
        for name, process in self.binders.items():
            if bound.get(name) is not None:
                bound[name] = process(bound[name])
        if self.positional is not None:
            return tuple(bound[name] for name in self.positional)
        return bound

    def process(self, rows: list[tuple], description) -> list[tuple]:
        if self.results is None:
            self.results = tuple(
                (index, process) for index, (kind, column) in enumerate(zip(self.types, description))
                if (process := kind.dialect_impl(self.dialect).result_processor(self.dialect, column[1]))
            )
        if not self.results:
            return rows
        processed = []
        for row in rows:
            row = list(row)
            for index, process in self.results:
                row[index] = process(row[index])
            processed.append(tuple(row))
        return processed


ESTIMATE_SECONDS = 60.0
_ESTIMATES = {
    # What ANALYZE last counted: the first figure of any index's statistics is the row count.
    "sqlite": "SELECT CAST(stat AS INTEGER) FROM sqlite_stat1 WHERE tbl = 'listings' LIMIT 1",
    "postgresql": "SELECT reltuples::bigint FROM pg_class WHERE oid = 'listings'::regclass",
}


class Reader:
    """Runs Select statements for one engine; ``prepare`` results are cached per statement."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._dialect = engine.dialect
        self._prepared: dict[int, tuple[Select, Prepared]] = {}
        self._estimate = (0.0, 0)  # (when, listings)
        self._versions = _DataVersion(engine) if engine.dialect.name == "sqlite" else None
        self._generations: dict = {}  # sources -> data generation signature, while data_version holds
        self._lock = threading.Lock()
        self._local = threading.local()

    def prepare(self, statement: Select) -> Prepared:
        entry = self._prepared.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = (statement, _compile(statement, self._dialect))
            self._prepared[id(statement)] = entry  # the statement is kept alive with its entry
        return entry[1]

    @property
    def dialect(self) -> str:
        return self._dialect.name

    def session(self) -> "ReadSession":
        return ReadSession(self)

    def checkout(self):
        """A connection for one call's reads.

        SQLite: a pooled connection, its reads in one snapshot (a deferred BEGIN: the snapshot
        starts at the first read) until it goes back. PostgreSQL: this thread's own connection,
        kept between calls (no checkout, no ping: a call that a cached answer serves costs one
        round trip), reading in autocommit until ``begin_snapshot``.
        """
        if self._dialect.name != "postgresql":
            raw = self._engine.raw_connection()
            if self._dialect.name == "sqlite":
                raw.driver_connection.execute("BEGIN")
            return raw
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self._engine.raw_connection()
            raw.driver_connection.autocommit = True
            # No parallel plans: a page reads a few hundred index entries, and starting the
            # workers takes 8-10 ms; the planner chose them when opaque filters (a walked page,
            # see statements.where) hid how few entries that would be.
            raw.driver_connection.execute("SET max_parallel_workers_per_gather = 0")
        return raw

    def discard(self, raw) -> None:
        """Forget a connection that failed (the database went away): the next call makes one."""
        if getattr(self._local, "raw", None) is raw:
            self._local.raw = None
        try:
            raw.invalidate()
        except Exception:  # already unusable: nothing more to release
            pass

    @property
    def pinned(self) -> bool:
        return self._dialect.name == "postgresql"

    @property
    def disconnects(self) -> tuple[type[Exception], ...]:
        """What the driver raises when the connection is gone."""
        module = self._dialect.loaded_dbapi
        return (module.OperationalError, module.InterfaceError)

    def known_generation(self, sources):
        """The generation signature of ``sources`` read earlier, if nothing was committed to the
        database since (SQLite's ``PRAGMA data_version`` tells in microseconds); else None.
        Never stale: a commit by any connection changes data_version, and a signature is kept
        only under the version seen before it was read."""
        if self._versions is None:
            return None
        version = self._versions.current()
        with self._lock:
            if version != self._versions.seen:
                self._versions.seen = version
                self._generations.clear()
                return None
            return self._generations.get(sources)

    def remember_generation(self, sources, generation) -> None:
        if self._versions is not None:
            with self._lock:
                if len(self._generations) > 1000:
                    self._generations.clear()
                self._generations[sources] = generation

    def estimated_listings(self, raw) -> int:
        """About how many listings there are, from the planner's statistics (refreshed once a
        minute; 0 when there are none)."""
        when, count = self._estimate
        if time.monotonic() - when < ESTIMATE_SECONDS:
            return count
        sql = _ESTIMATES.get(self._dialect.name)
        count = 0
        if sql is not None:
            cursor = raw.cursor()
            try:
                cursor.execute(sql)
                found = cursor.fetchone()
                count = max(int(found[0]), 0) if found and found[0] is not None else 0
            except Exception:  # no statistics yet (a new database): plan as if small
                count = 0
            finally:
                try:
                    cursor.close()
                except self.disconnects:
                    pass
        self._estimate = (time.monotonic(), count)
        return count


class _DataVersion:
    """``PRAGMA data_version`` on a connection of its own (one per thread), which never writes:
    the value changes whenever another connection commits."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._local = threading.local()
        self.seen = None

    def current(self) -> int:
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self._engine.raw_connection()
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return cursor.fetchone()[0]
        finally:
            cursor.close()


class ReadSession:
    """The reads of one call: one DB-API connection, taken at the first read and given back by
    ``close``. On PostgreSQL, reads before ``begin_snapshot`` are autocommit (a cached answer's
    generation check is one round trip); after it, one REPEATABLE READ READ ONLY snapshot."""

    def __init__(self, reader: Reader):
        self._reader = reader
        self._raw = None
        self._read = False  # a read happened outside a snapshot
        self._snapshot = False

    def begin_snapshot(self) -> bool:
        """Start the snapshot the rest of the call reads from; True when reads happened before
        it (their results may be older than the snapshot: read them again if they matter)."""
        if not self._reader.pinned or self._snapshot:
            return False
        read_before = self._read
        self._execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None)
        self._snapshot = True
        return read_before

    def rows(self, statement: Select, values: dict[str, Any]) -> list[tuple]:
        prepared = self._reader.prepare(statement)
        return self._execute(prepared.sql, prepared.parameters(values), prepared)

    def _execute(self, sql: str, parameters, prepared: Prepared | None = None):
        for attempt in (1, 2):
            if self._raw is None:
                self._raw = self._reader.checkout()
            cursor = self._raw.cursor()
            try:
                cursor.execute(sql, parameters)
                if prepared is None:
                    return None
                self._read = self._read or not self._snapshot
                return prepared.process(cursor.fetchall(), cursor.description)
            except self._reader.disconnects as exc:
                # The database went away since the last call: a kept connection is dead. Once, and
                # only before anything was read in a snapshot, a new connection may try again.
                self._reader.discard(self._raw)
                self._raw = None
                if attempt == 2 or self._snapshot:
                    raise exc
            finally:
                try:
                    cursor.close()
                except self._reader.disconnects:
                    pass

    def one(self, statement: Select, values: dict[str, Any]) -> tuple:
        rows = self.rows(statement, values)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    def prefer_index_order(self) -> None:
        """PostgreSQL: until allow_sorts, read pages in an index's order rather than collect and
        sort (SQLite is steered by how its SQL is written instead). Every sort is disabled, so
        a statement read meanwhile must need none (PageShape.ordered_by_caller)."""
        if self._reader.pinned:
            self.begin_snapshot()
            self._execute("SET LOCAL enable_sort = off", None)

    def allow_sorts(self) -> None:
        """Undo prefer_index_order for the rest of the snapshot."""
        if self._reader.pinned and self._snapshot:
            self._execute("SET LOCAL enable_sort = on", None)

    @property
    def plans_by_count(self) -> bool:
        """Whether searches should choose their plan from their exact count (see search.py)."""
        return self._reader.dialect == "sqlite"

    def known_generation(self, sources):
        return self._reader.known_generation(sources)

    def remember_generation(self, sources, generation) -> None:
        self._reader.remember_generation(sources, generation)

    def estimated_listings(self) -> int:
        if self._raw is None:
            self._raw = self._reader.checkout()
        return self._reader.estimated_listings(self._raw)

    def close(self) -> None:
        if self._raw is None:
            return
        raw, self._raw = self._raw, None
        if not self._reader.pinned:
            raw.close()  # back to the pool, rolled back
        elif self._snapshot:
            try:
                raw.driver_connection.execute("ROLLBACK")
            except self._reader.disconnects:
                self._reader.discard(raw)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _compile(statement: Select, dialect) -> Prepared:
    compiled = statement.compile(dialect=dialect)
    binders = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binders[compiled.bind_names.get(bind, name)] = process
    positional = tuple(compiled.positiontup) if compiled.positional else None
    types = [column.type for column in statement.selected_columns]
    return Prepared(compiled.string, compiled, positional, binders, types, dialect)
