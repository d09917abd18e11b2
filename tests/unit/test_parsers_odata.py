import io
import json

import pytest

from pipeline.errors import FeedFormatError
from pipeline.parsers import parser_for
from pipeline.parsers.odata import PARSER

CONTEXT = "https://api.example.com/odata/$metadata#Property"


def parse(page) -> list[dict]:
    data = page if isinstance(page, bytes) else json.dumps(page).encode()
    return list(PARSER.records(io.BytesIO(data), {}))


def test_the_registry_gives_this_parser_for_odata():
    assert parser_for("odata") is PARSER


def test_each_object_of_value_is_a_record_with_expanded_media_kept():
    listing = {
        "@odata.id": "Property('1')",
        "ListingKey": "1",
        "ListPrice": 349000,
        "Latitude": 26.14,
        "ModificationTimestamp": "2026-05-01T12:00:00Z",
        "Media@odata.count": 2,
        "Media": [
            {"MediaKey": "m1", "Order": 1, "MediaURL": "https://p.example/1.jpg"},
            {"MediaKey": "m2", "Order": 2, "MediaURL": "https://p.example/2.jpg"},
        ],
    }
    page = {"@odata.context": CONTEXT, "@odata.count": 2, "value": [listing, {"ListingKey": "2", "Media": []}],
            "@odata.nextLink": "https://api.example.com/odata/Property?$skip=2"}
    assert parse(page) == [listing, {"ListingKey": "2", "Media": []}]


def test_the_next_link_before_value_is_ignored_too():
    page = {"@odata.nextLink": "https://x/next", "@odata.context": CONTEXT, "value": [{"ListingKey": "1"}]}
    assert parse(page) == [{"ListingKey": "1"}]


def test_an_empty_page_has_no_records():
    assert parse({"@odata.context": CONTEXT, "value": []}) == []


def test_an_odata_error_body_fails_with_the_servers_message():
    body = {"error": {"code": "Unauthorized", "message": "The access token has expired"}}
    with pytest.raises(FeedFormatError, match="The access token has expired"):
        parse(body)


def test_a_page_without_value_fails():
    with pytest.raises(FeedFormatError, match='"value"'):
        parse({"@odata.context": CONTEXT, "items": []})


def test_a_page_whose_value_is_a_single_entity_fails():
    with pytest.raises(FeedFormatError, match="leads to an object"):
        parse({"@odata.context": CONTEXT, "value": {"ListingKey": "1"}})


def test_malformed_json_fails():
    with pytest.raises(FeedFormatError, match="malformed JSON"):
        parse(b'{"value": [{"ListingKey": "1"},]}')


def test_an_html_error_page_fails():
    with pytest.raises(FeedFormatError):
        parse(b"<html><body>502 Bad Gateway</body></html>")
