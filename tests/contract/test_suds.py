"""suds-community, the other Python SOAP client, against the live service over HTTP Basic.

suds is set up the stock way, ``Client(url, username=..., password=...)``: it sends credentials
only after a 401 challenge (the service challenges calls that carry none), and its preemptive
transport encodes Basic credentials with the URL-safe base64 alphabet (the service accepts it).
"""

from __future__ import annotations

import pytest
import suds
import suds.client
from suds.cache import NoCache
from sqlalchemy import select

from core.models import Listing
from tests.support.soap import CONSUMER, OPERATOR

DECLARED = {"Client.AuthenticationFailed", "Client.Forbidden", "Client.NotFound", "Client.InvalidArgument"}


@pytest.fixture(scope="module")
def connect(deployment, endpoint):
    def connect(user=CONSUMER):
        # suds' stock HTTP Basic: it sends credentials only after a 401 challenge, and encodes
        # them with the URL-safe base64 alphabet; the service answers both. The WSDL names the
        # public URL; location points suds at the local port.
        username, password = user
        return suds.client.Client(deployment.wsdl_url, username=username, password=password,
                                  location=endpoint, cache=NoCache(), timeout=30)
    return connect


@pytest.fixture(scope="module")
def alice(connect):
    return connect(CONSUMER)


def fault_of(call) -> tuple[str, str, object]:
    """(faultcode without its prefix, faultstring, detail) of the fault ``call`` raises."""
    with pytest.raises(suds.WebFault) as raised:
        call()
    fault = raised.value.fault
    return fault.faultcode.rpartition(":")[2], fault.faultstring, fault.detail


def walk(service, **query) -> tuple[list, list[int]]:
    """Every page of a search; returns (summaries in order, TotalCount of each page)."""
    found, totals, token = [], [], None
    for _ in range(1000):
        page = service.SearchListings(PageToken=token, **query)
        totals.append(page.TotalCount)
        found += page.Listings.ListingSummary if "ListingSummary" in page.Listings else []
        token = getattr(page, "NextPageToken", None)
        if not token:
            return found, totals
    raise AssertionError("paging never ended")


def test_suds_sees_the_four_operations(alice):
    methods = {m.name for m in alice.wsdl.services[0].ports[0].methods.values()}
    assert methods == {"SearchListings", "GetListing", "GetListingImages", "GetFeedStatus"}


def test_paging_through_a_search_returns_every_active_listing_of_the_entitled_source_once(alice, active_keys):
    found, totals = walk(alice.service, StandardStatus=["Active"], PageSize=50)
    keys = [(s.SourceId, s.ListingKey) for s in found]
    assert len(keys) == len(set(keys)), "a listing came back twice"
    assert {source for source, _ in keys} == {"a"}
    assert {key for _, key in keys} == active_keys
    assert set(totals) == {len(active_keys)}
    assert len(totals) == -(-len(active_keys) // 50)
    assert all(s.StandardStatus == "Active" for s in found)


def test_get_listing_matches_the_database(alice, sample_listing):
    listing = alice.service.GetListing("a", sample_listing["listing_key"])
    assert (listing.SourceId, listing.ListingKey) == ("a", sample_listing["listing_key"])
    assert listing.ListingId == sample_listing["listing_id"]
    assert listing.ListPrice == sample_listing["list_price"]
    assert listing.City == sample_listing["city"]
    assert listing.PhotosCount == sample_listing["photos_count"]
    assert listing.ModificationTimestamp == sample_listing["modification_timestamp"]


def test_get_listing_images_lists_every_photo_in_order(alice, sample_listing):
    images = alice.service.GetListingImages("a", sample_listing["listing_key"])
    assert [i.Order for i in images.Image] == list(range(1, sample_listing["photos_count"] + 1))
    assert images.Image[0].Url.endswith(f"/a/{sample_listing['listing_id']}/1.jpg")


def test_get_feed_status_shows_only_the_entitled_source(alice, connect, deployment):
    feeds = alice.service.GetFeedStatus().FeedStatus
    with deployment.sessions()() as session:
        count = len(session.scalars(select(Listing.id).where(Listing.source_id == "a", Listing.removed_at.is_(None))).all())
    assert [(f.SourceId, f.ListingCount) for f in feeds] == [("a", count)]
    assert sorted(f.SourceId for f in connect(OPERATOR).service.GetFeedStatus().FeedStatus) == ["a", "b", "c"]


@pytest.mark.parametrize("call", ["search", "listing", "images", "status"])
def test_another_source_is_forbidden(alice, forbidden_key, call):
    calls = {
        "search": lambda: alice.service.SearchListings(SourceId=["b"]),
        "listing": lambda: alice.service.GetListing("b", forbidden_key),
        "images": lambda: alice.service.GetListingImages("b", forbidden_key),
        "status": lambda: alice.service.GetFeedStatus("b"),
    }
    code, message, detail = fault_of(calls[call])
    assert code == "Client.Forbidden"
    assert "'b'" in message
    assert detail.Forbidden.Message == message


def test_unknown_listing_is_not_found(alice):
    code, _, detail = fault_of(lambda: alice.service.GetListing("a", "no-such-key"))
    assert code == "Client.NotFound" and "no-such-key" in detail.NotFound.Message


def test_min_price_above_max_price_is_invalid_argument(alice):
    code, message, detail = fault_of(lambda: alice.service.SearchListings(MinPrice=500_000, MaxPrice=100_000))
    assert code == "Client.InvalidArgument" and "MinPrice" in message
    assert detail.InvalidArgument.Message == message


def test_wrong_password_fails_authentication(connect):
    code, _, detail = fault_of(lambda: connect((CONSUMER[0], "wrong")).service.GetFeedStatus())
    assert code == "Client.AuthenticationFailed"
    assert detail.AuthenticationFailed.Message


def test_faultcodes_are_in_the_soap_envelope_namespace(alice):
    with pytest.raises(suds.WebFault) as raised:
        alice.service.GetListing("a", "no-such-key")
    prefix, _, code = raised.value.fault.faultcode.rpartition(":")
    assert code in DECLARED
    envelope = raised.value.document.root()
    assert envelope.resolvePrefix(prefix)[1] == "http://schemas.xmlsoap.org/soap/envelope/"
