"""``mlsfeeds sandbox seed``: synthetic listings written straight into the database."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from core.models import Listing, Media, Source
from core.reso import LISTING_FIELDS, city_key
from core.types import utcnow
from sandbox.listings import PHOTO_URL_TEMPLATE, synthetic_listings

BATCH = 1000
@dataclass
class SeedReport:
    created_sources: list[str]
    inserted: int = 0
    skipped: int = 0
    media: int = 0


def seed(session: Session, count: int, sources: Sequence[str], seed_value: int, progress=None) -> SeedReport:
    """Write ``count`` synthetic listings over ``sources``; listings already there are kept."""
    report = SeedReport(created_sources=ensure_sources(session, sources))
    session.commit()
    records = synthetic_listings(count, sources, seed_value)
    while batch := list(islice(records, BATCH)):
        _write_batch(session, batch, report)
        session.commit()
        if progress:
            progress(report.inserted + report.skipped, count)
    return report


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


def print_progress(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} listings")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
