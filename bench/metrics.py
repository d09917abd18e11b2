"""What metrics cost: a SOAP call's counters, and a /metrics scrape at a large listing count.

    python -m bench.metrics [--listings 1000000] [--sources 190] [--database-url URL]

1. Per call: ``SoapMetrics.observe`` (the endpoint's observer: a counter, a histogram and a
   rows counter) in prometheus_client's multiprocess mode, as gunicorn workers run it, against
   a call that does nothing; microseconds per call.
2. Per scrape: the feed collector (every source's latest run, last success, listing and photo
   counts, queue) over a database holding ``--listings`` listings with two photos each, filled
   by one INSERT ... SELECT (the count triggers run for every row, as for any writer); the median
   of 20 scrapes, next to counting the listings directly, which is what the count tables spare.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
PER_CALL = """
import time
from service.metrics import SoapMetrics
metrics = SoapMetrics()
calls = 200_000
for outcome in ("ok", "Client.InvalidArgument"):
    metrics.observe("SearchListings", outcome, 0.003, 25)
started = time.perf_counter()
for n in range(calls):
    metrics.observe("SearchListings", "ok", 0.003, 25)
spent = time.perf_counter() - started
started = time.perf_counter()
noop = lambda operation, outcome, seconds, rows: None
for n in range(calls):
    noop("SearchListings", "ok", 0.003, 25)
base = time.perf_counter() - started
print(f"{(spent - base) / calls * 1e6:.2f}")
"""


def per_call_microseconds() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder}
        out = subprocess.run([sys.executable, "-c", PER_CALL], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True)
    return float(out.stdout.strip())


def fill(url: str, listings: int, sources: int) -> None:
    from core import db
    from core.db import make_engine

    db.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.scalar(text("SELECT count(*) FROM sources")):
            return
        for n in range(sources):
            conn.execute(text("INSERT INTO sources (id, name, timezone, earliest_download, enabled, download, parse, "
                              "images, state, max_removed_share, data_generation, created_at, updated_at) VALUES "
                              "(:id, :id, 'UTC', '02:00:00', 1, '{}', '{}', '{}', '{}', 0.1, 0, "
                              "'2026-12-01 00:00:00', '2026-12-01 00:00:00')"), {"id": f"mls{n:03d}"})
        conn.execute(text(f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {listings - 1})
            INSERT INTO listings (source_id, listing_key, standard_status, photos_count, extra, first_seen, last_seen)
            SELECT printf('mls%03d', i % {sources}), printf('K%09d', i),
                   CASE i % 5 WHEN 0 THEN 'Pending' WHEN 1 THEN 'Closed' ELSE 'Active' END, 2, '{{}}',
                   '2026-12-01 00:00:00', '2026-12-01 00:00:00' FROM n"""))
        conn.execute(text("INSERT INTO media (listing_id, \"order\", storage_key) "
                          "SELECT id, o, 'photos/' || id || '/' || o FROM listings, (SELECT 1 AS o UNION ALL SELECT 2)"))
        for n in range(sources):  # a day of runs per source: a latest one, a success
            for status in ("succeeded", "failed"):
                conn.execute(text("INSERT INTO feed_runs (source_id, business_date, kind, slot, status, step, attempt, "
                                  "created_at, started_at, finished_at, step_timings, bytes_downloaded, rows_parsed, "
                                  "rows_rejected, rows_inserted, rows_updated, rows_unchanged, rows_removed, "
                                  "rows_geocoded, photos_fetched, photos_stored, photos_unchanged, photos_removed, "
                                  "photos_failed, photos_linked, photo_bytes, raw_keys, removals_held, images_ready, "
                                  "images_attempt) VALUES (:s, '2026-12-01', 'full', :slot, :status, 'done', 0, "
                                  "'2026-12-01 02:00:00', '2026-12-01 02:00:00', '2026-12-01 02:10:00', '{}', "
                                  "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,'{}',0,0,0)"),
                             {"s": f"mls{n:03d}", "slot": status, "status": status})
    engine.dispose()


def scrape_milliseconds(url: str) -> tuple[float, float, int]:
    from prometheus_client import CollectorRegistry, generate_latest

    from core.db import make_engine, session_factory
    from core.models import Listing
    from service.metrics import FeedCollector

    engine = make_engine(url)
    sessions = session_factory(engine)
    collector = FeedCollector(sessions)
    times = []
    for _ in range(20):
        registry = CollectorRegistry()
        registry.register(collector)
        started = time.perf_counter()
        body = generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    with sessions() as session:
        started = time.perf_counter()
        session.execute(select(Listing.source_id, Listing.standard_status, func.count())
                        .group_by(Listing.source_id, Listing.standard_status)).all()
        counting = (time.perf_counter() - started) * 1000
    engine.dispose()
    return statistics.median(times), counting, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=190)
    parser.add_argument("--database-url", help="default: a SQLite file under var/bench/ (reused when it exists)")
    args = parser.parse_args()
    print(f"per SOAP call, multiprocess mode: {per_call_microseconds():.2f} µs (observe minus a no-op call)")
    url = args.database_url or f"sqlite:///{ROOT / 'var' / 'bench' / f'metrics-{args.listings}x{args.sources}.db'}"
    started = time.perf_counter()
    fill(url, args.listings, args.sources)
    print(f"database ready in {time.perf_counter() - started:.0f} s: {args.listings:,} listings, "
          f"{2 * args.listings:,} photos, {args.sources} sources")
    scrape, counting, size = scrape_milliseconds(url)
    print(f"feed metrics scrape: {scrape:.1f} ms median of 20 ({size:,} bytes); "
          f"counting the listings instead: {counting:.0f} ms")


if __name__ == "__main__":
    main()
