"""The SQL of a search, built once per shape and reused with new parameters.

A *shape* names the conditions a search has (a city, a price floor, a bounding box...) and the
length of its lists (sources, statuses, property types), not their values. Each shape's
statements are built once per process with bind parameters and compiled once
(service/reader.py); a call only binds its values. A list of n values is n parameters
(``statuses_0``...), not one expanding parameter, which would be rendered anew on every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, String, Text, and_, bindparam, func, literal_column, or_, select

from core.models import Listing, ListingCount, Source
from core.types import UTCDateTime
from service.types import SUMMARY_FIELDS

EARTH_RADIUS_MILES = 3958.7613

SORT_COLUMNS = {
    "ListPrice": Listing.list_price,
    "ModificationTimestamp": Listing.modification_timestamp,
    "ListingKey": Listing.listing_key,
}
# A page row: the ListingSummary values in wire order, then the listing's id.
ROW_COLUMNS = [getattr(Listing, column) for _, _, column in SUMMARY_FIELDS] + [Listing.id]
ROW_INDEX = {column.key: n for n, column in enumerate(ROW_COLUMNS)}


def _param(name: str, column=None):
    return bindparam(name, type_=column.type if column is not None else None)


def _in(column, name: str, count: int):
    return column.in_([_param(f"{name}_{n}") for n in range(count)])


def list_parameters(name: str, values) -> dict:
    """The parameters of a list condition: ``name_0``, ``name_1``..."""
    return {f"{name}_{n}": value for n, value in enumerate(values)}


def _shown(column):
    return column


def _opaque(column):
    """The same value, hidden from SQLite's indexes: ``x + 0``, or ``x || ''`` for text (SQLite
    keeps timestamps as text). Pages whose plan the search chooses (PageShape.guided) write
    their filters, or their position, this way."""
    if isinstance(column.type, (String, Text, UTCDateTime)):
        return column.op("||")(literal_column("''"))
    return column + literal_column("0")


# Each condition: its SQL, given the length of its list (lists only) and how to write a column
# (shown, or opaque to the indexes) -> the clauses it adds.
_CONDITIONS = {
    "sources": lambda n, c: [_in(c(Listing.source_id), "sources", n)],
    "city": lambda n, c: [c(Listing.city_key) == _param("city")],
    "postal_code": lambda n, c: [c(Listing.postal_code) == _param("postal_code")],
    "statuses": lambda n, c: [_in(c(Listing.standard_status), "statuses", n)],
    "property_types": lambda n, c: [_in(c(Listing.property_type), "property_types", n)],
    "min_price": lambda n, c: [c(Listing.list_price) >= _param("min_price", Listing.list_price)],
    "max_price": lambda n, c: [c(Listing.list_price) <= _param("max_price", Listing.list_price)],
    "min_bedrooms": lambda n, c: [Listing.bedrooms_total >= _param("min_bedrooms")],
    "min_bathrooms": lambda n, c: [Listing.bathrooms_total_integer >= _param("min_bathrooms")],
    "box": lambda n, c: [c(Listing.latitude).between(_param("south"), _param("north")),
                         c(Listing.longitude).between(_param("west"), _param("east"))],
    # A box across the antimeridian: west is east of east.
    "box_wrapped": lambda n, c: [c(Listing.latitude).between(_param("south"), _param("north")),
                                 or_(c(Listing.longitude) >= _param("west"), c(Listing.longitude) <= _param("east"))],
    "radius": lambda n, c: _radius(True, c),
    "radius_polar": lambda n, c: _radius(False, c),
    # Never hidden: an index on the time serves it whatever the order.
    "modified_since": lambda n, c: [Listing.modification_timestamp >= _param("modified_since",
                                                                         Listing.modification_timestamp)],
}
# What a walking page leaves visible to the indexes: the bounds of the sort column itself, and
# the city, whose indexes lead to the two sort orders (city_key, list_price | time, id).
_SERVED_WITH = {"ListPrice": {"min_price", "max_price", "city"}, "ModificationTimestamp": {"city"},
                "ListingKey": set()}


def _served(conditions: Conditions, sort_by: str) -> set[str]:
    """The conditions a walking page leaves visible: those an index leads to the sort order with.
    One status and one property type lead to ListPrice too (ix_listings_search_count)."""
    served = set(_SERVED_WITH[sort_by])
    lengths = dict(conditions)
    if sort_by == "ListPrice" and lengths.get("statuses") == 1 and lengths.get("property_types") == 1:
        served |= {"statuses", "property_types"}
    return served


def _radius(with_longitude: bool, c) -> list[ColumnElement]:
    """Great-circle (haversine) distance, after a bounding-box pre-filter the indexes can use."""
    lat2, lon2 = func.radians(Listing.latitude), func.radians(Listing.longitude)
    half_dlat, half_dlon = (lat2 - _param("lat_rad")) / 2, (lon2 - _param("lon_rad")) / 2
    a = func.sin(half_dlat) * func.sin(half_dlat) + _param("cos_lat") * func.cos(lat2) * func.sin(
        half_dlon) * func.sin(half_dlon)
    prefilter = [c(Listing.latitude).between(_param("lat_low"), _param("lat_high"))]
    if with_longitude:
        prefilter.append(c(Listing.longitude).between(_param("lon_low"), _param("lon_high")))
    # 2R asin(sqrt(a)) <= miles, without an asin and a sqrt per row: a <= sin^2(miles / 2R).
    return prefilter + [a <= _param("max_a")]


def radius_parameters(latitude: float, longitude: float, miles: float) -> tuple[str, dict]:
    """The radius condition's name and parameters for a centre and a distance."""
    dlat = math.degrees(miles / EARTH_RADIUS_MILES)
    coslat = max(math.cos(math.radians(latitude)), 1e-6)
    dlon = min(180.0, dlat / coslat)
    params = {"lat_rad": math.radians(latitude), "lon_rad": math.radians(longitude),
              "cos_lat": math.cos(math.radians(latitude)),
              "max_a": math.sin(miles / (2 * EARTH_RADIUS_MILES)) ** 2,
              "lat_low": latitude - dlat, "lat_high": latitude + dlat}
    if dlon < 180 and -180 <= longitude - dlon and longitude + dlon <= 180:
        params.update(lon_low=longitude - dlon, lon_high=longitude + dlon)
        return "radius", params
    return "radius_polar", params


# A shape's conditions: (name from _CONDITIONS, length of its list or 0), sorted.
Conditions = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PageShape:
    conditions: Conditions
    sort_by: str
    descending: bool
    nulls: bool  # the second phase: listings without the sort value, by id
    after: bool  # continues after a position (the token's)
    # SQLite: the search chooses the plan (its planner has no histograms to tell; PostgreSQL's
    # does). Walk the sort order and test each listing, when the matches are many (the exact
    # count says so): the filters are written opaque to the indexes. Otherwise collect the
    # matches through the filters' indexes and sort them: the position is written opaque, or
    # SQLite may walk the sort index from it through a million rows to find an area's few.
    guided: bool = False
    walk: bool = False

    @property
    def ordered_by_caller(self) -> bool:
        """A walking page on PostgreSQL, read with explicit sorts disabled (see
        ReadSession.prefer_index_order): an outer ORDER BY would then be planned as a walk of
        every listing to avoid sorting the page's few rows, so the caller puts them in order."""
        return self.walk and not self.guided and not self.nulls


def where(conditions: Conditions, walk: bool = False, sort_by: str = "ListingKey") -> list[ColumnElement]:
    clauses = [Listing.removed_at.is_(None)]
    served = _served(conditions, sort_by) if walk else None
    for name, count in conditions:
        write = _opaque if served is not None and name not in served else _shown
        clauses += _CONDITIONS[name](count, write)
    return clauses


@lru_cache(maxsize=2048)
def count_statement(conditions: Conditions) -> Select:
    """The exact count of a search. One that filters on sources and statuses alone sums the
    counts the database keeps per source and status (ListingCount, exact in every transaction):
    a few rows read, where counting would read every listing."""
    if {name for name, _ in conditions} <= {"sources", "statuses"}:
        lengths = dict(conditions)
        stmt = select(func.coalesce(func.sum(ListingCount.listings), 0)).where(ListingCount.removed.is_(False))
        if "sources" in lengths:
            stmt = stmt.where(_in(ListingCount.source_id, "sources", lengths["sources"]))
        if "statuses" in lengths:
            stmt = stmt.where(_in(ListingCount.standard_status, "statuses", lengths["statuses"]))
        return stmt
    return select(func.count()).select_from(Listing).where(*where(conditions))


@lru_cache(maxsize=4096)
def page_statement(shape: PageShape) -> Select:
    """Rows of one keyset phase, after the position (``after_value``, ``after_id``) if any,
    at most ``limit``.

    The page is chosen by ids first and its rows read after ("late row lookup"): where an
    index holds every column the choice needs (the area index holds the coordinates and the
    sort values), choosing reads no table row at all, and only the page's rows are fetched.
    """
    column = SORT_COLUMNS[shape.sort_by]
    ids = select(Listing.id).where(*where(shape.conditions, shape.walk, shape.sort_by))
    if shape.nulls:
        ids = ids.where(column.is_(None))
        if shape.after:
            after = _param("after_id")
            ids = ids.where(Listing.id < after if shape.descending else Listing.id > after)
        order = [Listing.id.desc() if shape.descending else Listing.id]
    else:
        ids = ids.where(column.is_not(None))
        if shape.after:
            ids = ids.where(_after(column, shape.descending, opaque=shape.guided and not shape.walk))
        order = [column.desc(), Listing.id.desc()] if shape.descending else [column, Listing.id]
    chosen = ids.order_by(*order).limit(_param("limit")).subquery("page")
    rows = select(*ROW_COLUMNS).join_from(chosen, Listing, Listing.id == chosen.c.id)
    return rows if shape.ordered_by_caller else rows.order_by(*order)


def _after(column, descending: bool, opaque: bool = False) -> ColumnElement:
    """(column, id) strictly after the position, written so that the first condition bounds an
    index range: SQLite does not start a range scan from a row-value comparison."""
    value, row_id = _param("after_value", column), _param("after_id")
    column = _opaque(column) if opaque else column
    if descending:
        return and_(column <= value, or_(column < value, Listing.id < row_id))
    return and_(column >= value, or_(column > value, Listing.id > row_id))


@lru_cache(maxsize=256)
def generation_statement(sources: int | None) -> Select:
    """The data generation signature (sum, count) of the sources a search covers, all of them
    (None) or ``sources`` parameters. Generations only grow, so the sum changes when any does."""
    stmt = select(func.coalesce(func.sum(Source.data_generation), 0), func.count())
    return stmt if sources is None else stmt.where(_in(Source.id, "sources", sources))


@lru_cache(maxsize=256)
def sources_statement(sources: int) -> Select:
    """Which of ``sources`` parameters name a source that exists."""
    return select(Source.id).where(_in(Source.id, "sources", sources))
