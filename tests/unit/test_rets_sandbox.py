"""The sandbox RETS server's pieces that need no socket: its DMQL, its JPEGs, its dialect."""

import datetime as dt
from decimal import Decimal

import pytest

from sandbox.feeds import rets
from sandbox.feeds.rets import DmqlError, parse_dmql, photo_jpeg, tiny_jpeg
from sandbox.listings import synthetic_listings
from tests.support.rets_fixtures import jpeg_size

ROW = {f.name: "" for f in rets.FIELDS} | {
    "matrix_unique_id": "000000000042", "Status": "A", "City": "Naples", "ListPrice": "250000.00",
    "Longitude": "-81.79", "LastChangeTimestamp": "2026-05-01T10:00:00",
}


@pytest.mark.parametrize("query, matches", [
    ("(Status=|A,P)", True), ("(Status=|P,S)", False), ("(Status=~P)", True),
    ("(ListPrice=200000+)", True), ("(ListPrice=300000+)", False), ("(ListPrice=100000-300000)", True),
    ("(Longitude=-82--81)", True), ("(Longitude=-81.5+)", False),
    ("(LastChangeTimestamp=2026-05-01T10:00:00+)", True), ("(LastChangeTimestamp=2026-05-01T10:00:01+)", False),
    ("(LastChangeTimestamp=2026-05-01T00:00:00-2026-05-01T10:00:00)", True),
    ("(LastChangeTimestamp=2026-05-01T14:00:00Z-)", True),
    ("(City=Nap*)", True), ("(City=Tampa,Naples)", True), ("(Beds=.EMPTY.)", True),
    ("(Status=|A),(City=Tampa)", False), ("((Status=|A)|(City=Tampa)),(ListPrice=1+)", True),
    ("~(City=Tampa)", True), ("(matrix_unique_id=000000000042+)", True),
])
def test_dmql_queries(query, matches):
    assert parse_dmql(query)(ROW) is matches


@pytest.mark.parametrize("query, code", [
    ("(Nope=1)", 20200), ("Status=A", 20206), ("(Status=A", 20206), ("(ListPrice=abc)", 20206), ("(City=x)x", 20206),
])
def test_bad_dmql_is_refused_with_a_reply_code(query, code):
    with pytest.raises(DmqlError) as caught:
        parse_dmql(query)
    assert caught.value.code == code


def test_photos_are_small_real_jpegs_unique_per_listing_and_number():
    first, second = photo_jpeg("000000000042", 1), photo_jpeg("000000000042", 2)
    assert first != second and first == photo_jpeg("000000000042", 1)
    width, height = jpeg_size(first)
    assert 32 <= width <= 56 and 24 <= height <= 40 and len(first) < 1000
    assert first.endswith(b"\xff\xd9") and jpeg_size(tiny_jpeg(17, 9, (0, 0, 0))) == (17, 9)


def test_dialect_rows_use_codes_local_time_and_text(tmp_path):
    listing = next(synthetic_listings(1, ["ret"], 2))
    rets.publish([listing], tmp_path)
    [row] = rets._Dataset(tmp_path).rows()
    assert row["matrix_unique_id"] == listing["ListingKey"]
    assert rets.LOOKUPS["Status"][row["Status"]] == listing["StandardStatus"]
    assert Decimal(row["ListPrice"]) == listing["ListPrice"]
    local = dt.datetime.fromisoformat(row["LastChangeTimestamp"])
    assert local.tzinfo is None
    assert rets.expected(listing)["ModificationTimestamp"] == listing["ModificationTimestamp"]


def test_source_maps_every_carried_field_and_translates_codes():
    running = rets.Running(url="http://127.0.0.1:1/rets/login", stop=lambda: None,
                           details={"username": "u", "password": "p", "user_agent": "ua", "user_agent_password": "x"})
    table = rets.source(running, "ret")
    assert table["fields"]["ListingKey"] == "matrix_unique_id"
    assert table["values"]["StandardStatus"]["A"] == "Active"
    assert table["download"]["kind"] == "rets" and table["parse"]["format"] == "rets-compact"
    assert table["images"]["strategy"] == "rets" and table["timezone"] == rets.SERVER_TIMEZONE
    assert set(table["fields"]) == set(rets.expected(next(synthetic_listings(1, ["ret"], 2))))
