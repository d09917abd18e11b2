"""Throwaway databases: a fresh SQLite file, or a fresh database on the PostgreSQL / MariaDB
server named by MLSFEEDS_TEST_POSTGRES_URL / MLSFEEDS_TEST_MARIADB_URL, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core import db

POSTGRES_ENV = "MLSFEEDS_TEST_POSTGRES_URL"
MARIADB_ENV = "MLSFEEDS_TEST_MARIADB_URL"


def server_url(backend: str) -> str | None:
    return {"postgres": os.environ.get(POSTGRES_ENV), "mariadb": os.environ.get(MARIADB_ENV)}.get(backend)


@contextmanager
def fresh_database(backend: str, tmp_dir: Path):
    """Yields the URL of an empty database with the schema at head."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir / 'mlsfeeds.db'}"
        db.upgrade(url)
        yield url
        return
    base = make_url(server_url(backend))
    name = f"mlsfeeds_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        db.upgrade(url)
        yield url
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if backend == "postgres" else "")
        with admin.connect() as conn:
            conn.execute(text(drop))
        admin.dispose()
