"""The contract: the four SOAP operations as spyne declarations, from which the WSDL is written.

The service answers through its own endpoint (service/endpoint.py), which decodes requests and
writes responses from these same declarations. The spyne methods below still work: they run
the same operations (service/operations.py) and let spyne serialize the result, which makes
this module the reference implementation that the endpoint's output is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping

from spyne import Boolean, DateTime, Decimal, Double, Integer32, Integer64, ServiceBase, rpc
from spyne.model.complex import Array, ComplexModelBase

from service import operations
from service.faults import DECLARED
from service.types import (
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
        return _reference(ctx, "SearchListings", locals())

    @rpc(
        required(Text),
        required(Text),
        _returns=required(wire.Listing),
        _out_variable_name="Listing",
        _throws=DECLARED,
    )
    def GetListing(ctx, SourceId, ListingKey):
        return _reference(ctx, "GetListing", locals())

    @rpc(
        required(Text),
        required(Text),
        _returns=required(ImageArray),
        _out_variable_name="Images",
        _throws=DECLARED,
    )
    def GetListingImages(ctx, SourceId, ListingKey):
        return _reference(ctx, "GetListingImages", locals())

    @rpc(
        optional(Text),
        _returns=required(FeedStatusArray),
        _out_variable_name="Feeds",
        _throws=DECLARED,
    )
    def GetFeedStatus(ctx, SourceId):
        return _reference(ctx, "GetFeedStatus", locals())


def _reference(ctx, operation: str, arguments: dict):
    """Run an operation through spyne: the reference the endpoint's own encoding is held to."""
    arguments = {name: value for name, value in arguments.items() if name != "ctx"}
    values = operations.HANDLERS[operation](ctx.udc, **arguments)
    out_types = list(ListingService.public_methods[operation].out_message._type_info.values())
    models = [to_model(kind, value) for kind, value in zip(out_types, values)]
    return models[0] if len(models) == 1 else tuple(models)


def to_model(kind, value):
    """A plain record (tuple in field order, or mapping by name) as an instance of a spyne type."""
    if value is None:
        return None
    if issubclass(kind, Array):
        (item_kind,) = kind._type_info.values()
        return [to_model(item_kind, item) for item in value]
    if not issubclass(kind, ComplexModelBase):
        return value
    fields = kind._type_info
    record = value if isinstance(value, Mapping) else dict(zip(fields.keys(), value))
    model = getattr(kind, "__orig__", None) or kind  # customized copies are not to be instantiated
    return model(**{name: to_model(fields[name], v) for name, v in record.items() if name in fields})
