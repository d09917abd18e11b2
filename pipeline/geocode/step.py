"""The geocode step: listings of a run that lack coordinates, through cache then geocoders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import GeocodeCache, Listing
from pipeline.geocode import Geocoder, GeoQuery, GeoResult

BATCH = 1000


def geocode_run(session: Session, source_id: str, touched_since: dt.datetime,
                geocoders: Sequence[Geocoder]) -> int:
    """Place every listing of ``source_id`` touched since ``touched_since`` that has no coordinates.

    Returns how many got coordinates. Listings nothing can place get precision ``none``.
    """
    placed = 0
    after_id = 0
    while queries := _pending(session, source_id, touched_since, after_id):
        after_id = queries[-1].id
        results = _from_cache(session, queries)
        for geocoder in geocoders:
            missing = [q for q in queries if q.id not in results]
            if not missing:
                break
            found = geocoder.geocode(missing)
            _remember(session, [q for q in missing if q.id in found], found)
            results.update(found)
        placed += _store(session, queries, results)
    return placed


def _pending(session: Session, source_id: str, since: dt.datetime, after_id: int) -> list[GeoQuery]:
    rows = session.execute(
        select(Listing.id, Listing.unparsed_address, Listing.street_number, Listing.street_name,
               Listing.city, Listing.state_or_province, Listing.postal_code)
        .where(Listing.source_id == source_id, Listing.last_seen >= since, Listing.id > after_id,
               Listing.geocode_precision.is_(None))
        .order_by(Listing.id)
        .limit(BATCH)
    )
    return [
        GeoQuery(row_id, " ".join(p for p in (number, street) if p) or _street_of(unparsed), city, state, postal)
        for row_id, unparsed, number, street, city, state, postal in rows
    ]


def _street_of(unparsed: str | None) -> str | None:
    return unparsed.split(",")[0].strip() if unparsed else None


def _from_cache(session: Session, queries: list[GeoQuery]) -> dict[int, GeoResult]:
    by_address = {q.address: q for q in queries if q.address}
    hits = session.scalars(select(GeocodeCache).where(GeocodeCache.address.in_(list(by_address))))
    results = {}
    for hit in hits:
        if hit.latitude is not None:
            for q in queries:
                if q.address == hit.address:
                    results[q.id] = GeoResult(hit.latitude, hit.longitude, hit.precision, "cache")
    return results


def _remember(session: Session, queries: list[GeoQuery], found: dict[int, GeoResult]) -> None:
    seen = set()
    for q in queries:
        result = found[q.id]
        if not q.address or q.address in seen or result.precision != "address":
            continue  # only real address matches are worth caching; ZIP centroids are free
        seen.add(q.address)
        session.merge(GeocodeCache(address=q.address, latitude=result.latitude, longitude=result.longitude,
                                   precision=result.precision, provider=result.provider))


def _store(session: Session, queries: list[GeoQuery], results: dict[int, GeoResult]) -> int:
    updates = [{"_id": q.id, "lat": r.latitude, "lon": r.longitude, "precision": r.precision}
               for q in queries if (r := results.get(q.id))]
    table = Listing.__table__
    if updates:
        from sqlalchemy import bindparam

        session.connection().execute(
            update(table).where(table.c.id == bindparam("_id")).values(
                latitude=bindparam("lat"), longitude=bindparam("lon"), geocode_precision=bindparam("precision")),
            updates,
        )
    unplaced = [q.id for q in queries if q.id not in results]
    if unplaced:
        session.execute(update(Listing).where(Listing.id.in_(unplaced)).values(geocode_precision="none"))
    return len(updates)
