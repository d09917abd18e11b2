"""Wire types of the SOAP contract, named after the RESO Data Dictionary.

Every optional element is ``minOccurs=0`` and not nillable: absent means unknown. That keeps
Java's JAXB on plain boxed types (no ``JAXBElement``) and .NET on ``xxxSpecified`` flags only.
Integers are ``xs:int``/``xs:long`` rather than ``xs:integer``, which .NET reads as a string.
"""

from __future__ import annotations

from spyne import (
    Array,
    Boolean,
    ComplexModel,
    Date,
    DateTime,
    Decimal,
    Double,
    Integer32,
    Integer64,
    Unicode,
)

NS = "urn:mlsfeeds:soap:1"
SORT_KEYS = ("ListPrice", "ModificationTimestamp", "ListingKey")


def optional(kind, **kwargs):
    return kind.customize(min_occurs=0, nillable=False, **kwargs)


def required(kind, **kwargs):
    return kind.customize(min_occurs=1, nillable=False, **kwargs)


def repeated(kind, **kwargs):
    return kind.customize(min_occurs=0, max_occurs="unbounded", nillable=False, **kwargs)


Text = Unicode
# What SearchListings can sort by: an xs:enumeration, so typed clients get an enum.
SortKey = Unicode(values=list(SORT_KEYS), type_name="SortKey", min_occurs=0, nillable=False)
SortKey.__namespace__ = NS

# (wire name, type, column) of the fields a search result carries, in wire order.
SUMMARY_FIELDS = [
    ("SourceId", required(Text), "source_id"),
    ("ListingKey", required(Text), "listing_key"),
    ("ListingId", optional(Text), "listing_id"),
    ("StandardStatus", optional(Text), "standard_status"),
    ("PropertyType", optional(Text), "property_type"),
    ("ListPrice", optional(Decimal), "list_price"),
    ("BedroomsTotal", optional(Integer32), "bedrooms_total"),
    ("BathroomsTotalInteger", optional(Integer32), "bathrooms_total_integer"),
    ("LivingArea", optional(Decimal), "living_area"),
    ("UnparsedAddress", optional(Text), "unparsed_address"),
    ("City", optional(Text), "city"),
    ("StateOrProvince", optional(Text), "state_or_province"),
    ("PostalCode", optional(Text), "postal_code"),
    ("Latitude", optional(Double), "latitude"),
    ("Longitude", optional(Double), "longitude"),
    ("PhotosCount", required(Integer32), "photos_count"),
    ("ModificationTimestamp", optional(DateTime), "modification_timestamp"),
]

# The rest of a listing, for GetListing.
DETAIL_FIELDS = [
    ("PropertySubType", optional(Text), "property_sub_type"),
    ("LotSizeAcres", optional(Decimal), "lot_size_acres"),
    ("YearBuilt", optional(Integer32), "year_built"),
    ("StreetNumber", optional(Text), "street_number"),
    ("StreetName", optional(Text), "street_name"),
    ("UnitNumber", optional(Text), "unit_number"),
    ("CountyOrParish", optional(Text), "county_or_parish"),
    ("GeocodePrecision", optional(Text), "geocode_precision"),
    ("PublicRemarks", optional(Text), "public_remarks"),
    ("ListAgentFullName", optional(Text), "list_agent_full_name"),
    ("ListOfficeName", optional(Text), "list_office_name"),
    ("PhotosChangeTimestamp", optional(DateTime), "photos_change_timestamp"),
    ("FirstSeenTimestamp", required(DateTime), "first_seen"),
]


def array_of(item):
    """A wrapper element holding zero or more non-nil ``item`` elements."""
    return Array(item.customize(nillable=False), type_name=item.get_type_name() + "Array")


class ListingSummary(ComplexModel):
    __namespace__ = NS
    _type_info = [(name, kind) for name, kind, _ in SUMMARY_FIELDS]


class ExtraField(ComplexModel):
    """A source field with no RESO column, passed through as text."""

    __namespace__ = NS
    _type_info = [("Name", required(Text)), ("Value", optional(Text))]


class Listing(ComplexModel):
    __namespace__ = NS
    _type_info = [(name, kind) for name, kind, _ in SUMMARY_FIELDS + DETAIL_FIELDS] + [
        ("ExtraFields", optional(array_of(ExtraField))),
    ]


class Image(ComplexModel):
    __namespace__ = NS
    _type_info = [
        ("Order", required(Integer32)),
        ("Url", required(Text)),
        ("Width", optional(Integer32)),
        ("Height", optional(Integer32)),
        ("ContentType", optional(Text)),
        ("ModificationTimestamp", optional(DateTime)),
        ("Caption", optional(Text)),
    ]


class FeedStatus(ComplexModel):
    """A source, its schedule, and its latest run."""

    __namespace__ = NS
    _type_info = [
        ("SourceId", required(Text)),
        ("Name", required(Text)),
        ("Enabled", required(Boolean)),
        ("Timezone", required(Text)),
        ("EarliestDownload", required(Text)),  # local time of day, HH:MM
        ("RepeatEverySeconds", optional(Integer32)),
        ("ListingCount", required(Integer64)),
        ("RunId", optional(Integer64)),
        ("RunKind", optional(Text)),
        ("RunStatus", optional(Text)),
        ("CurrentStep", optional(Text)),
        ("Attempt", optional(Integer32)),
        ("BusinessDate", optional(Date)),
        ("StartedAt", optional(DateTime)),
        ("FinishedAt", optional(DateTime)),
        ("LastSuccessAt", optional(DateTime)),
        ("RowsParsed", optional(Integer64)),
        ("RowsRejected", optional(Integer64)),
        ("RowsInserted", optional(Integer64)),
        ("RowsUpdated", optional(Integer64)),
        ("RowsRemoved", optional(Integer64)),
        ("RowsGeocoded", optional(Integer64)),
        ("PhotosFetched", optional(Integer64)),
        ("PhotosStored", optional(Integer64)),
        ("PhotosUnchanged", optional(Integer64)),
        ("PhotosFailed", optional(Integer64)),
        ("ImagesReady", required(Boolean)),
        ("ImagesReadyAt", optional(DateTime)),
        ("LastError", optional(Text)),
    ]


ListingSummaryArray = array_of(ListingSummary)
ImageArray = array_of(Image)
FeedStatusArray = array_of(FeedStatus)
