"""The endpoint's answers equal, after canonicalization, what spyne writes for the same values.

spyne (service/api.py, service/types.py) declares the contract; service/encode.py writes the
answers without spyne's generic serializer. Each case serializes the same records both ways.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from spyne import MethodContext
from spyne.protocol import ProtocolBase
from spyne.server.null import NullServer

from service.api import ListingService, to_model
from service.app import MlsfeedsApplication
from service.encode import Encoder
from service.faults import to_fault
from service.errors import NotFound
from service.types import DETAIL_FIELDS, NS, SUMMARY_FIELDS, FeedStatus

APP = MlsfeedsApplication(None)
SERVER = NullServer(APP)
ENCODER = Encoder(ListingService, NS)
UTC = dt.timezone.utc
AWKWARD_TEXT = ["<a href='x'>&amp; \"q\" ></a>", "Zürich ça 東京", "astral 𝄞 🏠", "  padded\ttext\n",
                "line\r\nbreak", "]]>", ""]


def spyne_answer(operation: str, values) -> bytes:
    ctx = MethodContext(SERVER, MethodContext.SERVER)
    ctx.descriptor = APP.interface.service_method_map[f"{{{NS}}}{operation}"][0]
    kinds = list(ctx.descriptor.out_message._type_info.values())
    ctx.out_object = [to_model(kind, value) for kind, value in zip(kinds, values)]
    APP.out_protocol.serialize(ctx, ProtocolBase.RESPONSE)
    APP.out_protocol.create_out_string(ctx)
    return b"".join(ctx.out_string)


def spyne_fault(fault) -> bytes:
    ctx = MethodContext(SERVER, MethodContext.SERVER)
    ctx.out_error = fault
    APP.out_protocol.serialize(ctx, ProtocolBase.RESPONSE)
    APP.out_protocol.create_out_string(ctx)
    return b"".join(ctx.out_string)


def canonical(document: bytes) -> bytes:
    return etree.tostring(etree.fromstring(document), method="c14n")


def assert_same(operation: str, values) -> None:
    ours = ENCODER.response(operation, values)
    assert canonical(ours) == canonical(spyne_answer(operation, values))


def summary(**overrides) -> tuple:
    values = {
        "SourceId": "mls1", "ListingKey": "000123", "ListingId": "MLS1", "StandardStatus": "Active",
        "PropertyType": "Residential", "ListPrice": Decimal("250000.00"), "BedroomsTotal": 3,
        "BathroomsTotalInteger": 2, "LivingArea": Decimal("1268.50"), "UnparsedAddress": "1 Main St",
        "City": "Naples", "StateOrProvince": "FL", "PostalCode": "34102", "Latitude": 26.142036,
        "Longitude": -81.79481, "PhotosCount": 12,
        "ModificationTimestamp": dt.datetime(2026, 5, 25, 8, 31, 33, tzinfo=UTC),
    }
    values.update(overrides)
    return tuple(values[name] for name, _, _ in SUMMARY_FIELDS)


def test_a_search_page_is_written_as_spyne_writes_it():
    rows = [summary(), summary(ListingKey="2", ListPrice=None, Latitude=None, ModificationTimestamp=None)]
    assert_same("SearchListings", (27_697, "AbC-_token", rows))


@pytest.mark.parametrize("text", AWKWARD_TEXT)
def test_awkward_text_in_every_string_field(text):
    strings = {name: text for name, kind, _ in SUMMARY_FIELDS if kind.get_type_name() == "string"}
    assert_same("SearchListings", (1, text, [summary(**strings)]))


@pytest.mark.parametrize("price,area", [
    (Decimal("123456789012.34"), Decimal("0.01")),
    (Decimal("0"), Decimal("-0.50")),
    (Decimal("999999999999.99"), Decimal("1")),
    (Decimal("1.2345678901234567890"), Decimal("100000000")),
])
def test_long_and_odd_decimals(price, area):
    assert_same("SearchListings", (1, None, [summary(ListPrice=price, LivingArea=area)]))


@pytest.mark.parametrize("latitude,longitude", [(0.0, -0.0), (1e-07, 179.99999999999997), (-89.5, 1e21)])
def test_doubles_as_python_writes_them(latitude, longitude):
    assert_same("SearchListings", (1, None, [summary(Latitude=latitude, Longitude=longitude)]))


@pytest.mark.parametrize("moment", [
    dt.datetime(2026, 5, 25, 8, 31, 33, tzinfo=UTC),
    dt.datetime(2026, 5, 25, 8, 31, 33, 120, tzinfo=UTC),
    dt.datetime(2026, 3, 8, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(1, 1, 1, tzinfo=UTC),
])
def test_datetimes_with_zones(moment):
    assert_same("SearchListings", (1, None, [summary(ModificationTimestamp=moment)]))


def test_an_empty_page_and_no_token():
    assert_same("SearchListings", (0, None, []))


def test_every_optional_field_absent():
    required = {"SourceId", "ListingKey", "PhotosCount"}
    absent = {name: None for name, _, _ in SUMMARY_FIELDS if name not in required}
    assert_same("SearchListings", (1, None, [summary(**absent)]))


def listing(extra) -> tuple:
    details = {name: None for name, _, _ in DETAIL_FIELDS}
    details.update(PropertySubType="Condo & <Villa>", LotSizeAcres=Decimal("0.2500"), YearBuilt=1999,
                   PublicRemarks="Ünïcödé 𝄞 remarks <b>bold</b>", FirstSeenTimestamp=dt.datetime(2026, 1, 2, tzinfo=UTC),
                   PhotosChangeTimestamp=dt.datetime(2026, 1, 3, 4, 5, 6, 7, tzinfo=UTC))
    return summary() + tuple(details[name] for name, _, _ in DETAIL_FIELDS) + (extra,)


@pytest.mark.parametrize("extra", [None, [("Pool", "Yes"), ("Empty", None), ("Amp&<>", "v&<>")]])
def test_a_listing_with_and_without_extra_fields(extra):
    assert_same("GetListing", (listing(extra),))


def test_images_with_absent_optionals():
    images = [
        (1, "https://cdn.example/p/1.jpg?a=1&b=2", 1024, 768, "image/jpeg",
         dt.datetime(2026, 1, 1, tzinfo=UTC), "Front <view> & garden"),
        (2, "https://cdn.example/p/2.jpg", None, None, None, None, None),
    ]
    assert_same("GetListingImages", (images,))
    assert_same("GetListingImages", ([],))


def test_feed_statuses_with_and_without_a_run():
    bare = {"SourceId": "a", "Name": "A & B <MLS>", "Enabled": True, "Timezone": "America/New_York",
            "EarliestDownload": "02:30", "ListingCount": 0, "ImagesReady": False}
    full = {name: None for name in FeedStatus._type_info} | bare | {
        "Enabled": False, "RunId": 7, "RunKind": "full", "RunStatus": "failed", "CurrentStep": "load",
        "Attempt": 3, "BusinessDate": dt.date(2026, 12, 3), "StartedAt": dt.datetime(2026, 12, 3, 7, tzinfo=UTC),
        "RowsParsed": 2**40, "ImagesReady": True, "LastError": "line 3: <bad> & worse\r\nTraceback...",
    }
    assert_same("GetFeedStatus", ([bare, full],))


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"
                             + "".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32)])))))
@settings(max_examples=300, deadline=None, derandomize=True)  # the same examples every run: CI must not pass or fail by chance
def test_any_xml_text_is_written_as_spyne_writes_it(text):
    assert_same("SearchListings", (1, text, [summary(UnparsedAddress=text, City=text)]))


def test_characters_xml_cannot_carry_become_replacement_characters():
    body = ENCODER.response("SearchListings", (1, None, [summary(City="a\x00b\x1bc\ud800d")]))
    city = etree.fromstring(body).find(f".//{{{NS}}}City").text
    assert city == "a\ufffdb\ufffdc\ufffdd"


def test_a_declared_fault_is_written_as_spyne_writes_it():
    ours = ENCODER.fault("Client.NotFound", "no listing 'x<&>'", "NotFound")
    assert canonical(ours) == canonical(spyne_fault(to_fault(NotFound("no listing 'x<&>'"))))


def test_the_server_fault_is_written_as_spyne_writes_it():
    from spyne import Fault

    ours = ENCODER.fault("Server", "Internal Error")
    assert canonical(ours) == canonical(spyne_fault(Fault("Server", "Internal Error")))
