"""Load: mapped listings upserted in batches, counted, and — on full runs — the missing removed.

Each batch costs one SELECT of the keys it holds, one multi-row INSERT for the new ones and
one executemany UPDATE for the changed ones; an unchanged record (same hash) is only marked
seen. Re-running a load with the same input changes nothing, so a crashed step can simply run
again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from core.models import Listing
from core.reso import LISTING_FIELDS, city_key

BATCH = 2000


@dataclass
class LoadCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def add(self, other: "LoadCounts") -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.removed += other.removed


def load_listings(
    session: Session, source_id: str, records: Iterable[dict[str, Any]], seen_at: dt.datetime,
    batch_size: int = BATCH,
) -> LoadCounts:
    """Upsert mapped (RESO-named) records of one source; ``seen_at`` stamps every row touched."""
    _plan_each_lookup(session)
    counts = LoadCounts()
    for batch in _batches(records, batch_size):
        counts.add(_load_batch(session, source_id, batch, seen_at))
    return counts


def mark_removed(session: Session, source_id: str, seen_before: dt.datetime, now: dt.datetime) -> int:
    """After a full load: listings the feed no longer carries are removed (kept, flagged)."""
    result = session.execute(
        update(Listing)
        .where(Listing.source_id == source_id, Listing.removed_at.is_(None), Listing.last_seen < seen_before)
        .values(removed_at=now)
    )
    return result.rowcount or 0


def _plan_each_lookup(session: Session) -> None:
    """On PostgreSQL, plan every statement of this load with its actual parameters.

    psycopg prepares a statement once it has run five times, and PostgreSQL may then switch to
    a generic plan. For the key lookup (``source_id = $1 AND listing_key IN ($2..$2001)``) the
    generic plan, costed on a table whose statistics never saw this transaction's rows, reads
    every row of the source: a 120,000-listing load fell from 6,000 to 600 rows/s as it grew.
    A custom plan costs a tenth of a millisecond and always probes the unique index.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def row_values(record: dict[str, Any]) -> dict[str, Any]:
    """Column values of a mapped record; unknown names go to ``extra``.

    A feed that does not carry PhotosCount leaves ``photos_count`` out: the photo job counts the
    photos it has, and a reload must not reset that to 0.
    """
    values = {column: record.get(name) for name, (column, _) in LISTING_FIELDS.items()}
    if "PhotosCount" in record:
        values["photos_count"] = values["photos_count"] or 0
    else:
        del values["photos_count"]
    values["extra"] = record.get("extra") or {}
    has_coordinates = values["latitude"] is not None and values["longitude"] is not None
    values["geocode_precision"] = "source" if has_coordinates else None
    values["record_hash"] = record_hash(values)
    values["city_key"] = city_key(values["city"])  # derived: no part of the hash
    return values


def record_hash(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.md5(canonical.encode()).hexdigest()


def _json_default(value: Any) -> str:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[dict[str, dict[str, Any]]]:
    # Keyed by ListingKey: a key repeated within a batch (a page boundary served twice) keeps
    # its last version; repeated across batches, the later one updates the earlier.
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield {r["ListingKey"]: row_values(r) for r in chunk}


def _load_batch(session: Session, source_id: str, batch: dict[str, dict], seen_at: dt.datetime) -> LoadCounts:
    existing = {
        key: (row_id, stored_hash, removed_at)
        for key, row_id, stored_hash, removed_at in session.execute(
            select(Listing.listing_key, Listing.id, Listing.record_hash, Listing.removed_at).where(
                Listing.source_id == source_id, Listing.listing_key.in_(list(batch))
            )
        )
    }
    new = [{"photos_count": 0, **v, "source_id": source_id, "first_seen": seen_at, "last_seen": seen_at}
           for k, v in batch.items() if k not in existing]
    changed, unchanged_ids = [], []
    for key, values in batch.items():
        if key not in existing:
            continue
        row_id, stored_hash, removed_at = existing[key]
        if stored_hash == values["record_hash"] and removed_at is None:
            unchanged_ids.append(row_id)
        else:
            changed.append({**values, "_id": row_id, "last_seen": seen_at, "removed_at": None})
    if new:
        _insert(session, new)
    if changed:
        _update_by_id(session, changed)
    if unchanged_ids:
        session.execute(update(Listing).where(Listing.id.in_(unchanged_ids)).values(last_seen=seen_at))
    return LoadCounts(inserted=len(new), updated=len(changed), unchanged=len(unchanged_ids))


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """A Core executemany INSERT (psycopg pipelines it).

    Measured on 10,000 listings into PostgreSQL: 14,600 rows/s, against 2,100 with RETURNING
    (insertmanyvalues), under 800 with multi-row VALUES statements (compiling them dominates)
    and about 420 through the ORM's bulk insert (it splits rows whose NULLs differ).
    """
    session.connection().execute(insert(Listing.__table__), rows)


def _update_by_id(session: Session, rows: list[dict[str, Any]]) -> None:
    columns = [c for c in rows[0] if c != "_id"]
    table = Listing.__table__
    statement = update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(f"v_{c}") for c in columns})
    params = [{"_id": r["_id"], **{f"v_{c}": r[c] for c in columns}} for r in rows]
    session.connection().execute(statement, params)
