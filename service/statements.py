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

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select

from core.models import Listing, Source
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


def _geo(column, walk: bool):
    """A coordinate column, or (``walk``) the same value hidden from the indexes, so that the
    database walks the sort order instead of the coordinates (see PageShape.walk)."""
    return column + 0 if walk else column


# Each condition: its SQL, given the length of its list (lists only) and whether the page walks
# the sort order -> the clauses it adds.
_CONDITIONS = {
    "sources": lambda n: [_in(Listing.source_id, "sources", n)],
    "city": lambda n: [Listing.city_key == _param("city")],
    "postal_code": lambda n: [Listing.postal_code == _param("postal_code")],
    "statuses": lambda n: [_in(Listing.standard_status, "statuses", n)],
    "property_types": lambda n: [_in(Listing.property_type, "property_types", n)],
    "min_price": lambda n: [Listing.list_price >= _param("min_price", Listing.list_price)],
    "max_price": lambda n: [Listing.list_price <= _param("max_price", Listing.list_price)],
    "min_bedrooms": lambda n: [Listing.bedrooms_total >= _param("min_bedrooms")],
    "min_bathrooms": lambda n: [Listing.bathrooms_total_integer >= _param("min_bathrooms")],
    "box": lambda n, walk=False: [_geo(Listing.latitude, walk).between(_param("south"), _param("north")),
                                  _geo(Listing.longitude, walk).between(_param("west"), _param("east"))],
    # A box across the antimeridian: west is east of east.
    "box_wrapped": lambda n, walk=False: [
        _geo(Listing.latitude, walk).between(_param("south"), _param("north")),
        or_(_geo(Listing.longitude, walk) >= _param("west"), _geo(Listing.longitude, walk) <= _param("east"))],
    "radius": lambda n, walk=False: _radius(with_longitude=True, walk=walk),
    "radius_polar": lambda n, walk=False: _radius(with_longitude=False, walk=walk),
    "modified_since": lambda n: [Listing.modification_timestamp >= _param("modified_since",
                                                                       Listing.modification_timestamp)],
}


GEO = frozenset({"box", "box_wrapped", "radius", "radius_polar"})


def _radius(with_longitude: bool, walk: bool = False) -> list[ColumnElement]:
    """Great-circle (haversine) distance, after a bounding-box pre-filter the indexes can use."""
    lat2, lon2 = func.radians(Listing.latitude), func.radians(Listing.longitude)
    half_dlat, half_dlon = (lat2 - _param("lat_rad")) / 2, (lon2 - _param("lon_rad")) / 2
    a = func.sin(half_dlat) * func.sin(half_dlat) + _param("cos_lat") * func.cos(lat2) * func.sin(
        half_dlon) * func.sin(half_dlon)
    distance = 2 * EARTH_RADIUS_MILES * func.asin(func.sqrt(a))
    prefilter = [_geo(Listing.latitude, walk).between(_param("lat_low"), _param("lat_high"))]
    if with_longitude:
        prefilter.append(_geo(Listing.longitude, walk).between(_param("lon_low"), _param("lon_high")))
    return prefilter + [distance <= _param("miles")]


def radius_parameters(latitude: float, longitude: float, miles: float) -> tuple[str, dict]:
    """The radius condition's name and parameters for a centre and a distance."""
    dlat = math.degrees(miles / EARTH_RADIUS_MILES)
    coslat = max(math.cos(math.radians(latitude)), 1e-6)
    dlon = min(180.0, dlat / coslat)
    params = {"lat_rad": math.radians(latitude), "lon_rad": math.radians(longitude),
              "cos_lat": math.cos(math.radians(latitude)), "miles": miles,
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
    # Walk the sort order, testing the coordinates row by row, rather than collect every listing
    # in the area and sort them: the better plan when the area holds many listings, which the
    # search knows from its exact count and the planner cannot tell from its statistics.
    walk: bool = False


def where(conditions: Conditions, walk: bool = False) -> list[ColumnElement]:
    clauses = [Listing.removed_at.is_(None)]
    for name, count in conditions:
        clauses += _CONDITIONS[name](count, walk) if name in GEO else _CONDITIONS[name](count)
    return clauses


@lru_cache(maxsize=2048)
def count_statement(conditions: Conditions) -> Select:
    return select(func.count()).select_from(Listing).where(*where(conditions))


@lru_cache(maxsize=4096)
def page_statement(shape: PageShape) -> Select:
    """Rows of one keyset phase, after the position (``after_value``, ``after_id``) if any,
    at most ``limit``."""
    column = SORT_COLUMNS[shape.sort_by]
    stmt = select(*ROW_COLUMNS).where(*where(shape.conditions, shape.walk))
    if shape.nulls:
        stmt = stmt.where(column.is_(None))
        if shape.after:
            after = _param("after_id")
            stmt = stmt.where(Listing.id < after if shape.descending else Listing.id > after)
        order = [Listing.id.desc() if shape.descending else Listing.id]
    else:
        stmt = stmt.where(column.is_not(None))
        if shape.after:
            stmt = stmt.where(_after(column, shape.descending))
        order = [column.desc(), Listing.id.desc()] if shape.descending else [column, Listing.id]
    return stmt.order_by(*order).limit(_param("limit"))


@lru_cache(maxsize=256)
def _after(column, descending: bool) -> ColumnElement:
    """(column, id) strictly after the position, written so that the first condition bounds an
    index range: SQLite does not start a range scan from a row-value comparison."""
    value, row_id = _param("after_value", column), _param("after_id")
    if descending:
        return and_(column <= value, or_(column < value, Listing.id < row_id))
    return and_(column >= value, or_(column > value, Listing.id > row_id))


def generation_statement(sources: int | None) -> Select:
    """The data generation signature (sum, count) of the sources a search covers: all of them
    (None), or ``sources`` parameters. Generations only grow, so the sum changes when any does."""
    stmt = select(func.coalesce(func.sum(Source.data_generation), 0), func.count())
    return stmt if sources is None else stmt.where(_in(Source.id, "sources", sources))


@lru_cache(maxsize=256)
def sources_statement(sources: int) -> Select:
    """Which of ``sources`` parameters name a source that exists."""
    return select(Source.id).where(_in(Source.id, "sources", sources))
