"""Listing load rate: parse + map + upsert, against a raw bulk insert of the same rows.

    python -m bench.load [--rows 200000] [--database-url URL] [--memory-rows 2000000]

For each database (SQLite always; PostgreSQL when --postgres-url or MLSFEEDS_TEST_POSTGRES_URL
is given) it prints rows/s of
  * mlsfeeds: a delimited feed file → the delimited parser → Mapper → load_listings (upsert);
  * baseline: the same rows, already mapped, in one executemany INSERT per 2,000 rows;
and their ratio. Then the peak memory (tracemalloc) of parsing and mapping a feed ten times
larger, which must stay flat. Figures, not assertions: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from core import db
from core.models import Listing, Source
from pipeline.loader import load_listings, row_values
from pipeline.mapping import Mapper
from pipeline.parsers import parser_for
from sandbox.listings import synthetic_listings

COLUMNS = {
    "ListingKey": "LIST_KEY", "ListingId": "MLS_NUM", "StandardStatus": "STATUS", "PropertyType": "PTYPE",
    "ListPrice": "PRICE", "BedroomsTotal": "BEDS", "BathroomsTotalInteger": "BATHS", "LivingArea": "SQFT",
    "UnparsedAddress": "ADDRESS", "City": "CITY", "StateOrProvince": "STATE", "PostalCode": "ZIP",
    "Latitude": "LAT", "Longitude": "LNG", "ModificationTimestamp": "MODIFIED", "PhotosCount": "PHOTOS",
}
PARSE_SPEC = {"format": "delimited", "delimiter": "|", "fields": COLUMNS, "values": {}, "defaults": {}}


def write_feed(path: Path, rows: int, seed: int = 3) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="|")
        writer.writerow(COLUMNS.values())
        for record in synthetic_listings(rows, ["bench"], seed):
            writer.writerow(["" if record.get(k) is None else _text(record[k]) for k in COLUMNS])


def _text(value) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def mapped_records(path: Path):
    mapper = Mapper(PARSE_SPEC, "UTC")
    with open(path, "rb") as stream:
        for raw in parser_for("delimited").records(stream, PARSE_SPEC):
            yield mapper.map(raw)


def fresh_schema(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    name = f"mlsfeeds_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).unlink(missing_ok=True)
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {parsed.database} WITH (FORCE)"))
    admin.dispose()


def measure_pipeline(url: str, feed: Path) -> tuple[float, int]:
    sessions = db.session_factory(db.make_engine(url))
    with sessions() as session:
        session.add(Source(id="bench", name="bench", download={}, parse={}, images={}, state={}))
        session.commit()
        started = time.perf_counter()
        counts = load_listings(session, "bench", mapped_records(feed), dt.datetime.now(dt.timezone.utc))
        session.commit()
        return time.perf_counter() - started, counts.inserted


def measure_baseline(url: str, feed: Path) -> tuple[float, int]:
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{**row_values(r), "source_id": "bench", "first_seen": now, "last_seen": now} for r in mapped_records(feed)]
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Source), [{"id": "bench", "name": "bench", "download": {}, "parse": {}, "images": {},
                                       "state": {}, "timezone": "UTC", "earliest_download": dt.time(2),
                                       "enabled": True, "created_at": now, "updated_at": now}])
    started = time.perf_counter()
    with engine.begin() as conn:
        iterator = iter(rows)
        while chunk := list(islice(iterator, 2000)):
            conn.execute(insert(Listing), chunk)
    return time.perf_counter() - started, len(rows)


def one_database(label: str, base_url: str, feed: Path) -> tuple[float, float]:
    results = []
    for measure in (measure_pipeline, measure_baseline):
        url = fresh_schema(base_url)
        try:
            db.upgrade(url)
            seconds, rows = measure(url, feed)
            results.append(rows / seconds)
        finally:
            drop(url)
    ours, raw = results
    print(f"{label:<10} {ours:>12,.0f} {raw:>14,.0f} {ours / raw:>8.2f}")
    return ours, raw


def _vm(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_memory(rows: int, tmp: Path) -> None:
    """Resident memory growth while parsing and mapping a feed ``rows`` long, in a fresh process
    (tracemalloc would slow a 2-million-row pass fivefold and miss C allocations)."""
    import subprocess
    import sys

    big = tmp / "big.txt"
    write_feed(big, rows, seed=9)
    size = big.stat().st_size
    # VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss across exec into the child.
    script = (
        "import sys; from bench.load import mapped_records, _vm; "
        "base = _vm('VmRSS'); n = sum(1 for _ in mapped_records(sys.argv[1])); "
        "peak = _vm('VmHWM'); print(n, peak - base, peak)"
    )
    out = subprocess.run([sys.executable, "-c", script, str(big)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    count, grown_kb, peak_kb = int(out[0]), int(out[1]), int(out[2])
    print(f"\nparsing + mapping {count:,} rows ({size / 1e6:,.0f} MB feed): peak RSS {peak_kb / 1024:.0f} MB, "
          f"{grown_kb / 1024:.1f} MB above the process's size before parsing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--memory-rows", type=int, default=2_000_000, help="rows of the big feed (10x)")
    parser.add_argument("--postgres-url", default=os.environ.get("MLSFEEDS_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        feed = tmp / "feed.txt"
        write_feed(feed, args.rows)
        print(f"{args.rows:,} listings, pipe-delimited feed of {feed.stat().st_size / 1e6:.0f} MB; cpus: {os.cpu_count()}\n")
        print(f"{'database':<10} {'mlsfeeds r/s':>12} {'raw insert r/s':>14} {'ratio':>8}")
        one_database("sqlite", f"sqlite:///{tmp / 'bench.db'}", feed)
        if args.postgres_url:
            one_database("postgres", args.postgres_url, feed)
        if args.memory_rows:
            peak_memory(args.memory_rows, tmp)


if __name__ == "__main__":
    main()
