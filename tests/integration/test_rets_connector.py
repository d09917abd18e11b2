"""The RETS connector against the sandbox RETS server, over a socket on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import requests

from pipeline.connectors import FetchRequest
from pipeline.connectors.rets import CONNECTOR, RetsConnector
from pipeline.connectors.rets.connector import RetsSettings
from pipeline.connectors.rets.getobject import get_objects
from pipeline.connectors.rets.metadata import fields, key_field, lookup_values
from pipeline.connectors.rets.session import RetsSession
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from pipeline.mapping import Mapper
from pipeline.parsers import parser_for
from pipeline.spec import parse_source
from sandbox.feeds.rets import FEED, LOOKUPS, expected_photos
from sandbox.listings import ANCHOR, synthetic_listings
from tests.support.rets_fixtures import jpeg_size

LISTINGS = 230
PAGE = 50


@pytest.fixture
def listings():
    return list(synthetic_listings(LISTINGS, ["ret"], 7))


@pytest.fixture
def server(tmp_path, listings):
    FEED.publish(listings, tmp_path / "feed")
    running = FEED.start(tmp_path / "feed")
    yield running
    running.stop()


@pytest.fixture
def controls(server):
    return server.details["controls"]


def spec_of(server, **changes):
    return {**FEED.source(server, "ret")["download"], "page_size": PAGE, **changes}


def fetch(server, tmp_path, since=None, state=None, connector=CONNECTOR, **changes):
    workdir = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
    workdir.mkdir()
    messages = []
    request = FetchRequest("ret", spec_of(server, **changes), workdir, since, state or {}, messages.append)
    payload = connector.fetch(request)
    return payload, messages


def records(payload):
    parser = parser_for("rets-compact")
    found = []
    for payload_file in payload.files:
        assert payload_file.format == "rets-compact" and payload_file.size == payload_file.path.stat().st_size
        with open(payload_file.path, "rb") as stream:
            found.extend(parser.records(stream, {}))
    return found


def keys(payload):
    return [record["matrix_unique_id"] for record in records(payload)]


def test_full_pull_pages_through_every_listing_exactly_once(server, tmp_path, listings, controls):
    payload, _ = fetch(server, tmp_path)
    assert len(payload.files) == LISTINGS // PAGE + 1
    assert [f.path.name for f in payload.files] == [f"page-{n:04d}.xml" for n in range(1, 6)]
    assert [f.meta["rows"] for f in payload.files] == [50, 50, 50, 50, 30]
    assert payload.files[0].meta["count"] == LISTINGS and payload.files[0].meta["maxrows"]
    found = keys(payload)
    assert sorted(found) == sorted(listing["ListingKey"] for listing in listings)
    assert payload.state["paging"] == "offset" and payload.state["key_field"] == "matrix_unique_id"
    assert controls.stats["Login"] == 1 and controls.stats["Logout"] == 1 and controls.stats["Action"] == 1


@pytest.mark.parametrize("format_name", ["COMPACT", "COMPACT-DECODED"])
def test_mapped_listings_equal_what_the_feed_expects(server, tmp_path, listings, format_name):
    source = parse_source(FEED.source(server, "ret"))
    mapper = Mapper(source.parse, source.timezone)
    payload, _ = fetch(server, tmp_path, format=format_name)
    got = {listing["ListingKey"]: listing for listing in map(mapper.map, records(payload))}
    assert len(got) == LISTINGS
    for listing in listings:
        want = FEED.expected(listing)
        assert {name: got[listing["ListingKey"]][name] for name in want} == want


def test_compact_decoded_sends_long_values(server, tmp_path):
    found = records(fetch(server, tmp_path, format="COMPACT-DECODED")[0])
    assert {r["Status"] for r in found} <= set(LOOKUPS["Status"].values())
    assert "Active" in {r["Status"] for r in found}


def test_incremental_run_returns_only_what_changed(server, tmp_path, listings):
    changed = listings[10:17]
    for listing in changed:
        listing["ModificationTimestamp"] = ANCHOR + dt.timedelta(days=1, minutes=listings.index(listing))
        listing["ListPrice"] += 1000
    FEED.publish(listings, server.details["root"])
    payload, _ = fetch(server, tmp_path, since=ANCHOR + dt.timedelta(hours=12))
    assert sorted(keys(payload)) == sorted(listing["ListingKey"] for listing in changed)
    assert "LastChangeTimestamp=2026-06-01T08:00:00+" in payload.files[0].meta["query"]  # noon UTC, in New York


def test_a_source_query_is_anded_with_the_window(server, tmp_path, listings):
    payload, _ = fetch(server, tmp_path, query="(Status=|A,P)")
    assert sorted(keys(payload)) == sorted(l["ListingKey"] for l in listings if l["StandardStatus"] in ("Active", "Pending"))


def test_nothing_found_is_an_empty_result(server, tmp_path):
    payload, _ = fetch(server, tmp_path, query="(City=Atlantis)")
    assert len(payload.files) == 1 and payload.files[0].meta["reply_code"] == 20201 and records(payload) == []


@pytest.mark.parametrize("mode", ["error", "ignore"])
def test_a_server_refusing_offset_still_gives_every_listing_exactly_once(server, tmp_path, listings, controls, mode):
    controls.refuse_offset = mode
    payload, messages = fetch(server, tmp_path)
    found = keys(payload)
    assert len(found) == len(set(found)) == LISTINGS
    assert set(found) == {listing["ListingKey"] for listing in listings}
    assert payload.state["paging"] == "window" and any("time windows" in m for m in messages)
    assert all(f.meta["rows"] <= PAGE and "window" in f.meta for f in payload.files)
    assert [f.meta["page"] for f in payload.files] == list(range(1, len(payload.files) + 1))
    assert sorted(p.name for p in payload.files[0].path.parent.iterdir()) == [f.path.name for f in payload.files]


def test_the_next_run_pages_by_windows_straight_away(server, tmp_path, controls):
    controls.refuse_offset = "error"
    payload, messages = fetch(server, tmp_path, state={"paging": "window"})
    assert len(set(keys(payload))) == LISTINGS and not any("time windows" in m for m in messages)


def test_window_paging_learns_a_server_cap_below_the_page_size(server, tmp_path, controls):
    controls.refuse_offset, controls.max_rows = "error", 20
    payload, _ = fetch(server, tmp_path, paging="window")
    assert len(set(keys(payload))) == LISTINGS and max(f.meta["rows"] for f in payload.files) <= 20


def test_offset_paging_follows_a_server_cap_below_the_page_size(server, tmp_path, controls):
    controls.max_rows = 30
    payload, _ = fetch(server, tmp_path)
    assert len(keys(payload)) == len(set(keys(payload))) == LISTINGS and len(payload.files) == 8


def test_offset_only_paging_fails_clearly_where_offset_is_refused(server, tmp_path, controls):
    controls.refuse_offset = "error"
    with pytest.raises(SourceConfigError, match="refused Offset"):
        fetch(server, tmp_path, paging="offset")


def test_more_records_in_one_second_than_a_page_is_reported(server, tmp_path, listings, controls):
    for listing in listings:
        listing["ModificationTimestamp"] = ANCHOR
    FEED.publish(listings, server.details["root"])
    controls.refuse_offset = "error"
    with pytest.raises(SourceConfigError, match="raise page_size"):
        fetch(server, tmp_path)


def test_an_expired_session_is_renewed_and_the_pull_completes(server, tmp_path, controls):
    controls.expire_after = 2
    payload, messages = fetch(server, tmp_path)
    assert len(set(keys(payload))) == LISTINGS
    # Every login spends one transaction on the Action URL; the final Logout may meet an expiry too.
    assert controls.stats["expired"] >= 2 and controls.stats["Login"] >= 3
    assert any("logging in again" in m for m in messages)


def test_expiry_during_window_paging_is_renewed_too(server, tmp_path, controls):
    controls.expire_after, controls.refuse_offset = 3, "error"
    payload, _ = fetch(server, tmp_path)
    assert len(keys(payload)) == len(set(keys(payload))) == LISTINGS


def test_wrong_password_is_an_auth_error(server, tmp_path):
    with pytest.raises(SourceAuthError, match="401"):
        fetch(server, tmp_path, password="wrong")


def test_wrong_user_agent_password_is_an_auth_error(server, tmp_path, controls):
    with pytest.raises(SourceAuthError, match="20037"):
        fetch(server, tmp_path, user_agent_password="wrong")
    assert controls.stats["ua_refused"] == 1


def test_basic_auth_is_detected_from_the_challenge(server, tmp_path, controls):
    controls.auth = "basic"
    payload, _ = fetch(server, tmp_path)
    assert len(keys(payload)) == LISTINGS
    with pytest.raises(SourceAuthError):
        fetch(server, tmp_path, password="wrong")


def test_forced_digest_against_a_basic_server_is_refused(server, tmp_path, controls):
    controls.auth = "basic"
    with pytest.raises(SourceAuthError):
        fetch(server, tmp_path, auth="digest")


def test_http_401_after_login_is_an_auth_error_after_one_new_login(server, tmp_path, controls):
    controls.reject_after_login = True
    with pytest.raises(SourceAuthError, match="after a new login"):
        fetch(server, tmp_path)
    assert controls.stats["Login"] == 2


def test_server_503_is_transient(server, tmp_path, controls):
    controls.fail_status = 503
    with pytest.raises(SourceUnavailable, match="503"):
        fetch(server, tmp_path)


@pytest.mark.parametrize("code", [20209, 20210])
def test_busy_server_reply_codes_are_transient_and_we_still_log_out(server, tmp_path, controls, code):
    controls.search_reply = code
    with pytest.raises(SourceUnavailable, match=str(code)):
        fetch(server, tmp_path)
    assert controls.stats["Logout"] == 1


def test_a_server_too_slow_to_answer_is_transient(server, tmp_path, controls):
    controls.delay = 1.0
    with pytest.raises(SourceUnavailable, match="timed out"):
        fetch(server, tmp_path, timeout=0.2)


def test_an_incremental_run_with_nothing_new_is_not_modified(server, tmp_path):
    payload, _ = fetch(server, tmp_path, since=ANCHOR + dt.timedelta(days=30))
    assert payload.not_modified and records(payload) == []
    assert not fetch(server, tmp_path)[0].not_modified


def test_a_refused_connection_is_transient(server, tmp_path):
    spec = spec_of(server)
    server.stop()
    request = FetchRequest("ret", spec, tmp_path)
    with pytest.raises(SourceUnavailable):
        CONNECTOR.fetch(request)


def test_bad_query_field_and_unknown_class_are_config_errors(server, tmp_path):
    with pytest.raises(SourceConfigError, match="20200"):
        fetch(server, tmp_path, query="(Nope=1)")
    with pytest.raises(SourceConfigError, match="20203"):
        fetch(server, tmp_path, **{"class": "XYZ"})


def test_unknown_resource_is_not_found(server, tmp_path):
    with pytest.raises(FeedNotFound, match="no resource 'Media'"):
        fetch(server, tmp_path, resource="Media")


def test_select_asks_for_those_fields_and_the_key(server, tmp_path):
    found = records(fetch(server, tmp_path, select=["City", "ListPrice"])[0])
    assert set(found[0]) == {"City", "ListPrice", "matrix_unique_id"}


def test_post_searches_work_and_a_given_session_is_used(server, tmp_path):
    with requests.Session() as http:
        payload, _ = fetch(server, tmp_path, connector=RetsConnector(http), method="POST")
    assert len(keys(payload)) == LISTINGS


# -- metadata and GetObject through a session -------------------------------------------------------

@pytest.fixture
def session(server):
    with requests.Session() as http:
        rets = RetsSession(http, RetsSettings.from_spec(spec_of(server)).login)
        with rets.opened():
            yield rets


def test_metadata_gives_the_key_field_fields_and_lookups(session):
    assert key_field(session, "Property") == "matrix_unique_id"
    table = fields(session, "Property", "RES")
    assert table["Status"]["LookupName"] == "Status" and table["LastChangeTimestamp"]["DataType"] == "DateTime"
    assert lookup_values(session, "Property", "Status")["A"] == "Active"


def _with_photos(listings, count):
    with_photos = [l for l in listings if l["PhotosCount"]][:count]
    without = [l for l in listings if not l["PhotosCount"]][:count]
    return with_photos, without


def test_getobject_streams_photos_and_skips_listings_without(session, server, listings):
    with_photos, without = _with_photos(listings, 2)
    ids = [with_photos[0]["ListingKey"], without[0]["ListingKey"], with_photos[1]["ListingKey"]]
    found = [(obj.content_id, obj.object_id, obj.body.read()) for obj in get_objects(session, "Property", "Photo", ids)]
    expected = [(l["ListingKey"], str(n)) for l in with_photos for n in range(1, l["PhotosCount"] + 1)]
    assert [(key, number) for key, number, _ in found] == expected
    # Byte for byte what the server published (sandbox.photos: JPEGs, PNGs, a few corrupt ones).
    published = {(l["ListingKey"], str(p["order"])): p["md5"] for l in with_photos for p in expected_photos(l)}
    assert {(key, number): hashlib.md5(data).hexdigest() for key, number, data in found} == published


def test_getobject_of_one_object_and_of_nothing(session, listings):
    with_photos, without = _with_photos(listings, 1)
    [single] = list(get_objects(session, "Property", "Photo", f"{with_photos[0]['ListingKey']}:1"))
    assert single.content_type == "image/jpeg" and jpeg_size(single.body.read())
    assert list(get_objects(session, "Property", "Photo", without[0]["ListingKey"])) == []


def test_getobject_location_urls_point_at_the_photos(session, listings):
    with_photos, _ = _with_photos(listings, 1)
    found = list(get_objects(session, "Property", "Photo", with_photos[0]["ListingKey"], location=True))
    assert len(found) == with_photos[0]["PhotosCount"] and all(o.body.read() == b"" for o in found)
    photo = requests.get(found[0].location, timeout=10)
    assert photo.status_code == 200 and jpeg_size(photo.content)


def test_getobject_renews_an_expired_session(session, listings, controls):
    with_photos, _ = _with_photos(listings, 1)
    controls.expire_after = 2  # the login's Action URL, then the metadata below: GetObject meets the expiry
    assert key_field(session, "Property") == "matrix_unique_id"
    found = list(get_objects(session, "Property", "Photo", with_photos[0]["ListingKey"]))
    assert len(found) == with_photos[0]["PhotosCount"] and controls.stats["expired"] == 1


def test_getobject_errors_are_mapped(session):
    with pytest.raises(FeedNotFound, match="20401"):
        list(get_objects(session, "Property", "Video", "1"))


# -- real servers' habits (the sandbox's quirks) ---------------------------------------------------

def test_a_pull_meets_one_challenge_and_logs_out_signed(server, tmp_path, controls):
    fetch(server, tmp_path)
    assert controls.stats["challenged"] == 1 and controls.stats["challenged Logout"] == 0


def test_a_new_login_after_expiry_is_signed_at_once(server, tmp_path, controls):
    controls.expire_after = 2
    fetch(server, tmp_path)
    assert controls.stats["Login"] >= 3 and controls.stats["challenged"] == 1


def test_standard_xml_metadata_gives_the_key_field_fields_and_lookups(server, tmp_path, controls):
    controls.metadata_format = "STANDARD-XML"
    payload, messages = fetch(server, tmp_path)
    assert payload.state["key_field"] == "matrix_unique_id" and not any("KeyField" in m for m in messages)
    with requests.Session() as http:
        rets = RetsSession(http, RetsSettings.from_spec(spec_of(server)).login)
        with rets.opened():
            assert key_field(rets, "Property") == "matrix_unique_id"
            assert fields(rets, "Property", "RES")["Status"]["LookupName"] == "Status"
            assert lookup_values(rets, "Property", "Status")["A"] == "Active"


def test_every_info_line_of_the_login_is_kept(server, controls):
    controls.info_lines = 3
    with requests.Session() as http:
        rets = RetsSession(http, RetsSettings.from_spec(spec_of(server)).login)
        with rets.opened():
            assert rets.info == [f"SANDBOX_INFO_{n};Character;value {n}" for n in (1, 2, 3)]


@pytest.mark.parametrize("chunk_size", [1, 3, 4])
def test_an_error_reply_labelled_as_an_image_in_tiny_chunks_is_the_error(session, controls, listings, chunk_size):
    controls.error_content_type, controls.error_chunk_size = "image/jpeg", chunk_size
    with pytest.raises(FeedNotFound, match="20401"):
        list(get_objects(session, "Property", "Video", "1"))
    without = next(l for l in listings if not l["PhotosCount"])
    assert list(get_objects(session, "Property", "Photo", without["ListingKey"])) == []


def test_a_whole_pull_is_complete_and_says_how_many_were_announced(server, tmp_path):
    payload, _ = fetch(server, tmp_path)
    assert payload.incomplete is None and payload.announced == LISTINGS


def test_a_server_answering_no_records_mid_paging_makes_the_pull_incomplete(server, tmp_path, controls):
    controls.max_rows, controls.end_feed_after = 15, 15  # as recorded: 15 rows, MAXROWS, then 20201
    payload, messages = fetch(server, tmp_path)
    assert len(keys(payload)) == 15 and payload.announced == LISTINGS
    assert payload.incomplete == ("the RETS server announced 230 records (COUNT) and sent 15; "
                                  "paging ended at Offset=16 with reply 20201 and 0 rows")
    assert any(m.startswith("incomplete:") for m in messages)

