"""``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: what it serves from works).

A load balancer takes a host out of rotation on a failed ``/readyz`` and an orchestrator
restarts a process on a failed ``/healthz``: so ``/healthz`` checks nothing outside the process
(a database outage must not restart every service), and ``/readyz`` checks the database (the
schema is there: a query of ``alembic_version``) and, where this service serves photo links
from a local folder, that folder. It answers 503 with the reason of each failed check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text

Check = Callable[[], None]  # raises when what it checks is down
TEXT = "text/plain; charset=utf-8"


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT version_num FROM alembic_version")).first()

    return check


def folder_check(root: Path) -> Check:
    def check() -> None:
        with os.scandir(root) as entries:
            next(entries, None)

    return check


class Readiness:
    """The WSGI app behind GET /readyz; ``checks`` maps a name to its check."""

    def __init__(self, checks: dict[str, Check]):
        self._checks = checks

    def __call__(self, environ, start_response):
        lines, ready = [], True
        for name, check in self._checks.items():
            try:
                check()
                lines.append(f"{name}: ok")
            except Exception as exc:  # any failure of a dependency is the answer, not an error
                ready = False
                lines.append(f"{name}: down: {_reason(exc)}")
        status = "200 OK" if ready else "503 Service Unavailable"
        body = ("ready\n" if ready else "not ready\n") + "\n".join(lines) + "\n"
        return respond(start_response, status, body.encode())


def liveness(environ, start_response):
    return respond(start_response, "200 OK", b"ok\n")


def _reason(exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first}"[:300]


def respond(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", TEXT), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
    return [body]
