"""Time, as the database sees it: leases are compared on one clock, whatever host runs the worker."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.types import utcnow


def db_now(session: Session) -> dt.datetime:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return session.execute(text("SELECT now()")).scalar_one().astimezone(dt.timezone.utc)
    if dialect in ("mysql", "mariadb"):
        value = session.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
        return value.replace(tzinfo=dt.timezone.utc)
    return utcnow()  # SQLite: one machine, so the local clock is the database's clock
