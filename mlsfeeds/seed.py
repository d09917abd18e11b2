"""``mlsfeeds sandbox seed``: synthetic listings written straight into the database.

Two paths, one data set: when no listing of the seeded sources is there yet, the bulk path
(``mlsfeeds.bulk``) writes them at the database's bulk-insert speed; otherwise batches of
``BATCH`` skip the listings already present. Either way a seed gives the same rows. The bulk
path drops the search indexes while it writes: seed before serving, not under live traffic.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TextIO

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from core.models import Listing, Media, Source
from core.reso import LISTING_FIELDS, city_key
from core.types import utcnow
from mlsfeeds import bulk
from sandbox.listings import FIELDS, PHOTO_URL_TEMPLATE, synthetic_listings, synthetic_rows

BATCH = 1000


@dataclass
class SeedReport:
    created_sources: list[str]
    inserted: int = 0
    skipped: int = 0
    media: int = 0
    bulk: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: what was written, how, and at what rate."""
        rate = (self.inserted + self.media) / self.seconds if self.seconds else 0.0
        how = "bulk" if self.bulk else "incremental"
        return (
            f"inserted {self.inserted:,} listings ({self.media:,} photos by URL template); "
            f"{self.skipped:,} were already there; {self.seconds:.1f} s, {rate:,.0f} rows/s ({how})"
        )


def seed(session: Session, count: int, sources: Sequence[str], seed_value: int, progress=None) -> SeedReport:
    """Write ``count`` synthetic listings over ``sources``; listings already there are kept.

    ``progress(done, total)`` is called as listings are written.
    """
    started = time.monotonic()
    report = SeedReport(created_sources=ensure_sources(session, sources))
    session.commit()
    if _bulk_applies(session, sources):
        _seed_in_bulk(session, count, sources, seed_value, report, progress)
    else:
        _seed_incrementally(session, synthetic_listings(count, sources, seed_value), count, report, progress)
    report.seconds = time.monotonic() - started
    return report


def _bulk_applies(session: Session, sources: Sequence[str]) -> bool:
    """The bulk path writes without looking: only when none of the sources has a listing yet."""
    if session.get_bind().dialect.name not in bulk.BULK_DIALECTS:
        return False
    taken = select(Listing.id).where(Listing.source_id.in_(list(sources))).limit(1)
    empty = session.scalar(taken) is None
    session.commit()  # the bulk path alters tables from its own connection: hold no lock on them
    return empty


def _seed_in_bulk(session: Session, count: int, sources, seed_value: int, report: SeedReport, progress) -> None:
    rows = synthetic_rows(count, sources, seed_value)
    report.media = bulk.bulk_seed(session.get_bind(), rows, bulk.Layout(FIELDS), count, progress)
    report.inserted = count
    report.bulk = True


def _seed_incrementally(session: Session, records, count: int, report: SeedReport, progress) -> None:
    while batch := list(islice(records, BATCH)):
        _write_batch(session, batch, report)
        session.commit()
        if progress:
            progress(report.inserted + report.skipped, count)


def ensure_sources(session: Session, ids: Iterable[str]) -> list[str]:
    existing = set(session.scalars(select(Source.id).where(Source.id.in_(list(ids)))))
    created = [i for i in ids if i not in existing]
    for source_id in created:
        session.add(
            Source(
                id=source_id,
                name=f"Sandbox MLS {source_id}",
                timezone="America/New_York",
                earliest_download=dt.time(2, 30),
                download={"kind": "sandbox"},
                parse={},
                images={"strategy": "url_template", "template": PHOTO_URL_TEMPLATE},
            )
        )
    return created


def _write_batch(session: Session, batch: list[dict], report: SeedReport) -> None:
    keys = [(r["SourceId"], r["ListingKey"]) for r in batch]
    present = set(
        session.execute(
            select(Listing.source_id, Listing.listing_key).where(
                tuple_(Listing.source_id, Listing.listing_key).in_(keys)
            )
        ).all()
    )
    fresh = [r for r in batch if (r["SourceId"], r["ListingKey"]) not in present]
    report.skipped += len(batch) - len(fresh)
    if not fresh:
        return
    now = utcnow()
    rows = [_row(r, now) for r in fresh]
    ids = session.execute(
        insert(Listing).returning(Listing.id, Listing.source_id, Listing.listing_key, sort_by_parameter_order=True),
        rows,
    ).all()
    media = [
        {"listing_id": row_id, "order": m["Order"], "url": m["MediaURL"]}
        for (row_id, _, _), record in zip(ids, fresh)
        for m in record["Media"]
    ]
    if media:
        session.execute(insert(Media), media)
    report.inserted += len(fresh)
    report.media += len(media)


def _row(record: dict, now: dt.datetime) -> dict:
    row = {column: record.get(name) for name, (column, _) in LISTING_FIELDS.items()}
    row.update(source_id=record["SourceId"], first_seen=now, last_seen=now, extra={}, city_key=city_key(row["city"]))
    return row


def progress_printer(stream: TextIO = sys.stderr):
    """A ``progress(done, total)`` callback: a bar on a terminal, a line per tenth otherwise
    (a log file or CI output gets no carriage returns)."""
    started = time.monotonic()
    shown = [-1]

    def bar(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} listings"
                     f"{_rate(done, started)}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    def lines(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != shown[0]:
            shown[0] = tenth
            stream.write(f"  {done:,}/{total:,} listings{_rate(done, started)}\n")
            stream.flush()

    return bar if stream.isatty() else lines


def _rate(done: int, started: float) -> str:
    elapsed = time.monotonic() - started
    return f", {done / elapsed:,.0f}/s" if elapsed > 0 else ""
