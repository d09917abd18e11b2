"""The SOAP service under gunicorn, called by zeep over a socket, on SQLite and PostgreSQL.

The expected answers come from an oracle written independently of the service: every row of
the database loaded into Python and filtered there.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import select, update

from core.models import FeedRun, Listing
from core.types import utcnow
from tests.conftest import SERVICE_BACKENDS, backend_param
from tests.support.databases import fresh_database
from tests.support.servers import soap_service
from tests.support.soap import (
    CONSUMER,
    OPERATOR,
    Deployment,
    digest_token,
    prepare_database,
    random_nonce,
    service_env,
)

PUBLIC_URL = "https://feeds.example.com/api"


@pytest.fixture(scope="module", params=[backend_param(b) for b in SERVICE_BACKENDS])
def deployment(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"soap-{request.param}")
    with fresh_database(request.param, tmp) as url:
        prepare_database(url)
        with soap_service(service_env(url, PUBLIC_URL), log_path=tmp / "gunicorn.log") as base:
            yield Deployment(base, url, PUBLIC_URL)


@pytest.fixture(scope="module")
def rows(deployment):
    """Every listing, as plain dicts: the oracle's view of the database."""
    with deployment.sessions()() as session:
        return [
            {c.key: getattr(r, c.key) for c in Listing.__table__.columns}
            for r in session.scalars(select(Listing))
        ]


@pytest.fixture(scope="module")
def operator(deployment):
    return deployment.client(OPERATOR)


@pytest.fixture(scope="module")
def consumer(deployment):
    return deployment.client(CONSUMER)


def walk(service, **query) -> tuple[list, int]:
    """Every page of a search; returns (summaries in order, TotalCount of the first page)."""
    found, token, total = [], None, None
    for _ in range(10_000):
        page = service.SearchListings(PageToken=token, **query)
        total = page.TotalCount if total is None else total
        found += page.Listings.ListingSummary if page.Listings else []
        token = page.NextPageToken
        if not token:
            return found, total
    raise AssertionError("paging never ended")


def haversine(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 3958.7613 * math.asin(math.sqrt(a))


def expected_keys(rows, sources, predicate=lambda r: True) -> set:
    return {
        (r["source_id"], r["listing_key"])
        for r in rows
        if r["removed_at"] is None and r["source_id"] in sources and predicate(r)
    }


def keys(summaries) -> list:
    return [(s.SourceId, s.ListingKey) for s in summaries]


# -- the contract --------------------------------------------------------------------------

def test_wsdl_address_comes_from_configuration_not_the_host_header(deployment):
    forged = requests.get(deployment.wsdl_url, headers={"Host": "evil.example.net"})
    document = etree.fromstring(forged.content)
    address = document.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address").get("location")
    assert address == PUBLIC_URL + "/soap"
    assert b"evil.example.net" not in forged.content


# -- paging and filters ----------------------------------------------------------------------

@pytest.mark.parametrize("sort_by,descending", [
    ("ListingKey", False), ("ListPrice", False), ("ListPrice", True),
    ("ModificationTimestamp", True), ("ModificationTimestamp", False),
])
def test_walking_every_page_returns_each_matching_listing_once_in_order(operator, rows, sort_by, descending):
    found, total = walk(operator, StandardStatus=["Active"], SortBy=sort_by, SortDescending=descending, PageSize=97)
    want = expected_keys(rows, {"a", "b", "c"}, lambda r: r["standard_status"] == "Active")
    assert len(found) == len(set(keys(found))) == total == len(want)
    assert set(keys(found)) == want
    column = {"ListingKey": "ListingKey", "ListPrice": "ListPrice", "ModificationTimestamp": "ModificationTimestamp"}[sort_by]
    values = [getattr(s, column) for s in found if getattr(s, column) is not None]
    assert values == sorted(values, reverse=descending)


FILTERS = {
    "city": ({"City": "{city}"}, lambda r, ctx: (r["city"] or "").lower() == ctx["city"].lower()),
    "postal": ({"PostalCode": "{postal}"}, lambda r, ctx: r["postal_code"] == ctx["postal"]),
    "price": ({"MinPrice": Decimal(200_000), "MaxPrice": Decimal(450_000)},
              lambda r, ctx: r["list_price"] is not None and 200_000 <= r["list_price"] <= 450_000),
    "beds-baths": ({"MinBedrooms": 3, "MinBathrooms": 2},
                   lambda r, ctx: (r["bedrooms_total"] or -1) >= 3 and (r["bathrooms_total_integer"] or -1) >= 2),
    "types": ({"PropertyType": ["Land", "Farm"]}, lambda r, ctx: r["property_type"] in ("Land", "Farm")),
    "statuses": ({"StandardStatus": ["Pending", "Closed"]}, lambda r, ctx: r["standard_status"] in ("Pending", "Closed")),
    "modified": ({"ModifiedSince": dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)},
                 lambda r, ctx: r["modification_timestamp"] >= dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)),
    "box": ({"North": "{n}", "South": "{s}", "East": "{e}", "West": "{w}"},
            lambda r, ctx: ctx["s"] <= r["latitude"] <= ctx["n"] and ctx["w"] <= r["longitude"] <= ctx["e"]),
    "radius": ({"Latitude": "{lat}", "Longitude": "{lon}", "RadiusMiles": 40.0},
               lambda r, ctx: haversine(ctx["lat"], ctx["lon"], r["latitude"], r["longitude"]) <= 40.0),
    "source": ({"SourceId": ["b"]}, lambda r, ctx: r["source_id"] == "b"),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filters_agree_with_the_rows_in_the_database(operator, rows, name):
    sample = next(r for r in rows if r["source_id"] == "b" and r["latitude"] is not None)
    ctx = {
        "city": sample["city"].upper(), "postal": sample["postal_code"],
        "n": sample["latitude"] + 0.5, "s": sample["latitude"] - 0.5,
        "e": sample["longitude"] + 0.5, "w": sample["longitude"] - 0.5,
        "lat": sample["latitude"], "lon": sample["longitude"],
    }
    params, predicate = FILTERS[name]
    query = {k: (type(ctx[v[1:-1]])(ctx[v[1:-1]]) if isinstance(v, str) and v.startswith("{") else v)
             for k, v in params.items()}
    found, total = walk(operator, PageSize=200, **query)
    want = expected_keys(rows, {"a", "b", "c"}, lambda r: predicate(r, ctx))
    assert want, "the filter should match something in the seeded data"
    assert set(keys(found)) == want and total == len(want) == len(found)


def test_paging_stays_exact_while_rows_change_underneath(deployment, operator, rows):
    query = dict(SourceId=["c"], SortBy="ListPrice", PageSize=50)
    first = operator.SearchListings(**query)
    seen = keys(first.Listings.ListingSummary)
    with deployment.sessions()() as session:
        # Remove a listing already returned and one not yet returned; add a cheap new one.
        unseen = session.scalars(
            select(Listing).where(Listing.source_id == "c", Listing.listing_key.not_in([k for _, k in seen]),
                                  Listing.removed_at.is_(None)).order_by(Listing.list_price.desc()).limit(1)
        ).one()
        session.execute(update(Listing).where(Listing.listing_key == seen[0][1]).values(removed_at=utcnow()))
        unseen.removed_at = utcnow()
        session.add(Listing(source_id="c", listing_key="zz-new", list_price=Decimal(1), photos_count=0))
        session.commit()
        removed = ("c", unseen.listing_key)
    try:
        rest = _rest(operator, first, query)
        walked = seen + keys(rest)
        assert len(walked) == len(set(walked)), "a listing came back twice"
        want = expected_keys(rows, {"c"}) - {removed}
        assert set(walked) - {("c", "zz-new")} == want
    finally:
        with deployment.sessions()() as session:
            session.execute(update(Listing).where(Listing.source_id == "c").values(removed_at=None))
            session.execute(Listing.__table__.delete().where(Listing.listing_key == "zz-new"))
            session.commit()


def _rest(service, first, query):
    found, token = [], first.NextPageToken
    while token:
        page = service.SearchListings(PageToken=token, **query)
        found += page.Listings.ListingSummary if page.Listings else []
        token = page.NextPageToken
    return found


def test_removed_listings_are_not_returned_anywhere(deployment, operator):
    with deployment.sessions()() as session:
        victim = session.scalars(select(Listing).where(Listing.source_id == "a").limit(1)).one()
        victim.removed_at = utcnow()
        session.commit()
    try:
        found, _ = walk(operator, SourceId=["a"], PageSize=200)
        assert victim.listing_key not in {s.ListingKey for s in found}
        with pytest.raises(zeep.exceptions.Fault) as fault:
            operator.GetListing("a", victim.listing_key)
        assert fault.value.code.endswith("Client.NotFound")
    finally:
        with deployment.sessions()() as session:
            session.execute(update(Listing).where(Listing.id == victim.id).values(removed_at=None))
            session.commit()


# -- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("query,message", [
    ({"MinPrice": Decimal(5), "MaxPrice": Decimal(1)}, "MinPrice"),
    ({"PageSize": 0}, "PageSize"),
    ({"PageSize": 10_000}, "PageSize"),
    ({"North": 30.0, "South": 29.0}, "bounding box"),
    ({"Latitude": 30.0, "Longitude": -80.0, "RadiusMiles": -1.0}, "RadiusMiles"),
    ({"StandardStatus": ["Sold"]}, "StandardStatus"),
    ({"PageToken": "bm90LWEtdG9rZW4"}, "PageToken"),
])
def test_bad_arguments_are_invalid_argument_faults(operator, query, message):
    with pytest.raises(zeep.exceptions.Fault) as fault:
        operator.SearchListings(**query)
    assert fault.value.code.endswith("Client.InvalidArgument")
    assert message in fault.value.message


def test_a_page_token_cannot_be_edited_or_reused_with_other_filters(operator):
    token = operator.SearchListings(PageSize=5).NextPageToken
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    for kwargs in ({"PageToken": tampered}, {"PageToken": token, "City": "Elsewhere"}):
        with pytest.raises(zeep.exceptions.Fault) as fault:
            operator.SearchListings(PageSize=5, **kwargs)
        assert fault.value.code.endswith("Client.InvalidArgument")


def test_values_the_schema_rejects_are_invalid_argument_too(deployment):
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<SearchListings xmlns="urn:mlsfeeds:soap:1"><SortBy>Bedrooms</SortBy></SearchListings>'
        "</s:Body></s:Envelope>"
    )
    reply = requests.post(deployment.base_url + "/soap", data=body, auth=OPERATOR,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"SearchListings"'})
    assert reply.status_code == 500
    assert b"Client.InvalidArgument" in reply.content


# -- entitlement and authentication --------------------------------------------------------------

def test_a_consumer_sees_only_its_sources(consumer, rows):
    found, total = walk(consumer, PageSize=200)
    assert {s.SourceId for s in found} == {"a"}
    assert total == len(expected_keys(rows, {"a"}))
    assert [f.SourceId for f in consumer.GetFeedStatus()] == ["a"]


@pytest.mark.parametrize("call", ["search", "listing", "images", "status"])
def test_a_consumer_asking_for_another_source_is_forbidden(consumer, rows, call):
    key = next(r["listing_key"] for r in rows if r["source_id"] == "b")
    calls = {
        "search": lambda: consumer.SearchListings(SourceId=["a", "b"]),
        "listing": lambda: consumer.GetListing("b", key),
        "images": lambda: consumer.GetListingImages("b", key),
        "status": lambda: consumer.GetFeedStatus("b"),
    }
    with pytest.raises(zeep.exceptions.Fault) as fault:
        calls[call]()
    assert fault.value.code.endswith("Client.Forbidden")


@pytest.mark.parametrize("user", [None, ("alice", "wrong"), ("nobody", "x")])
def test_missing_or_wrong_credentials_fail_authentication(deployment, user):
    service = deployment.client(user)
    with pytest.raises(zeep.exceptions.Fault) as fault:
        service.GetFeedStatus()
    assert fault.value.code.endswith("Client.AuthenticationFailed")


def test_username_token_password_text_is_accepted(deployment):
    service = deployment.client(None, wsse=zeep.wsse.username.UsernameToken(*CONSUMER))
    assert [f.SourceId for f in service.GetFeedStatus()] == ["a"]


def test_username_token_digest_is_accepted_once_and_replays_are_refused(deployment):
    token = digest_token(*CONSUMER, nonce=random_nonce(), created=dt.datetime.now(dt.timezone.utc))
    service = deployment.client(None, wsse=token)
    assert [f.SourceId for f in service.GetFeedStatus()] == ["a"]
    for _ in range(3):  # the same nonce again, maybe landing on another gunicorn worker
        with pytest.raises(zeep.exceptions.Fault) as fault:
            service.GetFeedStatus()
        assert fault.value.code.endswith("Client.AuthenticationFailed")
        assert "nonce" in fault.value.message


@pytest.mark.parametrize("password,age", [("wrong", 0), (CONSUMER[1], 3600), (CONSUMER[1], -3600)])
def test_username_token_digest_with_wrong_password_or_stale_created_fails(deployment, password, age):
    created = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
    service = deployment.client(None, wsse=digest_token(CONSUMER[0], password, random_nonce(), created))
    with pytest.raises(zeep.exceptions.Fault) as fault:
        service.GetFeedStatus()
    assert fault.value.code.endswith("Client.AuthenticationFailed")


# -- the other operations -------------------------------------------------------------------------

def test_get_listing_returns_every_mapped_field(consumer, rows):
    row = next(r for r in rows if r["source_id"] == "a" and r["unit_number"])
    listing = consumer.GetListing("a", row["listing_key"])
    assert listing.ListingId == row["listing_id"]
    assert listing.ListPrice == row["list_price"]
    assert listing.UnparsedAddress == row["unparsed_address"]
    assert listing.UnitNumber == row["unit_number"]
    assert listing.CountyOrParish == row["county_or_parish"]
    assert listing.Latitude == pytest.approx(row["latitude"])
    assert listing.PublicRemarks == row["public_remarks"]
    assert listing.ModificationTimestamp == row["modification_timestamp"]
    assert listing.PhotosCount == row["photos_count"]


def test_get_listing_images_lists_photo_urls_in_order(consumer, rows):
    row = next(r for r in rows if r["source_id"] == "a" and r["photos_count"] >= 3)
    images = consumer.GetListingImages("a", row["listing_key"])
    assert [i.Order for i in images] == list(range(1, row["photos_count"] + 1))
    assert images[0].Url.endswith(f"/a/{row['listing_id']}/1.jpg")


def test_unknown_listing_is_not_found(consumer):
    with pytest.raises(zeep.exceptions.Fault) as fault:
        consumer.GetListingImages("a", "no-such-key")
    assert fault.value.code.endswith("Client.NotFound")


def test_operators_read_the_whole_error_of_a_failed_run_and_consumers_do_not(deployment, consumer, operator):
    with deployment.sessions()() as session:
        session.add(FeedRun(source_id="a", business_date=dt.date(2026, 11, 30), status="failed",
                            step="download", attempt=3, last_error="RETS 20036: login refused for user X"))
        session.commit()
    try:
        as_operator = operator.GetFeedStatus("a")[0]
        as_consumer = consumer.GetFeedStatus("a")[0]
        assert as_operator.RunStatus == as_consumer.RunStatus == "failed"
        assert "20036" in as_operator.LastError
        assert "20036" not in as_consumer.LastError and "download" in as_consumer.LastError
        assert as_operator.ListingCount == as_consumer.ListingCount == 1000
        assert len(operator.GetFeedStatus()) == 3
    finally:
        with deployment.sessions()() as session:
            session.execute(FeedRun.__table__.delete())
            session.commit()
