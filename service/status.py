"""The operator's status page: ``/status`` (every source, what needs a person first) and
``/status/<source>`` (its last 30 runs, charts of durations and listings, recent rejects).

Server-rendered HTML (Jinja2, autoescaped), no JavaScript: it refreshes itself every minute and
reads on a phone. Behind HTTP Basic: operators only (consumers get 403; no or wrong
credentials 401 with a Basic challenge, so a browser asks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import unquote

import jinja2
from sqlalchemy.orm import Session, sessionmaker

from core import overview
from core.models import Source
from core.types import utcnow
from service import charts
from service.auth import Authenticator, Caller, from_basic
from service.errors import AuthenticationFailed

REFRESH_SECONDS = 60
HISTORY = 30
HTML = "text/html; charset=utf-8"
CHALLENGE = ("WWW-Authenticate", 'Basic realm="mlsfeeds operators", charset="UTF-8"')


class StatusPages:
    """The WSGI app behind /status and /status/<source>."""

    def __init__(self, sessions: sessionmaker[Session], authenticator: Authenticator,
                 clock: Callable[[], dt.datetime] = utcnow):
        self._sessions = sessions
        self._auth = authenticator
        self._clock = clock
        self._templates = templates()

    def __call__(self, environ, start_response):
        with self._sessions() as session:
            refusal = self._refusal(session, environ)
            if refusal is not None:
                return _respond(start_response, *refusal)
            source_id = unquote(environ.get("PATH_INFO", "").removeprefix("/status").strip("/"))
            page = self._source_page(session, source_id) if source_id else self._overview(session)
        if page is None:
            return _respond(start_response, "404 Not Found", self._render("missing.html", source=source_id))
        return _respond(start_response, "200 OK", page)

    def _refusal(self, session: Session, environ) -> tuple[str, bytes, list] | None:
        try:
            credentials = from_basic(environ)
            if credentials is None:
                raise AuthenticationFailed("log in as an operator")
            caller: Caller = self._auth.check(session, credentials)
        except AuthenticationFailed as exc:
            return "401 Unauthorized", self._render("refused.html", reason=str(exc)), [CHALLENGE]
        if not caller.is_operator:
            return "403 Forbidden", self._render("refused.html", reason=f"{caller.name} is not an operator"), []
        return None

    def _overview(self, session: Session) -> bytes:
        now = self._clock()
        views = overview.overview(session, now)
        return self._render("status.html", views=views, now=now, tally=_tally(views),
                            queue=overview.unfinished_runs(session), oldest=overview.oldest_queued(session))

    def _source_page(self, session: Session, source_id: str) -> bytes | None:
        source = session.get(Source, source_id)
        if source is None:
            return None
        now = self._clock()
        view = next(v for v in overview.overview(session, now) if v.id == source_id)
        runs = overview.history(session, source_id, HISTORY)
        return self._render("source.html", view=view, runs=runs, now=now,
                            rejects=overview.recent_rejects(session, runs),
                            durations=_duration_chart(runs), listings=_listings_chart(runs))

    def _render(self, name: str, **values) -> bytes:
        return self._templates.get_template(name).render(refresh=REFRESH_SECONDS, **values).encode()


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("service", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(ago=ago, when=when, seconds=seconds, number=lambda n: f"{n or 0:,}")
    env.globals.update(run_seconds=run_seconds)
    return env


def _tally(views) -> dict[str, int]:
    tally: dict[str, int] = {}
    for view in views:
        tally[view.state] = tally.get(view.state, 0) + 1
    return tally


def run_seconds(run) -> float | None:
    if run.started_at is None:
        return None
    return ((run.finished_at or utcnow()) - run.started_at).total_seconds()


def _duration_chart(runs) -> str:
    points = [charts.Point(f"#{r.id} {r.kind} {r.status}", run_seconds(r)) for r in reversed(runs)]
    return charts.bars(points, "s", "run durations, oldest first")


def _listings_chart(runs) -> str:
    points = [charts.Point(f"#{r.id} {r.business_date}", r.listings_active) for r in reversed(runs)]
    return charts.line(points, "listings", "listings after each run, oldest first")


# -- template filters -------------------------------------------------------------------------------

def ago(delta: dt.timedelta | None) -> str:
    """A duration as a person says it: 3 min, 5 h 12 min, 2 d 4 h."""
    if delta is None:
        return "never"
    return seconds(delta.total_seconds())


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = int(value)
    if value < 60:
        return f"{value} s"
    minutes, hours, days = value // 60, value // 3600, value // 86400
    if value < 3600:
        return f"{minutes} min"
    if value < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def _respond(start_response, status: str, body: bytes, headers=()):
    start_response(status, [("Content-Type", HTML), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *headers])
    return [body]
