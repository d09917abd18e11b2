"""The four operations: plain functions of a call (session, caller) and the request's values.

Each returns the operation's output values in the order the contract declares them, as plain
records (tuples in field order, or mappings by field name): the SOAP endpoint writes them with
service/encode.py, and the spyne declarations in service/api.py (the reference the tests compare
the endpoint against) turn them into spyne objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Listing, Media
from service import feeds
from service.auth import Caller
from service.errors import Forbidden, NotFound, shown
from service.paging import PageTokens
from service.photos import PhotoUrls
from service.reader import ReadSession
from service.cache import CountCache
from service.search import SearchQuery, answer_key, search
from service.types import DETAIL_FIELDS, SUMMARY_FIELDS


@dataclass
class CallContext:
    """What one call carries: its database session (and a reader for the hot queries), who is
    calling, and the per-process helpers."""

    session: Session
    caller: Caller
    tokens: PageTokens
    photo_urls: PhotoUrls
    reads: ReadSession  # the hot queries' connection; closed with the call
    counts: CountCache | None = None
    generations: dict = field(default_factory=dict)  # data generation signatures read by this call

    def close(self) -> None:
        self.reads.close()


def search_listings(call: CallContext, **arguments) -> tuple:
    page = search(call.reads, call.caller, _search_query(**arguments), call.tokens, arguments.get("PageSize"),
                  arguments.get("PageToken"), call.counts, call.generations)
    return page.total, page.next_token, page.rows


def search_listings_key(call: CallContext, **arguments) -> tuple:
    """What a search's answer may be cached under (see service/cache.py)."""
    return answer_key(call.reads, call.caller, _search_query(**arguments), arguments, call.generations)


def _search_query(SourceId=None, City=None, PostalCode=None, StandardStatus=None, PropertyType=None,
                  MinPrice=None, MaxPrice=None, MinBedrooms=None, MinBathrooms=None, North=None, South=None,
                  East=None, West=None, Latitude=None, Longitude=None, RadiusMiles=None, ModifiedSince=None,
                  SortBy=None, SortDescending=None, PageSize=None, PageToken=None) -> SearchQuery:
    return SearchQuery(
        source_ids=tuple(SourceId or ()),
        city=City,
        postal_code=PostalCode,
        statuses=tuple(StandardStatus or ()),
        property_types=tuple(PropertyType or ()),
        min_price=MinPrice,
        max_price=MaxPrice,
        min_bedrooms=MinBedrooms,
        min_bathrooms=MinBathrooms,
        north=North, south=South, east=East, west=West,
        latitude=Latitude, longitude=Longitude, radius_miles=RadiusMiles,
        modified_since=ModifiedSince,
        sort_by=SortBy or "ListingKey",
        descending=bool(SortDescending),
    )


_DETAIL_COLUMNS = [getattr(Listing, column) for _, _, column in SUMMARY_FIELDS + DETAIL_FIELDS]


def get_listing(call: CallContext, SourceId: str, ListingKey: str) -> tuple:
    row = call.session.execute(
        select(*_DETAIL_COLUMNS, Listing.extra).where(*_visible(call.caller, SourceId, ListingKey))
    ).first()
    if row is None:
        raise NotFound(f"no listing {shown(ListingKey)} in source {shown(SourceId)}")
    *values, extra = row
    extras = [(str(k), None if v is None else str(v)) for k, v in sorted((extra or {}).items())]
    return (tuple(values) + (extras or None,),)


def get_listing_images(call: CallContext, SourceId: str, ListingKey: str) -> tuple:
    listing_id = call.session.scalar(select(Listing.id).where(*_visible(call.caller, SourceId, ListingKey)))
    if listing_id is None:
        raise NotFound(f"no listing {shown(ListingKey)} in source {shown(SourceId)}")
    media = call.session.scalars(select(Media).where(Media.listing_id == listing_id).order_by(Media.order))
    urls = call.photo_urls
    return ([(m.order, urls.url_for(m), m.width, m.height, m.content_type, m.modification_timestamp, m.caption)
             for m in media],)


def get_feed_status(call: CallContext, SourceId=None) -> tuple:
    return (feeds.statuses(call.session, call.caller, SourceId),)


def _visible(caller: Caller, source_id: str, listing_key: str) -> list:
    if not caller.can_see(source_id):
        raise Forbidden(f"not entitled to source {shown(source_id)}")
    return [Listing.source_id == source_id, Listing.listing_key == listing_key, Listing.removed_at.is_(None)]


# Operations whose answers may be cached, and the key of each answer.
ANSWER_KEYS = {"SearchListings": search_listings_key}

HANDLERS = {
    "SearchListings": search_listings,
    "GetListing": get_listing,
    "GetListingImages": get_listing_images,
    "GetFeedStatus": get_feed_status,
}
