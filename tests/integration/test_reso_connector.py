"""The reso connector against the sandbox's RESO Web API server, over real sockets."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.reso import FEED, QUIRKS
from sandbox.listings import synthetic_listings
from tests.support.sandbox import quirks_for

COUNT = 900
SINCE = dt.datetime(2026, 5, 10, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def listings():
    return list(synthetic_listings(COUNT, ["odata"], seed=4))


@pytest.fixture(scope="module")
def feed_root(tmp_path_factory):
    return tmp_path_factory.mktemp("reso-feed")


@pytest.fixture
def quirks(feed_root):
    with quirks_for(feed_root, "reso", QUIRKS) as setter:
        yield setter


@pytest.fixture(scope="module")
def running(listings, feed_root):
    FEED.publish(listings, feed_root)
    server = FEED.start(feed_root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def source(running):
    return FEED.source(running, "odata")


@pytest.fixture
def fetch(tmp_path):
    runs = itertools.count(1)

    def fetch(spec: dict, since: dt.datetime | None = None, progress=lambda message: None) -> Payload:
        workdir = tmp_path / f"run-{next(runs)}"
        workdir.mkdir()
        return connector_for("reso").fetch(FetchRequest("odata", spec, workdir, since=since, progress=progress))

    return fetch


def records(payload: Payload) -> list[dict]:
    return [record for f in payload.files for record in json.loads(f.path.read_bytes())["value"]]


def keys(payload: Payload) -> set[str]:
    return {r["ListingKey"] for r in records(payload)}


def stored(record: dict, like: dict) -> dict:
    """An OData record's fields typed as the pipeline stores them (RESO names map to themselves)."""
    return {name: _typed(value, like.get(name)) for name, value in record.items()
            if value is not None and name != "Media"}


def _typed(value, like):
    if isinstance(like, dt.datetime):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return Decimal(str(value)) if isinstance(like, Decimal) else value


def test_full_pull_follows_next_links_and_equals_what_was_published(fetch, source, listings, running):
    payload = fetch(source["download"])
    assert [f.path.name for f in payload.files] == [f"page-{n:04d}.json" for n in range(1, 6)]
    assert all(f.format == "odata" and f.size == f.path.stat().st_size for f in payload.files)
    skips = [parse_qs(urlsplit(f.meta["url"]).query).get("$skip", ["0"])[0] for f in payload.files]
    assert skips == ["0", "200", "400", "600", "800"]
    found = {r["ListingKey"]: r for r in records(payload)}
    assert len(found) == COUNT
    for listing in listings:
        record = found[listing["ListingKey"]]
        assert stored(record, listing) == FEED.expected(listing)
        assert [(n, m["MediaURL"]) for n, m in enumerate(record["Media"], 1)] == [
            (p["order"], p["url"]) for p in FEED.expected_photos(listing, running)]


def test_incremental_pull_filters_on_modification_timestamp_and_keeps_the_extra_filter(fetch, source, listings):
    payload = fetch({**source["download"], "filter": "StandardStatus eq 'Active' or StandardStatus eq 'Pending'"},
                    since=SINCE)
    wanted = {x["ListingKey"] for x in listings
              if x["ModificationTimestamp"] >= SINCE and x["StandardStatus"] in ("Active", "Pending")}
    assert 0 < len(wanted) and keys(payload) == wanted
    sent = parse_qs(urlsplit(payload.files[0].meta["url"]).query)["$filter"][0]
    assert sent == ("(StandardStatus eq 'Active' or StandardStatus eq 'Pending')"
                    " and ModificationTimestamp ge 2026-05-10T00:00:00Z")


def test_select_and_no_expand(fetch, source):
    payload = fetch({**source["download"], "select": ["ListingKey", "ListPrice"], "expand": "", "page_size": 1000})
    assert len(payload.files) == 1
    assert {tuple(r) for r in records(payload)} == {("ListingKey", "ListPrice")}


def test_a_static_bearer_token_works(fetch, running):
    spec = {"url": running.url, "token": running.details["token"], "page_size": 1000}
    assert len(keys(fetch(spec))) == COUNT


def test_client_credentials_can_go_as_http_basic(fetch, source):
    assert len(keys(fetch({**source["download"], "token_auth": "basic", "page_size": 1000}))) == COUNT


def test_expired_tokens_are_refreshed_and_the_pull_goes_on(fetch, source, running):
    expire_after_first_page = lambda message: running.details["expire_tokens"]()  # noqa: E731
    payload = fetch(source["download"], progress=expire_after_first_page)
    assert len(payload.files) == 5 and len(keys(payload)) == COUNT


def test_a_refused_client_or_token_is_an_auth_error(fetch, source, running):
    with pytest.raises(SourceAuthError, match="invalid_client"):
        fetch({**source["download"], "client_secret": "wrong"})
    with pytest.raises(SourceAuthError, match="401"):
        fetch({"url": running.url, "token": "not-a-token"})


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_5xx_are_transient(fetch, source, running, status):
    running.details["fail"](status)
    with pytest.raises(SourceUnavailable, match=f"HTTP {status}") as caught:
        fetch(source["download"])
    assert caught.value.retry_after == 1


def test_an_unknown_resource_is_feed_not_found(fetch, source):
    with pytest.raises(FeedNotFound):
        fetch({**source["download"], "resource": "Nonexistent"})


def test_a_filter_the_server_rejects_is_a_config_error(fetch, source):
    with pytest.raises(SourceConfigError, match="filter"):
        fetch({**source["download"], "filter": "contains(City, 'Naples')"})


def test_a_stopped_server_is_unavailable(fetch, listings, tmp_path):
    FEED.publish(listings[:5], tmp_path)
    server = FEED.start(tmp_path)
    spec = FEED.source(server, "gone")["download"]
    server.stop()
    with pytest.raises(SourceUnavailable):
        fetch(spec)


def test_a_spec_without_credentials_is_a_config_error(fetch, running):
    with pytest.raises(SourceConfigError, match="token"):
        fetch({"url": running.url})


def test_a_whole_pull_is_complete_and_says_how_many_were_announced(fetch, source):
    payload = fetch(source["download"])
    assert (payload.incomplete, payload.announced) == (None, COUNT)


def test_a_page_without_its_next_link_makes_the_pull_incomplete(fetch, source, quirks):
    quirks(end_feed_after=250)  # the second page is cut at 50 and carries no nextLink
    payload = fetch(source["download"])
    assert len(keys(payload)) == 250 and payload.announced == COUNT
    assert payload.incomplete.startswith(f"the RESO server announced {COUNT:,} records (@odata.count) and "
                                         f"sent 250; the last page, ")
    assert payload.incomplete.endswith("has no @odata.nextLink")


def test_without_count_the_next_links_are_all_there_is_to_trust(fetch, source, quirks):
    quirks(end_feed_after=250)
    payload = fetch({**source["download"], "count": False})
    assert "$count" not in payload.files[0].meta["url"]
    assert len(keys(payload)) == 250 and (payload.incomplete, payload.announced) == (None, None)
