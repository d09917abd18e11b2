"""SearchListings latency at a million listings, every query shape, cold and warm, through HTTP.

    python -m bench.search_latency [--listings 1000000] [--calls 200]
                                   [--postgres-url postgresql+psycopg://root@127.0.0.1:5432/mlsfeeds_latency]

For each database (SQLite always; PostgreSQL when a URL is given): seed the listings once (the
bulk seed; reused when the database already holds them), serve it with ``gunicorn.conf.py`` (2
workers), and for each query shape and each sort (ListPrice and ModificationTimestamp, both
directions) measure, with one sequential keep-alive client:

- **cold**: the first call after a load. A load is simulated by changing one listing, which
  bumps its source's data generation: every cached count and answer for it is void, as after a
  real load.
- **p50 / p99** of ``--calls`` calls with fresh pages: the pages of the shape in order through
  their tokens (never an answer the service has cached), then the pages of the shape's next
  variant (another city, postal code, area) when one runs out.
- **page 20**: the 20th page reached through the token.

The shapes: the throughput bench's request (Active, Residential, 250,000-750,000), a postal code,
a city, a bounding box (±0.25° around a city), a 5-mile radius around it, ModifiedSince the last
7 days, and no filter at all. Variants are the busiest postal codes, cities and city centres of
the data. Nothing is asserted; the issue's bar is a cold call within 250 ms and a p99 within
20 ms. Figures go to var/bench/search_latency-last.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from lxml import etree  # noqa: E402
from sqlalchemy import func, select, text, update  # noqa: E402

from bench.soap_search import (  # noqa: E402
    NS, PASSWORD, SECRET_KEY, USER, WORK_DIR, gunicorn, prepare_database, source_ids,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SORTS = [("ListPrice", False), ("ListPrice", True), ("ModificationTimestamp", False), ("ModificationTimestamp", True)]
VARIANTS = 12
# A postal code has a few hundred listings (13 pages of 25): enough of them for --calls fresh pages.
POSTAL_VARIANTS = 40


def envelope(arguments: list[tuple[str, object]]) -> bytes:
    inner = "".join(f"<m:{name}>{value}</m:{name}>" for name, value in arguments if value is not None)
    return (f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:m="{NS}"><s:Body><m:SearchListings>{inner}'
            "</m:SearchListings></s:Body></s:Envelope>").encode()


def shapes(url: str) -> dict[str, list[list[tuple[str, object]]]]:
    """Each shape's variants, as SearchListings arguments, from the data itself."""
    from core.db import make_engine
    from core.models import Listing

    engine = make_engine(url)
    with engine.connect() as conn:
        live = Listing.removed_at.is_(None)
        cities = conn.execute(select(Listing.city, func.avg(Listing.latitude), func.avg(Listing.longitude))
                              .where(live).group_by(Listing.city).order_by(func.count().desc())
                              .limit(VARIANTS)).all()
        postal = conn.scalars(select(Listing.postal_code).where(live).group_by(Listing.postal_code)
                              .order_by(func.count().desc()).limit(POSTAL_VARIANTS)).all()
        newest = conn.scalar(select(func.max(Listing.modification_timestamp)))
    engine.dispose()
    since = (newest - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "bench request": [[("StandardStatus", "Active"), ("PropertyType", "Residential"),
                           ("MinPrice", 250_000), ("MaxPrice", 750_000)]],
        "postal code": [[("PostalCode", code)] for code in postal],
        "city": [[("City", city)] for city, _, _ in cities],
        "bounding box": [[("North", round(lat + 0.25, 4)), ("South", round(lat - 0.25, 4)),
                          ("East", round(lon + 0.25, 4)), ("West", round(lon - 0.25, 4))] for _, lat, lon in cities],
        "5-mile radius": [[("Latitude", round(lat, 4)), ("Longitude", round(lon, 4)), ("RadiusMiles", 5)]
                          for _, lat, lon in cities],
        "modified 7 days": [[("ModifiedSince", since)]],
        "no filter": [[]],
    }


def ordered(arguments, sort_by: str, descending: bool, token: str | None) -> list[tuple[str, object]]:
    """The arguments in the order the contract's sequence wants, with the sort and the page."""
    order = ["SourceId", "City", "PostalCode", "StandardStatus", "PropertyType", "MinPrice", "MaxPrice",
             "MinBedrooms", "MinBathrooms", "North", "South", "East", "West", "Latitude", "Longitude",
             "RadiusMiles", "ModifiedSince"]
    tail = [("SortBy", sort_by), ("SortDescending", "true" if descending else "false"), ("PageSize", 25),
            ("PageToken", token)]
    return sorted(arguments, key=lambda item: order.index(item[0])) + tail


class Client:
    def __init__(self, base: str):
        self.session = requests.Session()
        self.session.auth = (USER, PASSWORD)
        self.url = base + "/soap"

    def search(self, arguments) -> tuple[float, int, str | None]:
        """(seconds, TotalCount, NextPageToken)."""
        body = envelope(arguments)
        started = time.perf_counter()
        reply = self.session.post(self.url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        elapsed = time.perf_counter() - started
        if reply.status_code != 200:
            raise SystemExit(f"bench/search_latency: {reply.status_code} for {body[:300]!r}:\n{reply.text[:500]}")
        answer = etree.fromstring(reply.content).find(f".//{{{NS}}}SearchListingsResponse")
        return elapsed, int(answer.findtext(f"{{{NS}}}TotalCount")), answer.findtext(f"{{{NS}}}NextPageToken")


def simulate_load(url: str) -> None:
    """Change one listing of every source (and change it back): every data generation moves."""
    from core.db import make_engine
    from core.models import Listing

    engine = make_engine(url)
    with engine.begin() as conn:
        for source in conn.scalars(select(Listing.source_id).distinct()).all():
            first = conn.scalar(select(func.min(Listing.id)).where(Listing.source_id == source))
            conn.execute(update(Listing).where(Listing.id == first).values(photos_count=Listing.photos_count + 1))
            conn.execute(update(Listing).where(Listing.id == first).values(photos_count=Listing.photos_count - 1))
    engine.dispose()


def measure(client: Client, url: str, variants, sort_by: str, descending: bool, calls: int) -> dict:
    simulate_load(url)
    cold, total, token = client.search(ordered(variants[0], sort_by, descending, None))
    times, page20, variant, page = [], None, 0, 1
    while len(times) < calls:
        if token is None:  # this variant has no more pages: the next one, from its first page
            variant = (variant + 1) % len(variants)
            if variant == 0:
                break  # every variant walked: fewer fresh pages than calls
        elapsed, _, token = client.search(ordered(variants[variant], sort_by, descending, token))
        times.append(elapsed)
        page = 1 if token is None else page + 1
        if variant == 0 and page == 20:
            page20 = elapsed
    times.sort()
    return {"total": total, "cold_ms": cold * 1000, "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[max(0, int(len(times) * 0.99) - 1)] * 1000, "calls": len(times),
            "page20_ms": None if page20 is None else page20 * 1000}


def run(url: str, listings: int, calls: int, fresh: bool, only: list[str] | None = None) -> list[dict]:
    print(f"  {url.split('://')[0]}: preparing {listings:,} listings ...", file=sys.stderr)
    what = prepare_database(url, listings, source_ids(5), fresh)
    print(f"  database {what}", file=sys.stderr)
    variants = shapes(url)
    env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET_KEY, "MLSFEEDS_LOG_LEVEL": "WARNING"}
    rows = []
    with gunicorn("service.app:create_app()", env, 2, WORK_DIR / "gunicorn-latency.log") as server:
        client = Client(f"http://127.0.0.1:{server.port}")
        for shape, options in variants.items():
            if only and shape not in only:
                continue
            for sort_by, descending in SORTS:
                figures = measure(client, url, options, sort_by, descending, calls)
                rows.append({"database": url.split(":")[0].split("+")[0], "shape": shape, "sort": sort_by,
                             "descending": descending, **figures})
                print_row(rows[-1])
    return rows


def print_row(row: dict) -> None:
    direction = "desc" if row["descending"] else "asc"
    page20 = "-" if row["page20_ms"] is None else f"{row['page20_ms']:.1f}"
    print(f"  {row['database']:10s} {row['shape']:16s} {row['sort']:22s} {direction:4s} {row['total']:>9,} "
          f"{row['cold_ms']:8.1f} {row['p50_ms']:7.1f} {row['p99_ms']:7.1f} {page20:>7s} {row['calls']:>5}",
          flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", help="default: a SQLite file under var/bench")
    parser.add_argument("--postgres-url", help="also measure this PostgreSQL database (created if missing)")
    parser.add_argument("--fresh", action="store_true", help="drop and seed the databases again")
    parser.add_argument("--shape", action="append", dest="shapes", metavar="NAME",
                        help="measure only this shape ('postal code', 'city', ...); repeatable")
    args = parser.parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    urls = [args.database_url or f"sqlite:///{WORK_DIR / f'latency-{args.listings}x5.db'}"]
    if args.postgres_url:
        urls.append(args.postgres_url)
    print(f"  {'database':10s} {'shape':16s} {'sort':22s} {'dir':4s} {'TotalCount':>9s} {'cold ms':>8s} "
          f"{'p50 ms':>7s} {'p99 ms':>7s} {'page 20':>7s} {'calls':>5s}")
    rows = [row for url in urls for row in run(url, args.listings, args.calls, args.fresh, args.shapes)]
    (WORK_DIR / "search_latency-last.json").write_text(json.dumps(rows, indent=2))
    worst = max(rows, key=lambda r: r["p99_ms"])
    coldest = max(rows, key=lambda r: r["cold_ms"])
    print(f"\n  worst p99 {worst['p99_ms']:.1f} ms ({worst['database']}, {worst['shape']}, {worst['sort']}); "
          f"worst cold {coldest['cold_ms']:.1f} ms ({coldest['database']}, {coldest['shape']}, {coldest['sort']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
