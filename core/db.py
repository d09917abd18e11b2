"""Engines, sessions and schema upgrades.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the service's readers
never block the worker's writer. ``immediate=True`` makes every transaction ``BEGIN IMMEDIATE``:
the balancer uses it to claim work without two writers racing to upgrade their locks.
"""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, immediate: bool = False, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # No JIT: it compiles for 100 ms and more whenever a plan looks costly (a count over a
        # few hundred thousand rows), longer than such a query runs without it.
        return create_engine(url, echo=echo, pool_pre_ping=True, connect_args={"options": "-c jit=off"})
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
    _configure_sqlite(engine, immediate)
    return engine


def _configure_sqlite(engine: Engine, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's begin event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Reads through the OS page cache instead of copying pages in: at a million listings a
        # search touches pages all over a 1.5 GB file. (Address space only, shared by processes.)
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.execute("PRAGMA cache_size=-16384")  # 16 MB of SQLite's own cache per connection
        cursor.close()
        _ensure_math_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _ensure_math_functions(dbapi_connection) -> None:
    """Radius search needs sin/cos/asin/sqrt/radians; older SQLite builds lack them."""
    try:
        dbapi_connection.execute("SELECT sin(0), asin(0), radians(0), sqrt(0)")
    except Exception:  # sqlite3.OperationalError: no such function
        for name in ("sin", "cos", "asin", "sqrt", "radians"):
            dbapi_connection.create_function(name, 1, getattr(math, name), deterministic=True)


def refresh_statistics(engine: Engine, tables: tuple[str, ...] = ("listings",)) -> None:
    """Refresh the planner's statistics of ``tables`` (after a large load; see pipeline/balancer).

    Without them SQLite drives searches through the wrong index; on PostgreSQL, VACUUM also sets
    the visibility map that lets counts and page choices read indexes alone. It runs outside a
    transaction, beside the service's reads.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        return
    analyze = "ANALYZE {}" if engine.dialect.name == "sqlite" else "ANALYZE TABLE {}"
    with engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(analyze.format(table))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at ``url``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Fail if the models and the migrations disagree (``alembic check``)."""
    from alembic import command

    command.check(alembic_config(url))
