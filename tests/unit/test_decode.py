"""Request decoding agrees with libxml2's validation against the published WSDL's schema.

The decoder (service/decode.py) replaces schema validation on the request path; each case here
is an operation element checked both ways: accepted by one exactly when accepted by the other.
Two documented liberties are tested apart: ``xsi:nil`` on an optional element means absent,
and the messages name the element in plain words.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from service.api import ListingService
from service.decode import operations_of
from service.errors import InvalidArgument
from service.types import NS

WSDL = Path(__file__).resolve().parents[2] / "wsdl" / "mlsfeeds.wsdl"
OPERATIONS = operations_of(ListingService, NS)
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _schema() -> etree.XMLSchema:
    types = etree.parse(str(WSDL)).find(".//{http://www.w3.org/2001/XMLSchema}schema")
    return etree.XMLSchema(etree.fromstring(etree.tostring(types)))


SCHEMA = _schema()


def element(operation: str, inner: str) -> etree._Element:
    return etree.fromstring(f'<m:{operation} xmlns:m="{NS}" xmlns:xsi="{XSI}">{inner}</m:{operation}>')


def decoder_accepts(operation: str, inner: str) -> bool:
    try:
        OPERATIONS[operation].decode(element(operation, inner))
    except InvalidArgument:
        return False
    return True


INT_FORMS = ["0", "25", "+25", "-3", " 25 ", "007", "2147483647", "2147483648", "-2147483649", "2.5", "1e3",
             "", "abc", "0x10", "٣"]
DECIMAL_FORMS = ["250000", "250000.50", "+1.5", "-.5", "5.", ".5", "1e5", "", "1,000", " 42 ", "NaN", "INF"]
DOUBLE_FORMS = ["26.1", "-81.5", "1e3", "1E-3", ".5", "5.", "INF", "-INF", "+INF", "NaN", "nan", "inf", "",
                "1,5", " 7 ", "0x1p3"]
BOOLEAN_FORMS = ["true", "false", "1", "0", " true ", "True", "yes", ""]
DATETIME_FORMS = ["2026-05-01T12:00:00Z", "2026-05-01T12:00:00", "2026-05-01T12:00:00.123456+05:30",
                  "2026-05-01T12:00:00-14:00", "2026-05-01T24:00:00Z", "2026-02-29T00:00:00Z",
                  "2026-05-01T25:00:00Z", "2026-05-01 12:00:00", "2026-05-01", "2026-13-01T00:00:00Z",
                  "2026-05-01T12:00:00+15:00", "yesterday", ""]
SORT_FORMS = ["ListPrice", "ModificationTimestamp", "ListingKey", "listprice", " ListPrice", "Bedrooms", ""]

FIELD_CASES = (
    [("PageSize", v) for v in INT_FORMS] + [("MinPrice", v) for v in DECIMAL_FORMS]
    + [("Latitude", v) for v in DOUBLE_FORMS] + [("SortDescending", v) for v in BOOLEAN_FORMS]
    + [("ModifiedSince", v) for v in DATETIME_FORMS] + [("SortBy", v) for v in SORT_FORMS]
)


@pytest.mark.parametrize("name,text", FIELD_CASES)
def test_a_value_is_accepted_exactly_when_the_schema_accepts_it(name, text):
    inner = f"<m:{name}>{text}</m:{name}>"
    assert decoder_accepts("SearchListings", inner) == SCHEMA.validate(element("SearchListings", inner))


STRUCTURE_CASES = [
    ("SearchListings", ""),
    ("SearchListings", "<m:SourceId>a</m:SourceId><m:SourceId>b</m:SourceId><m:City>X</m:City>"),
    ("SearchListings", "<m:City>X</m:City><m:SourceId>a</m:SourceId>"),  # out of order
    ("SearchListings", "<m:City>X</m:City><m:City>Y</m:City>"),  # twice
    ("SearchListings", "<m:Color>red</m:Color>"),  # unknown
    ("SearchListings", "<City>X</City>"),  # unqualified
    ("SearchListings", "<m:City><m:b>X</m:b></m:City>"),  # an element in a simple value
    ("SearchListings", '<m:City lang="en">X</m:City>'),  # an attribute
    ("SearchListings", "text<m:City>X</m:City>"),  # text between elements
    ("SearchListings", "<m:StandardStatus>Active</m:StandardStatus><m:StandardStatus>Pending</m:StandardStatus>"),
    ("GetListing", "<m:SourceId>a</m:SourceId><m:ListingKey>k</m:ListingKey>"),
    ("GetListing", "<m:SourceId>a</m:SourceId>"),  # required element missing
    ("GetListing", "<m:ListingKey>k</m:ListingKey><m:SourceId>a</m:SourceId>"),
    ("GetListing", "<m:SourceId></m:SourceId><m:ListingKey/>"),  # empty strings are strings
    ("GetListingImages", "<m:SourceId>a</m:SourceId><m:ListingKey>k</m:ListingKey><m:Extra/>"),
    ("GetFeedStatus", ""),
    ("GetFeedStatus", "<m:SourceId>a</m:SourceId><m:SourceId>b</m:SourceId>"),
]


@pytest.mark.parametrize("operation,inner", STRUCTURE_CASES)
def test_a_structure_is_accepted_exactly_when_the_schema_accepts_it(operation, inner):
    assert decoder_accepts(operation, inner) == SCHEMA.validate(element(operation, inner))


def test_values_come_out_typed():
    values = OPERATIONS["SearchListings"].decode(element("SearchListings", (
        "<m:SourceId>a</m:SourceId><m:SourceId>b</m:SourceId><m:MinPrice> 250000.50 </m:MinPrice>"
        "<m:MinBedrooms>3</m:MinBedrooms><m:Latitude>-INF</m:Latitude><m:ModifiedSince>2026-05-01T12:00:00+02:00"
        "</m:ModifiedSince><m:SortBy>ListPrice</m:SortBy><m:SortDescending>1</m:SortDescending>"
    )))
    assert values["SourceId"] == ["a", "b"] and values["City"] is None and values["StandardStatus"] == []
    assert values["MinPrice"] == Decimal("250000.50") and values["MinBedrooms"] == 3
    assert values["Latitude"] == float("-inf")
    assert values["ModifiedSince"] == dt.datetime(2026, 5, 1, 10, tzinfo=dt.timezone.utc)
    assert values["SortBy"] == "ListPrice" and values["SortDescending"] is True


def test_a_datetime_without_a_zone_is_utc():
    values = OPERATIONS["SearchListings"].decode(
        element("SearchListings", "<m:ModifiedSince>2026-05-01T12:00:00</m:ModifiedSince>"))
    assert values["ModifiedSince"] == dt.datetime(2026, 5, 1, 12, tzinfo=dt.timezone.utc)


def test_nil_on_an_optional_element_means_absent():
    values = OPERATIONS["SearchListings"].decode(element("SearchListings", (
        '<m:City xsi:nil="true"/><m:PageSize xsi:nil="1"/><m:PageToken xsi:nil="true"></m:PageToken>'
    )))
    assert values["City"] is None and values["PageSize"] is None and values["PageToken"] is None


@pytest.mark.parametrize("inner,message", [
    ('<m:SourceId xsi:nil="true"/><m:ListingKey>k</m:ListingKey>', "SourceId is required"),
    ('<m:SourceId xsi:nil="true">a</m:SourceId><m:ListingKey>k</m:ListingKey>', "marked xsi:nil but has content"),
    ('<m:SourceId xsi:nil="maybe">a</m:SourceId><m:ListingKey>k</m:ListingKey>', "xsi:nil must be true or false"),
])
def test_nil_is_not_a_way_around_a_required_element(inner, message):
    with pytest.raises(InvalidArgument, match=message):
        OPERATIONS["GetListing"].decode(element("GetListing", inner))


@pytest.mark.parametrize("inner,message", [
    ("<m:PageSize>abc</m:PageSize>", "PageSize: 'abc' is not a whole number"),
    ("<m:PageSize>99999999999</m:PageSize>", "PageSize: '99999999999' is out of range for xs:int"),
    ("<m:SortBy>Price</m:SortBy>", "SortBy: 'Price' is not one of ListPrice, ModificationTimestamp, ListingKey"),
    ("<m:MinPrice>1,000</m:MinPrice>", "MinPrice: '1,000' is not a decimal number"),
    ("<m:ModifiedSince>yesterday</m:ModifiedSince>", "ModifiedSince: 'yesterday' is not a date and time"),
    ("<m:ModifiedSince>2026-02-30T00:00:00Z</m:ModifiedSince>", "is not a valid date and time"),
    ("<m:Color>red</m:Color>", "element Color is not part of SearchListings"),
    ("<m:City>X</m:City><m:SourceId>a</m:SourceId>", "SourceId is out of order in SearchListings"),
    ("<m:City>X</m:City><m:City>Y</m:City>", "City may appear only once in SearchListings"),
    ("<City>X</City>", "City must be in the namespace urn:mlsfeeds:soap:1"),
    ("<m:PageSize>" + "9" * 100_000 + "</m:PageSize>", "PageSize: '99999"),
])
def test_messages_are_plain_sentences_naming_the_element(inner, message):
    with pytest.raises(InvalidArgument) as raised:
        OPERATIONS["SearchListings"].decode(element("SearchListings", inner))
    text = str(raised.value)
    assert message in text
    assert len(text) < 300 and "SCHEMAV" not in text and "b'" not in text and 'b"' not in text
