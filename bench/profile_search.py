"""Where one SearchListings request spends its time, in-process, without gunicorn or sockets.

    python -m bench.profile_search [--requests 30] [--database-url URL] [--cprofile]

It calls the real WSGI app (``service.app.create_app``) with the same envelope and credentials
as bench/soap_search.py, on the database that benchmark built (run it first), and times each
stage by wrapping functions in this process only (nothing in the service is changed):

  spyne parse+validate   Soap11 in-protocol: parse the envelope, lxml schema validation
  spyne deserialize      the body into Python arguments
  auth                   Authenticator.authenticate (client row + entitlements, cached scrypt)
  SQL page               the SELECT ... ORDER BY ... LIMIT 26 (cursor time)
  SQL count              the SELECT count(*) (cursor time)
  search, rest           search() minus its SQL: building statements, ORM rows, page token
  ListingSummary         turning 25 ORM rows into spyne objects
  spyne serialize        out-protocol: objects to XML bytes
  other                  the rest of the request: session open/commit, dispatch, spyne glue

With --cprofile it also prints the top functions of a cProfile run. The plans of the two
listing queries are printed at the end (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on
PostgreSQL).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.soap_search import (  # noqa: E402
    ENVELOPE, REQUEST_HEADERS, SECRET_KEY, Response, check_search_response, default_database_url,
    _listings_per_source,
)

STAGES = ["spyne parse+validate", "spyne deserialize", "auth", "SQL page", "SQL count",
          "search, rest", "ListingSummary", "spyne serialize", "other"]


class Timer:
    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)
        self.runs: list[dict[str, float]] = []

    def add(self, stage: str, seconds: float) -> None:
        self.current[stage] += seconds

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t0)
        return timed

    def finish(self, total: float) -> None:
        run = dict(self.current)
        run["total"] = total
        self.runs.append(run)
        self.current = defaultdict(float)


def environ_for(body: bytes) -> dict:
    env = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/soap", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in REQUEST_HEADERS.items():
        key = name.upper().replace("-", "_")
        env[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    return env


def call(app) -> Response:
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, headers

    body = b"".join(app(environ_for(ENVELOPE), start_response))
    return Response(got["status"], got["headers"], body)


def build(url: str, timer: Timer):
    """The service's WSGI app, with its stages wrapped for ``timer``; and its engine."""
    import service.api
    import service.search
    from core.settings import Settings
    from service import app as app_module
    from service.auth import Authenticator

    settings = Settings.from_env({
        "MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET_KEY, "MLSFEEDS_LOG_LEVEL": "WARNING",
    })
    engines = []
    make_engine = app_module.make_engine

    def keep_engine(*args, **kwargs):
        engines.append(make_engine(*args, **kwargs))
        return engines[-1]

    app_module.make_engine = keep_engine
    dispatcher = app_module.create_app(settings)
    app_module.make_engine = make_engine
    engine = engines[0]

    soap = dispatcher._soap
    soap.generate_contexts = timer.wrap("spyne parse+validate", soap.generate_contexts)
    soap.get_in_object = timer.wrap("spyne deserialize", soap.get_in_object)
    soap.get_out_string = timer.wrap("spyne serialize", soap.get_out_string)
    Authenticator.authenticate = timer.wrap("auth", Authenticator.authenticate)
    service.api._summary = timer.wrap("ListingSummary", service.api._summary)
    service.api.search = timer.wrap("search", service.search.search)

    statements: dict[str, tuple[str, object]] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info["t0"].pop()
        kind = classify(statement)
        timer.add(kind, elapsed)
        statements.setdefault(kind, (statement, parameters))

    return dispatcher, engine, statements


def classify(statement: str) -> str:
    head = " ".join(statement.split()).lower()
    if "from listings" in head:
        return "SQL count" if head.startswith("select count(") else "SQL page"
    if "from clients" in head or "from client_sources" in head:
        return "SQL auth"
    return "SQL other"


def summarise(timer: Timer) -> list[tuple[str, float, float]]:
    """(stage, median ms, share of total) per stage, with nested stages taken out of their parents."""
    rows = []
    per_stage: dict[str, list[float]] = defaultdict(list)
    for run in timer.runs:
        sql_auth = run.get("SQL auth", 0.0)
        derived = {
            "spyne parse+validate": run.get("spyne parse+validate", 0.0),
            "spyne deserialize": run.get("spyne deserialize", 0.0),
            "auth": run.get("auth", 0.0),  # its SQL (client + entitlements) included
            "SQL page": run.get("SQL page", 0.0),
            "SQL count": run.get("SQL count", 0.0),
            "search, rest": run.get("search", 0.0) - run.get("SQL page", 0.0) - run.get("SQL count", 0.0),
            "ListingSummary": run.get("ListingSummary", 0.0),
            "spyne serialize": run.get("spyne serialize", 0.0),
        }
        derived["other"] = run["total"] - sum(derived.values())
        derived["total"] = run["total"]
        derived["(auth's SQL)"] = sql_auth
        derived["(other SQL)"] = run.get("SQL other", 0.0)
        for stage, seconds in derived.items():
            per_stage[stage].append(seconds * 1000)
    total = statistics.median(per_stage["total"])
    for stage in STAGES + ["total", "(auth's SQL)", "(other SQL)"]:
        median = statistics.median(per_stage[stage])
        rows.append((stage, median, median / total if total else 0.0))
    return rows


def explain(engine, statements: dict) -> str:
    out = []
    backend = engine.dialect.name
    with engine.connect() as conn:
        for kind in ("SQL page", "SQL count"):
            if kind not in statements:
                continue
            statement, parameters = statements[kind]
            prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            out.append(f"-- {kind}:\n   " + " ".join(statement.split()))
            if backend == "sqlite":
                out += [f"   {r[-1]}" for r in rows]
            else:
                out += [f"   {r[0]}" for r in rows]
        conn.rollback()
    return "\n".join(out)


@contextmanager
def quiet_logging():
    import logging

    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_search", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests after 3 warm-up ones (default 30)")
    parser.add_argument("--database-url", metavar="URL", help="default: the SQLite file bench.soap_search built")
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--sources", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    url = args.database_url or default_database_url(args.listings, args.sources)
    if make_url(url).get_backend_name() == "sqlite" and not Path(make_url(url).database).exists():
        raise SystemExit(f"bench/profile_search: no database at {url}: run python -m bench.soap_search first")
    listings = sum(_listings_per_source(url).values())

    timer = Timer()
    app, engine, statements = build(url, timer)
    with quiet_logging():
        total, count = check_search_response(call(app))
        for _ in range(3):  # warm-up: spyne and SQLAlchemy caches, the scrypt check
            call(app)
        timer.runs.clear()
        timer.current.clear()
        for _ in range(args.requests):
            t0 = time.perf_counter()
            call(app)
            timer.finish(time.perf_counter() - t0)

    print(f"SearchListings in-process, {args.requests} requests, median per request")
    print(f"  database  {make_url(url).render_as_string(hide_password=True)} ({listings:,} listings)")
    print(f"  response  TotalCount {total:,}, {count} ListingSummary")
    print()
    print(f"  {'stage':<24} {'ms':>9} {'share':>7}")
    for stage, ms, share in summarise(timer):
        print(f"  {stage:<24} {ms:>9.2f} {share:>7.1%}")
    print()
    print(explain(engine, statements))

    if args.cprofile:
        profiler = cProfile.Profile()
        with quiet_logging():
            profiler.enable()
            for _ in range(args.requests):
                call(app)
            profiler.disable()
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(args.top)
            print(f"\n-- cProfile, {args.requests} requests, by {order}:")
            print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:8000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
