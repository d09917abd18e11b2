"""The soap connector against the sandbox's spyne MLS service, over real sockets."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from lxml import etree

from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.soap import FEED, QUIRKS
from sandbox.listings import synthetic_listings
from tests.support.sandbox import quirks_for
from tests.support.servers import free_port

COUNT = 1100
SINCE = dt.datetime(2026, 5, 10, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def listings():
    return list(synthetic_listings(COUNT, ["soapy"], seed=3))


@pytest.fixture(scope="module")
def feed_root(tmp_path_factory):
    return tmp_path_factory.mktemp("soap-feed")


@pytest.fixture
def quirks(feed_root):
    with quirks_for(feed_root, "soap", QUIRKS) as setter:
        yield setter


@pytest.fixture(scope="module")
def running(listings, feed_root):
    FEED.publish(listings, feed_root)
    server = FEED.start(feed_root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def source(running):
    return FEED.source(running, "soapy")


@pytest.fixture
def fetch(tmp_path):
    runs = itertools.count(1)

    def fetch(spec: dict, since: dt.datetime | None = None) -> Payload:
        workdir = tmp_path / f"run-{next(runs)}"
        workdir.mkdir()
        return connector_for("soap").fetch(FetchRequest("soapy", spec, workdir, since=since))

    return fetch


def records(payload: Payload, element: str = "Listing") -> list[dict]:
    """The record elements of every page, flattened as the XML parser will (slash paths, @attributes)."""
    found = []
    for file in payload.files:
        for node in etree.parse(str(file.path)).iter(f"{{*}}{element}"):
            found.append({**{f"@{k}": v for k, v in node.attrib.items()}, **_flatten(node)})
    return found


def _flatten(node, prefix: str = "") -> dict:
    flat = {}
    for child in node:
        name = prefix + etree.QName(child).localname
        flat.update(_flatten(child, name + "/") if len(child) else {name: child.text})
    return flat


def mapped(record: dict, source: dict, like: dict) -> dict:
    """A flattened record through the source's fields and values, typed like ``like``."""
    values = source["values"]
    reso = {name: record.get(path) for name, path in source["fields"].items() if record.get(path) is not None}
    reso = {name: values.get(name, {}).get(text, text) for name, text in reso.items()}
    return {name: _typed(text, like.get(name)) for name, text in reso.items()}


def _typed(text: str, like):
    if like is None:
        return text
    if isinstance(like, dt.datetime):
        return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    return Decimal(text) if isinstance(like, Decimal) else type(like)(text)


def keys(payload: Payload) -> set[str]:
    return {r["@SysId"] for r in records(payload)}


def test_full_pull_pages_through_every_listing_exactly_as_published(fetch, source, listings):
    payload = fetch(source["download"])
    assert [f.path.name for f in payload.files] == [f"page-{n:04d}.xml" for n in range(1, 6)]
    assert [f.meta for f in payload.files] == [{"page": n, "records": 250} for n in range(1, 5)] + [
        {"page": 5, "records": COUNT - 1000}]
    assert all(f.format == "xml" and f.size == f.path.stat().st_size for f in payload.files)
    found = {r["@SysId"]: r for r in records(payload, source["parse"]["record"])}
    assert len(found) == COUNT
    for listing in listings:
        expected = FEED.expected(listing)
        assert mapped(found[listing["ListingKey"]], source, expected) == expected


def test_pages_are_the_soap_envelopes_as_received(fetch, source):
    page = fetch(source["download"]).files[0].path.read_bytes()
    assert page.startswith(b"<?xml") and b"<soap11env:Envelope" in page and b"GetListingsResponse" in page


def test_incremental_pull_returns_only_listings_modified_since(fetch, source, listings):
    payload = fetch(source["download"], since=SINCE)
    changed = {x["ListingKey"] for x in listings if x["ModificationTimestamp"] >= SINCE}
    assert 0 < len(changed) < COUNT / 2
    assert keys(payload) == changed


def test_page_paging_without_a_page_count_stops_on_a_short_page_and_keeps_no_empty_page(fetch, source, listings):
    paging = {**source["download"]["paging"], "page_size": 275}
    del paging["total_pages_path"]
    payload = fetch({**source["download"], "paging": paging})
    assert [f.meta["records"] for f in payload.files] == [275, 275, 275, 275]
    assert len(keys(payload)) == COUNT


def test_token_paging_with_a_wsse_digest_token(fetch, source, listings):
    spec = {
        **source["download"], "operation": "GetListingChanges", "wsse": "digest",
        "paging": {"style": "token", "token_arg": "ResumeToken", "next_token_path": "ResumeToken",
                   "size_arg": "MaxRows", "page_size": 400, "records_path": "Listings.Listing"},
    }
    payload = fetch(spec)
    assert [f.meta["records"] for f in payload.files] == [400, 400, 300]
    assert keys(payload) == {x["ListingKey"] for x in listings}


def test_offset_paging_with_a_wsse_text_token_and_since_as_text(fetch, source, listings):
    spec = {
        **source["download"], "operation": "GetListingsAt", "wsse": "text", "since_format": "%Y-%m-%dT%H:%M:%SZ",
        "paging": {"style": "offset", "offset_arg": "Offset", "size_arg": "Limit", "page_size": 100,
                   "records_path": "Listing"},
    }
    payload = fetch(spec, since=SINCE)
    assert keys(payload) == {x["ListingKey"] for x in listings if x["ModificationTimestamp"] >= SINCE}


@pytest.mark.parametrize("wsse", [None, "text", "digest"])
def test_a_wrong_password_is_an_auth_error(fetch, source, wsse):
    with pytest.raises(SourceAuthError):
        fetch({**source["download"], "password": "wrong", "wsse": wsse})


def test_a_client_fault_fails_the_run_with_the_fault_text(fetch, source):
    paging = {**source["download"]["paging"], "page_size": 5000}
    with pytest.raises(SourceConfigError, match="PageSize must be between 1 and 1000"):
        fetch({**source["download"], "paging": paging})


def test_an_unknown_operation_or_argument_is_a_config_error(fetch, source):
    with pytest.raises(SourceConfigError, match="GetEverything"):
        fetch({**source["download"], "operation": "GetEverything"})
    with pytest.raises(SourceConfigError, match="Colour"):
        fetch({**source["download"], "arguments": {"Colour": "red"}})


def test_service_port_and_endpoint_can_be_named_and_unknown_ones_are_config_errors(fetch, source, running):
    named = {"service": "ListingsService", "port": "MlsListings", "endpoint": running.url}
    assert len(keys(fetch({**source["download"], **named}))) == COUNT
    with pytest.raises(SourceConfigError, match="Nope"):
        fetch({**source["download"], "port": "Nope"})


def test_http_5xx_is_transient(fetch, source, running):
    running.details["fail"](503)
    with pytest.raises(SourceUnavailable, match="503") as caught:
        fetch(source["download"])
    assert caught.value.retry_after == 30


def test_a_missing_wsdl_is_feed_not_found(fetch, source, running):
    with pytest.raises(FeedNotFound):
        fetch({**source["download"], "wsdl": running.url.replace("/soap", "/nothing.wsdl")})


def test_a_stopped_server_is_unavailable(fetch, listings, tmp_path):
    FEED.publish(listings[:10], tmp_path)
    server = FEED.start(tmp_path)
    spec = FEED.source(server, "gone")["download"]
    server.stop()
    with pytest.raises(SourceUnavailable):
        fetch(spec)


def test_an_endpoint_that_refuses_connections_is_unavailable(fetch, source):
    with pytest.raises(SourceUnavailable):
        fetch({**source["download"], "endpoint": f"http://127.0.0.1:{free_port()}/soap"})


def test_a_whole_pull_is_complete_and_says_how_many_were_announced(fetch, source):
    payload = fetch(source["download"])
    assert (payload.incomplete, payload.announced) == (None, COUNT)


def test_pages_that_end_before_the_total_make_the_pull_incomplete(fetch, source, quirks):
    quirks(end_feed_after=600)  # pages 3 to 5 come short or empty; TotalCount still says all
    payload = fetch(source["download"])
    assert len(keys(payload)) == 600 and payload.announced == COUNT
    assert payload.incomplete == f"the SOAP service announced {COUNT:,} records (TotalCount) and sent 600"


def test_without_a_total_path_a_short_page_is_the_end(fetch, source, quirks):
    quirks(end_feed_after=600)
    paging = {k: v for k, v in source["download"]["paging"].items() if k != "total_path"}
    payload = fetch({**source["download"], "paging": paging})
    assert len(keys(payload)) == 600 and (payload.incomplete, payload.announced) == (None, None)
