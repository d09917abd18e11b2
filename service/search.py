"""SearchListings: filters, entitlement, exact counts and keyset paging.

Rows are ordered by (sort column, id), listings without the sort value last (by id). Each page
continues strictly after the last key of the previous one, so walking the pages returns every
matching listing once, even while other rows are inserted or removed; and since the order is
plain columns, an index on (column, id) serves it and a page reads only its own rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from core.models import Listing
from core.reso import STANDARD_STATUS
from service.auth import Caller
from service.errors import Forbidden, InvalidArgument
from service.paging import PageTokens, fingerprint

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
EARTH_RADIUS_MILES = 3958.7613
MAX_RADIUS_MILES = 500.0

SORT_COLUMNS = {
    "ListPrice": Listing.list_price,
    "ModificationTimestamp": Listing.modification_timestamp,
    "ListingKey": Listing.listing_key,
}


@dataclass(frozen=True)
class SearchQuery:
    source_ids: tuple[str, ...] = ()
    city: str | None = None
    postal_code: str | None = None
    statuses: tuple[str, ...] = ()
    property_types: tuple[str, ...] = ()
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_bedrooms: int | None = None
    min_bathrooms: int | None = None
    north: float | None = None
    south: float | None = None
    east: float | None = None
    west: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    radius_miles: float | None = None
    modified_since: dt.datetime | None = None
    sort_by: str = "ListingKey"
    descending: bool = False

    def validate(self) -> None:
        _check_prices(self.min_price, self.max_price)
        for name, value in (("MinBedrooms", self.min_bedrooms), ("MinBathrooms", self.min_bathrooms)):
            if value is not None and value < 0:
                raise InvalidArgument(f"{name} must not be negative, got {value}")
        if unknown := [s for s in self.statuses if s not in STANDARD_STATUS]:
            raise InvalidArgument(
                f"unknown StandardStatus {unknown[0]!r}; use one of: {', '.join(STANDARD_STATUS)}"
            )
        if self.sort_by not in SORT_COLUMNS:
            raise InvalidArgument(f"SortBy must be one of {', '.join(SORT_COLUMNS)}, got {self.sort_by!r}")
        _check_box(self.north, self.south, self.east, self.west)
        _check_radius(self.latitude, self.longitude, self.radius_miles)


@dataclass(frozen=True)
class SearchPage:
    total: int
    rows: list[Listing]
    next_token: str | None


def search(
    session: Session,
    caller: Caller,
    query: SearchQuery,
    tokens: PageTokens,
    page_size: int | None = None,
    page_token: str | None = None,
) -> SearchPage:
    size = _page_size(page_size)
    query.validate()
    where = _filters(query) + _entitlement(caller, query.source_ids)
    query_print = fingerprint(asdict(query))
    position = _decode_position(query.sort_by, tokens.read(page_token, query_print)) if page_token else None
    rows, last = _page(session, where, query, position, size + 1)
    total = session.scalar(select(func.count()).select_from(Listing).where(*where))
    next_token = None
    if len(rows) > size:
        rows, last = rows[:size], last[:size]
        next_token = tokens.issue(query_print, last[-1])
    return SearchPage(total=total or 0, rows=rows, next_token=next_token)


def _page(session: Session, where: list, query: SearchQuery, position: list | None, limit: int):
    """Up to ``limit`` rows after ``position``, and the position of each row.

    Two plain keyset phases instead of one NULL-safe sort expression, so that an index on
    (column, id) serves the order and the database stops after ``limit`` rows: first the rows
    that have the sort value, ordered by (value, id); then, nulls last, those without it, by id.
    """
    column = SORT_COLUMNS[query.sort_by]
    phase = position[0] if position else 0
    rows: list[Listing] = []
    if phase == 0:
        rows = _valued(session, where, column, query.descending, position, limit)
    positions = [[0, _jsonable(getattr(r, column.key)), r.id] for r in rows]
    if len(rows) < limit and query.sort_by != "ListingKey":  # listing keys are never NULL
        after_id = position[2] if position and phase == 1 else None
        nulls = _nulls(session, where, column, query.descending, after_id, limit - len(rows))
        rows += nulls
        positions += [[1, None, r.id] for r in nulls]
    return rows, positions


def _valued(session, where, column, descending: bool, position, limit: int) -> list[Listing]:
    stmt = select(Listing).where(*where, column.is_not(None))
    if position:
        value, row_id = literal(position[1], column.type), literal(position[2])
        keyset = tuple_(column, Listing.id)
        stmt = stmt.where(keyset < tuple_(value, row_id) if descending else keyset > tuple_(value, row_id))
    order = [column.desc(), Listing.id.desc()] if descending else [column, Listing.id]
    return list(session.scalars(stmt.order_by(*order).limit(limit)))


def _nulls(session, where, column, descending: bool, after_id: int | None, limit: int) -> list[Listing]:
    stmt = select(Listing).where(*where, column.is_(None))
    if after_id is not None:
        stmt = stmt.where(Listing.id < after_id if descending else Listing.id > after_id)
    order = Listing.id.desc() if descending else Listing.id
    return list(session.scalars(stmt.order_by(order).limit(limit)))


def _jsonable(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _page_size(value: int | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"PageSize must be between 1 and {MAX_PAGE_SIZE}, got {value}")
    return value


def _check_prices(low: Decimal | None, high: Decimal | None) -> None:
    for name, value in (("MinPrice", low), ("MaxPrice", high)):
        if value is not None and value < 0:
            raise InvalidArgument(f"{name} must not be negative, got {value}")
    if low is not None and high is not None and low > high:
        raise InvalidArgument(f"MinPrice ({low}) is greater than MaxPrice ({high})")


def _check_box(north, south, east, west) -> None:
    given = [v is not None for v in (north, south, east, west)]
    if not any(given):
        return
    if not all(given):
        raise InvalidArgument("a bounding box needs all of North, South, East and West")
    _check_latitude("North", north)
    _check_latitude("South", south)
    _check_longitude("East", east)
    _check_longitude("West", west)
    if south > north:
        raise InvalidArgument(f"South ({south}) is north of North ({north})")


def _check_radius(latitude, longitude, radius) -> None:
    given = [v is not None for v in (latitude, longitude, radius)]
    if not any(given):
        return
    if not all(given):
        raise InvalidArgument("a radius search needs Latitude, Longitude and RadiusMiles")
    _check_latitude("Latitude", latitude)
    _check_longitude("Longitude", longitude)
    if not 0 < radius <= MAX_RADIUS_MILES:
        raise InvalidArgument(f"RadiusMiles must be above 0 and at most {MAX_RADIUS_MILES:g}, got {radius}")


def _check_latitude(name: str, value: float) -> None:
    if not -90 <= value <= 90:
        raise InvalidArgument(f"{name} must be a latitude between -90 and 90, got {value}")


def _check_longitude(name: str, value: float) -> None:
    if not -180 <= value <= 180:
        raise InvalidArgument(f"{name} must be a longitude between -180 and 180, got {value}")


def _entitlement(caller: Caller, requested: tuple[str, ...]) -> list:
    if denied := sorted(s for s in set(requested) if not caller.can_see(s)):
        raise Forbidden(f"not entitled to source {denied[0]!r}")
    if requested:
        return [Listing.source_id.in_(sorted(set(requested)))]
    if caller.sources is None:
        return []
    return [Listing.source_id.in_(sorted(caller.sources))]


def _filters(q: SearchQuery) -> list:
    where = [Listing.removed_at.is_(None)]
    if q.city:
        where.append(func.lower(Listing.city) == q.city.strip().lower())
    if q.postal_code:
        where.append(Listing.postal_code == q.postal_code.strip())
    if q.statuses:
        where.append(Listing.standard_status.in_(sorted(set(q.statuses))))
    if q.property_types:
        where.append(Listing.property_type.in_(sorted(set(q.property_types))))
    if q.min_price is not None:
        where.append(Listing.list_price >= q.min_price)
    if q.max_price is not None:
        where.append(Listing.list_price <= q.max_price)
    if q.min_bedrooms is not None:
        where.append(Listing.bedrooms_total >= q.min_bedrooms)
    if q.min_bathrooms is not None:
        where.append(Listing.bathrooms_total_integer >= q.min_bathrooms)
    if q.north is not None:
        where += _box(q.north, q.south, q.east, q.west)
    if q.radius_miles is not None:
        where += _radius(q.latitude, q.longitude, q.radius_miles)
    if q.modified_since is not None:
        where.append(Listing.modification_timestamp >= q.modified_since)
    return where


def _box(north: float, south: float, east: float, west: float) -> list:
    lat = Listing.latitude.between(south, north)
    if west <= east:
        return [lat, Listing.longitude.between(west, east)]
    # The box crosses the antimeridian.
    return [lat, or_(Listing.longitude >= west, Listing.longitude <= east)]


def _radius(latitude: float, longitude: float, miles: float) -> list:
    """Great-circle (haversine) distance, after a bounding-box pre-filter the indexes can use."""
    import math

    dlat = math.degrees(miles / EARTH_RADIUS_MILES)
    coslat = max(math.cos(math.radians(latitude)), 1e-6)
    dlon = min(180.0, dlat / coslat)
    lat1, lon1 = math.radians(latitude), math.radians(longitude)
    lat2, lon2 = func.radians(Listing.latitude), func.radians(Listing.longitude)
    a = func.sin((lat2 - lat1) / 2) * func.sin((lat2 - lat1) / 2) + math.cos(lat1) * func.cos(lat2) * func.sin(
        (lon2 - lon1) / 2
    ) * func.sin((lon2 - lon1) / 2)
    distance = 2 * EARTH_RADIUS_MILES * func.asin(func.sqrt(a))
    prefilter = [Listing.latitude.between(latitude - dlat, latitude + dlat)]
    if dlon < 180 and -180 <= longitude - dlon and longitude + dlon <= 180:
        prefilter.append(Listing.longitude.between(longitude - dlon, longitude + dlon))
    return prefilter + [distance <= miles]


def _decode_position(sort_by: str, position: list) -> list:
    """[phase, sort value, id] as the page queries want them; anything else is a forged token."""
    try:
        phase, text, row_id = position
        phase, row_id = int(phase), int(row_id)
        if phase not in (0, 1) or (phase == 0) == (text is None):
            raise ValueError("inconsistent position")
        if text is None:
            value = None
        elif sort_by == "ModificationTimestamp":
            value = dt.datetime.fromisoformat(text)
        elif sort_by == "ListPrice":
            value = Decimal(text)
        else:
            value = str(text)
        return [phase, value, row_id]
    except (TypeError, ValueError, InvalidOperation):
        raise InvalidArgument("PageToken is not a token this service issued") from None
