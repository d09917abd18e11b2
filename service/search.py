"""SearchListings: filters, entitlement, exact counts and keyset paging.

Rows are ordered by (sort column, id), listings without the sort value last (by id). Each page
continues strictly after the last key of the previous one, so walking the pages returns every
matching listing once, even while other rows are inserted or removed; and since the order is
plain columns, an index on (column, id) serves it and a page reads only its own rows.

TotalCount is exact. Counting is the costly part of a search, so a count is kept, per worker,
under the query, the caller's sources and their *data generations* (service/cache.py): a count
is reused only while none of those sources has changed, and never after a load commits. The
page token carries the count with its key, so the pages after the first never count again while
nothing changed, whichever worker or host serves them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.reso import STANDARD_STATUS, city_key
from service.auth import Caller
from service.cache import CountCache
from service.errors import Forbidden, InvalidArgument, NotFound, shown
from service.paging import PageTokens, fingerprint
from service.reader import ReadSession
from service.statements import (
    ROW_INDEX,
    SORT_COLUMNS,
    Conditions,
    PageShape,
    count_statement,
    generation_statement,
    list_parameters,
    page_statement,
    radius_parameters,
    sources_statement,
)

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
MAX_RADIUS_MILES = 500.0
MAX_PRICE = Decimal("999999999999.99")  # what the ListPrice column holds
# A search whose matches are many is paged by walking the sort order: a page then reads about
# PageSize x listings / matches index entries, where collecting the matches and sorting them
# reads every match; walking wins when matches^2 > PageSize x listings (at a million listings,
# from about 5,000 matches: a 17,500-listing box went from 50 ms a page to 2 ms on SQLite).
# The exact count knows; a planner's estimate of an area (latitude and longitude taken as
# independent) is off by twenty times. SQLite is steered by how the SQL is written
# (PageShape.guided); PostgreSQL by disabling explicit sorts for the page (prefer_index_order).
WALK_FACTOR = 27
_ID = ROW_INDEX["id"]


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
                f"unknown StandardStatus {shown(unknown[0])}; use one of: {', '.join(STANDARD_STATUS)}"
            )
        if self.sort_by not in SORT_COLUMNS:
            raise InvalidArgument(f"SortBy must be one of {', '.join(SORT_COLUMNS)}, got {self.sort_by!r}")
        _check_box(self.north, self.south, self.east, self.west)
        _check_radius(self.latitude, self.longitude, self.radius_miles)


@dataclass(frozen=True)
class SearchPage:
    total: int
    rows: list  # statements.ROW_COLUMNS tuples
    next_token: str | None


def search(
    db: ReadSession,
    caller: Caller,
    query: SearchQuery,
    tokens: PageTokens,
    page_size: int | None = None,
    page_token: str | None = None,
    counts: CountCache | None = None,
    generations: dict | None = None,
) -> SearchPage:
    """One page of a search. ``generations`` memoizes the data generation signature of the
    sources within one call (see answer_key)."""
    size = _page_size(page_size)
    query.validate()
    sources = _entitlement(caller, query.source_ids)
    query_print = fingerprint(vars(query))
    carried = tokens.payload(page_token, query_print) if page_token else None
    position = _decode_position(query.sort_by, carried["k"]) if carried else None
    if db.begin_snapshot():
        generations = None  # read before the snapshot: read again within it (see ReadSession)
    generation = _generation(db, sources, generations)
    conditions, params = _conditions(query, sources)
    count_key, total = _count(db, conditions, params, generation, carried, counts)
    walk = total * total >= WALK_FACTOR * db.estimated_listings()
    rows, last = _page(db, conditions, params, query, position, size + 1, walk)
    next_token = None
    if len(rows) > size:
        rows, last = rows[:size], last[:size]
        next_token = tokens.issue(query_print, last[-1], [count_key, total])
    return SearchPage(total=total, rows=rows, next_token=next_token)


def _page(db, conditions: Conditions, params: dict, query: SearchQuery, position: list | None, limit: int,
          walk: bool = False):
    """Up to ``limit`` rows after ``position``, and the position of each row.

    Two plain keyset phases instead of one NULL-safe sort expression, so that an index on
    (column, id) serves the order and the database stops after ``limit`` rows: first the rows
    that have the sort value, ordered by (value, id); then, nulls last, those without it, by id.
    """
    index = ROW_INDEX[SORT_COLUMNS[query.sort_by].key]
    phase = position[0] if position else 0
    rows: list = []
    if phase == 0:
        after = {"after_value": position[1], "after_id": position[2]} if position else {}
        # An opaque position (a guided page that does not walk) bounds no index: the filter's own
        # bound stays the one the index range starts from.
        opaque_position = db.plans_by_count and not walk
        valued = _implied_bound_dropped(conditions, query) if position and not opaque_position else conditions
        shape = PageShape(valued, query.sort_by, query.descending, nulls=False, after=bool(position),
                          guided=db.plans_by_count, walk=walk)
        if walk:
            db.prefer_index_order()
        rows = db.rows(page_statement(shape), {**params, **after, "limit": limit})
        if shape.ordered_by_caller:
            rows.sort(key=lambda row: (row[index], row[_ID]), reverse=query.descending)
    positions = [[0, _jsonable(r[index]), r[_ID]] for r in rows]
    if len(rows) < limit and query.sort_by != "ListingKey":  # listing keys are never NULL
        after_id = position[2] if position and phase == 1 else None
        shape = PageShape(conditions, query.sort_by, query.descending, nulls=True, after=after_id is not None,
                          guided=db.plans_by_count, walk=walk)
        if walk:
            db.allow_sorts()  # the listings without a sort value are few: collect and sort them
        nulls = db.rows(page_statement(shape), {**params, "after_id": after_id, "limit": limit - len(rows)})
        rows += nulls
        positions += [[1, None, r[_ID]] for r in nulls]
    return rows, positions


def answer_key(db: ReadSession, caller: Caller, query: SearchQuery, arguments: dict,
               generations: dict | None = None) -> tuple:
    """The cache key of a search's whole answer: its arguments exactly as sent (``250000`` and
    ``250000.00`` are different queries to the page token), the sources it covers and their data
    generation signature, read now, before any listing is."""
    query.validate()
    sources = _entitlement(caller, query.source_ids)
    generation = _generation(db, sources, generations)
    return tuple(map(repr, arguments.values())), sources, tuple(generation)


def _generation(db, sources: tuple[str, ...] | None, memo: dict | None) -> list:
    """The data generation signature of ``sources`` (all when None), once per call; NotFound
    when a source asked for does not exist (only a client that may see every source gets this
    far with one: for the others, a source they are not entitled to is Forbidden, whether or
    not it exists)."""
    if memo is not None and sources in memo:
        return memo[sources]
    generation = db.known_generation(sources)
    if generation is None:
        statement = generation_statement(None if sources is None else len(sources))
        generation = list(db.one(statement, list_parameters("sources", sources or ())))
        if sources is not None and generation[1] < len(sources):
            missing = sorted(set(sources) - {row[0] for row in db.rows(sources_statement(len(sources)),
                                                                        list_parameters("sources", sources))})
            raise NotFound(f"no source {shown(missing[0])}")
        db.remember_generation(sources, generation)
    if memo is not None:
        memo[sources] = generation
    return generation


# The filter a keyset position on the sort column makes redundant: the position comes from a
# row that passed it, so "after the position" is the tighter bound. Leaving both would give the
# database two bounds for one index range, and SQLite may scan from the looser one.
_BOUND_BY_POSITION = {("ListPrice", False): "min_price", ("ListPrice", True): "max_price",
                      ("ModificationTimestamp", False): "modified_since"}


def _implied_bound_dropped(conditions: Conditions, query: SearchQuery) -> Conditions:
    redundant = _BOUND_BY_POSITION.get((query.sort_by, query.descending))
    return tuple(c for c in conditions if c[0] != redundant)


def _count(db, conditions: Conditions, params: dict, generation: list, carried: dict | None,
           counts: CountCache | None):
    """(key, exact count): from the token or the cache while the sources' data is unchanged."""
    key = fingerprint({"c": conditions, "p": params, "g": generation})
    if carried and isinstance(carried.get("c"), list) and carried["c"][:1] == [key]:
        return key, int(carried["c"][1])
    total = counts.get(key) if counts is not None else None
    if total is None:
        total = int(db.one(count_statement(conditions), params)[0] or 0)  # a sum is NUMERIC on PostgreSQL
        if counts is not None:
            counts.put(key, total)
    return key, total


def _conditions(q: SearchQuery, sources: tuple[str, ...] | None) -> tuple[Conditions, dict]:
    """The shape of a query's conditions (names, list lengths) and their parameters."""
    conditions: dict[str, int] = {}
    params: dict = {}
    lists = {"sources": sources, "statuses": sorted(set(q.statuses)) or None,
             "property_types": sorted(set(q.property_types)) or None}
    for name, values in lists.items():
        if values is not None:
            conditions[name] = len(values)
            params.update(list_parameters(name, values))
    single = {"city": city_key(q.city),
              "postal_code": q.postal_code.strip() if q.postal_code and q.postal_code.strip() else None,
              "min_price": q.min_price, "max_price": q.max_price, "min_bedrooms": q.min_bedrooms,
              "min_bathrooms": q.min_bathrooms, "modified_since": q.modified_since}
    for name, value in single.items():
        if value is not None:
            conditions[name] = 0
            params[name] = value
    if q.north is not None:
        conditions["box" if q.west <= q.east else "box_wrapped"] = 0
        params.update(north=q.north, south=q.south, east=q.east, west=q.west)
    if q.radius_miles is not None:
        name, radius = radius_parameters(q.latitude, q.longitude, q.radius_miles)
        conditions[name] = 0
        params.update(radius)
    return tuple(sorted(conditions.items())), params


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
            raise InvalidArgument(f"{name} must not be negative, got {shown(value)}")
        if value is not None and value > MAX_PRICE:
            raise InvalidArgument(f"{name} must be at most {MAX_PRICE}, got {shown(value)}")
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


def _entitlement(caller: Caller, requested: tuple[str, ...]) -> tuple[str, ...] | None:
    """The sources a search may cover; None for all of them."""
    if denied := sorted(s for s in set(requested) if not caller.can_see(s)):
        raise Forbidden(f"not entitled to source {shown(denied[0])}")
    if requested:
        return tuple(sorted(set(requested)))
    if caller.sources is None:
        return None
    return tuple(sorted(caller.sources))


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
