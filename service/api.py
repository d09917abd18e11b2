"""The four SOAP operations. Each runs inside one database session opened by the application
(see app.py) and turns ORM rows into wire objects before the session closes."""

from __future__ import annotations

from spyne import Boolean, DateTime, Decimal, Double, Integer32, Integer64, ServiceBase, rpc
from sqlalchemy import select

from core.models import Listing, Media
from service import feeds, photos
from service.errors import Forbidden, NotFound
from service.faults import DECLARED
from service.search import SearchQuery, search
from service.types import (
    DETAIL_FIELDS,
    SUMMARY_FIELDS,
    ExtraField,
    FeedStatusArray,
    ImageArray,
    ListingSummaryArray,
    SortKey,
    Text,
    optional,
    repeated,
    required,
)
from service import types as wire


class ListingService(ServiceBase):
    @rpc(
        repeated(Text),
        optional(Text),
        optional(Text),
        repeated(Text),
        repeated(Text),
        optional(Decimal),
        optional(Decimal),
        optional(Integer32),
        optional(Integer32),
        optional(Double),
        optional(Double),
        optional(Double),
        optional(Double),
        optional(Double),
        optional(Double),
        optional(Double),
        optional(DateTime),
        SortKey,
        optional(Boolean),
        optional(Integer32),
        optional(Text),
        _returns=(required(Integer64), optional(Text), required(ListingSummaryArray)),
        _out_variable_names=("TotalCount", "NextPageToken", "Listings"),
        _throws=DECLARED,
    )
    def SearchListings(ctx, SourceId, City, PostalCode, StandardStatus, PropertyType,
                       MinPrice, MaxPrice, MinBedrooms, MinBathrooms, North, South, East, West,
                       Latitude, Longitude, RadiusMiles, ModifiedSince, SortBy, SortDescending,
                       PageSize, PageToken):
        query = SearchQuery(
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
        udc = ctx.udc
        page = search(udc.session, udc.caller, query, udc.tokens, PageSize, PageToken)
        summaries = [_summary(row) for row in page.rows]
        return page.total, page.next_token, summaries

    @rpc(
        required(Text),
        required(Text),
        _returns=required(wire.Listing),
        _out_variable_name="Listing",
        _throws=DECLARED,
    )
    def GetListing(ctx, SourceId, ListingKey):
        row = _visible_listing(ctx.udc, SourceId, ListingKey)
        return _detail(row)

    @rpc(
        required(Text),
        required(Text),
        _returns=required(ImageArray),
        _out_variable_name="Images",
        _throws=DECLARED,
    )
    def GetListingImages(ctx, SourceId, ListingKey):
        row = _visible_listing(ctx.udc, SourceId, ListingKey)
        media = ctx.udc.session.scalars(
            select(Media).where(Media.listing_id == row.id).order_by(Media.order)
        )
        return [photos.image(m, ctx.udc.photo_urls) for m in media]

    @rpc(
        optional(Text),
        _returns=required(FeedStatusArray),
        _out_variable_name="Feeds",
        _throws=DECLARED,
    )
    def GetFeedStatus(ctx, SourceId):
        return feeds.statuses(ctx.udc.session, ctx.udc.caller, SourceId)


def _visible_listing(udc, source_id: str, listing_key: str) -> Listing:
    if not udc.caller.can_see(source_id):
        raise Forbidden(f"not entitled to source {source_id!r}")
    row = udc.session.scalar(
        select(Listing).where(
            Listing.source_id == source_id,
            Listing.listing_key == listing_key,
            Listing.removed_at.is_(None),
        )
    )
    if row is None:
        raise NotFound(f"no listing {listing_key!r} in source {source_id!r}")
    return row


def _summary(row: Listing) -> wire.ListingSummary:
    return wire.ListingSummary(**{name: getattr(row, column) for name, _, column in SUMMARY_FIELDS})


def _detail(row: Listing) -> wire.Listing:
    values = {name: getattr(row, column) for name, _, column in SUMMARY_FIELDS + DETAIL_FIELDS}
    extra = row.extra or {}
    if extra:
        values["ExtraFields"] = [
            ExtraField(Name=str(k), Value=None if v is None else str(v)) for k, v in sorted(extra.items())
        ]
    return wire.Listing(**values)
