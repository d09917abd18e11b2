"""Where one SearchListings request spends its time, in-process, without gunicorn or sockets.

    python -m bench.profile_search [--requests 500] [--page-size 25] [--no-answer-cache]
                                   [--pages] [--database-url URL] [--cprofile]

It calls the real WSGI app (``service.app.create_app``) with the envelope and credentials of
bench/soap_search.py, on the database that benchmark built (run it first), and prints the
median time of each stage, measured by wrapping functions in this process only:

  read           media type, charset, parse, SOAP rules (service/envelope.py), skipped for
                 bytes already read
  decode         the operation's arguments against the contract (service/decode.py)
  auth           Authenticator.check (a verified password is cached for 30 s)
  answer key     the arguments, the caller's sources and their data generation
  SQL page       the page query (the reader's cursor time)
  SQL count      the count query, when no cache or token has it
  encode         the response envelope (service/encode.py)
  whole call     the WSGI call, everything included

By default the same request is repeated, as bench/soap_search.py's "same request" mode does,
so the answer cache serves it. ``--no-answer-cache`` turns that off; ``--pages`` walks every
page of the search through its tokens instead of repeating page 1. ``--cprofile`` adds
cProfile's top functions. The plan of the page query is printed at the end (EXPLAIN QUERY PLAN
on SQLite, EXPLAIN ANALYZE on PostgreSQL).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from bench.soap_search import NS, REQUEST_HEADERS, SECRET_KEY, default_database_url, envelope  # noqa: E402

STAGES = {
    "read": ("service.envelope", "document_bytes", "parse", "read_message"),
    "decode": ("service.decode", "Operation.decode"),
    "auth": ("service.auth", "Authenticator.check"),
    "answer key": ("service.operations", "search_listings_key"),
    "SQL page": ("service.search", "_page"),
    "SQL count": ("service.search", "_count"),
    "encode": ("service.encode", "Encoder.response"),
}


def instrument(times: dict[str, list[float]]) -> None:
    """Wrap each stage's functions so that every call adds its duration to ``times``."""
    import importlib

    for stage, (module_name, *names) in STAGES.items():
        module = importlib.import_module(module_name)
        for name in names:
            owner, _, attribute = name.rpartition(".")
            target = getattr(module, owner) if owner else module
            setattr(target, attribute, _timed(getattr(target, attribute), stage, times))
    import service.endpoint
    import service.operations

    # Modules that imported a stage's function by name hold the original: point them at the wrapper.
    service.operations.ANSWER_KEYS["SearchListings"] = service.operations.search_listings_key
    service.endpoint.ANSWER_KEYS = service.operations.ANSWER_KEYS


def _timed(function, stage: str, times: dict[str, list[float]]):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[stage][-1] += time.perf_counter() - started

    return timed


def radius_envelope(centre: str):
    """``LAT,LON,MILES`` → an envelope function like soap_search.envelope, for that radius."""
    latitude, longitude, miles = (float(part) for part in centre.split(","))

    def body(page_size: int, token: str | None = None) -> bytes:
        page = f"<m:PageToken>{token}</m:PageToken>" if token else ""
        return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{NS}"><s:Body>'
                f"<m:SearchListings><m:Latitude>{latitude}</m:Latitude><m:Longitude>{longitude}</m:Longitude>"
                f"<m:RadiusMiles>{miles}</m:RadiusMiles><m:SortBy>ListPrice</m:SortBy>"
                f"<m:PageSize>{page_size}</m:PageSize>{page}</m:SearchListings></s:Body></s:Envelope>").encode()

    return body


def requests_for(app, page_size: int, pages: bool, count: int, envelope=envelope) -> list[bytes]:
    if not pages:
        return [envelope(page_size)] * count
    bodies, token = [], None
    while len(bodies) < count:
        bodies.append(envelope(page_size, token))
        token = etree.fromstring(call(app, bodies[-1])).findtext(f".//{{{NS}}}NextPageToken")
        if not token:
            break
    return (bodies * (count // len(bodies) + 1))[:count]


def call(app, body: bytes) -> bytes:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/soap", "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": REQUEST_HEADERS["Content-Type"], "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "HTTP_AUTHORIZATION": REQUEST_HEADERS["Authorization"]}
    status = []
    answer = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("200"):
        raise SystemExit(f"bench/profile_search: the service answered {status[0]}:\n{answer[:500]!r}")
    return answer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--page-size", type=int, default=25)
    parser.add_argument("--no-answer-cache", action="store_true")
    parser.add_argument("--pages", action="store_true", help="every page in turn, not page 1 again and again")
    parser.add_argument("--database-url", help="default: the database bench/soap_search.py built")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--radius", metavar="LAT,LON,MILES", help="search this radius instead of the bench request")
    args = parser.parse_args(argv)
    url = args.database_url or default_database_url(100_000, 5)
    from core.settings import Settings
    from service.app import create_app

    environ = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET_KEY, "MLSFEEDS_LOG_LEVEL": "WARNING",
               "MLSFEEDS_ANSWER_CACHE_MB": "0" if args.no_answer_cache else "32"}
    app = create_app(Settings.from_env(environ))
    bodies = requests_for(app, args.page_size, args.pages, args.requests,
                          radius_envelope(args.radius) if args.radius else envelope)
    for body in bodies[:50]:  # warm: statements compiled, caches filled
        call(app, body)
    times: dict[str, list[float]] = defaultdict(list)
    instrument(times)
    for body in bodies:
        for stage in list(STAGES) + ["whole call"]:
            times[stage].append(0.0)
        started = time.perf_counter()
        call(app, body)
        times["whole call"][-1] = time.perf_counter() - started
    print(f"SearchListings in-process, {len(bodies):,} calls, PageSize {args.page_size}, "
          f"{'every page in turn' if args.pages else 'the same request'}, "
          f"answer cache {'off' if args.no_answer_cache else 'on'}; median per call:")
    for stage, values in times.items():
        print(f"  {stage:12s} {statistics.median(values) * 1e6:9.1f} us")
    if args.cprofile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [call(app, body) for body in bodies])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    print_plan(url, args.page_size)
    return 0


def print_plan(url: str, page_size: int) -> None:
    from core.db import make_engine
    from service.reader import Reader
    from service.search import SearchQuery, _conditions
    from service.statements import PageShape, page_statement

    engine = make_engine(url)
    reader = Reader(engine)
    query = SearchQuery(statuses=("Active",), property_types=("Residential",), min_price=250_000,
                        max_price=750_000, sort_by="ListPrice")
    conditions, params = _conditions(query, None)
    prepared = reader.prepare(page_statement(PageShape(conditions, "ListPrice", False, False, False)))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
        cursor.execute(explain + prepared.sql, prepared.parameters({**params, "limit": page_size + 1}))
        print("\nplan of the page query:")
        for row in cursor.fetchall():
            print("  ", row[-1])
    finally:
        raw.rollback()
        raw.close()


if __name__ == "__main__":
    raise SystemExit(main())
