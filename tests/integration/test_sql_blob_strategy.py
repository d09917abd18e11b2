"""Photos from the sandbox's MLS servers through the real connectors, the data steps and the image job.

The sandbox's vendor database (SQLite always, PostgreSQL and MariaDB when MLSFEEDS_TEST_POSTGRES_URL /
MLSFEEDS_TEST_MARIADB_URL are set) keeps its photos as BLOB rows, read with the ``sql_blob`` strategy;
the sandbox's SOAP and RESO servers host theirs, linked with ``url_template`` and ``mls_urls``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.db import make_engine, session_factory
from core.models import FeedRun, Listing, Media
from core.storage import LocalObjectStore
from pipeline.balancer import Balancer, Policy
from pipeline.errors import SourceConfigError
from pipeline.geocode.zipcentroid import ZipCentroidGeocoder
from pipeline.images import ListingPhotos
from pipeline.images.job import ImageJob, ImagePolicy
from pipeline.images.sql_blob import STRATEGY
from pipeline.spec import apply, parse_source
from pipeline.steps import Services
from sandbox.feeds.reso import ResoFeed
from sandbox.feeds.soap import FEED as SOAP
from sandbox.feeds.sql import SqlFeed
from sandbox.listings import ANCHOR, synthetic_listings
from sandbox.photos import kind, photo_bytes
from tests.conftest import backend_param
from tests.integration.test_sql_connector import throwaway_database
from tests.support.databases import fresh_database, server_url
from tests.support.servers import free_port

COUNT = 24
BACKENDS = [backend_param(b) for b in ("sqlite", "postgres", "mariadb")]
SERVERS = [backend_param(b) for b in ("postgres", "mariadb")]


# -- the deployment: our database (SQLite), a folder object store, real connectors ------------------

@dataclass
class Deployment:
    balancer: Balancer
    job: ImageJob
    store: LocalObjectStore

    def add(self, table: dict) -> str:
        """Apply a sandbox feed's ``[[source]]`` table as ``mlsfeeds sources apply`` would."""
        with self.balancer.sessions() as session:
            apply(session, [parse_source(table)])
            session.commit()
        return table["id"]

    def run(self, source_id: str) -> FeedRun:
        """A full run through every data step, then the image job; the run as it ends."""
        with self.balancer.sessions() as session:
            run = FeedRun(source_id=source_id, business_date=dt.date(2026, 6, 1), kind="full",
                          slot=f"r{session.scalar(select(FeedRun.id).order_by(FeedRun.id.desc()).limit(1)) or 0}")
            session.add(run)
            session.commit()
            run_id = run.id
        assert self.balancer.claim(run_id) == run_id
        self.balancer.advance(run_id)
        if self.job.claim() == run_id:
            self.job.process(run_id)
        with self.balancer.sessions() as session:
            return session.get(FeedRun, run_id)

    def objects(self) -> dict[str, str]:
        """Every stored photo: key -> MD5 of its bytes."""
        return {info.key: hashlib.md5(self.store.open(info.key).read()).hexdigest()
                for info in self.store.list("photos/")}

    def media(self, source_id: str, listing_key: str) -> list[Media]:
        with self.balancer.sessions() as session:
            return list(session.scalars(select(Media).join(Listing).where(
                Listing.source_id == source_id, Listing.listing_key == listing_key).order_by(Media.order)))


@pytest.fixture
def deployment(tmp_path):
    with fresh_database("sqlite", tmp_path) as url:
        sessions = session_factory(make_engine(url, immediate=True))
        store = LocalObjectStore(tmp_path / "objects")
        services = Services(store=store, geocoders=[ZipCentroidGeocoder()], environ={})
        balancer = Balancer(sessions, services, Policy(lease_seconds=60, backoff_seconds=60), worker="data-1")
        yield Deployment(balancer, ImageJob(sessions, store, {}, "photos-1", ImagePolicy(threads=4)), store)


# -- the vendor database --------------------------------------------------------------------------

@pytest.fixture
def listings():
    return list(synthetic_listings(COUNT, ["vendormls"], seed=7))


@dataclass
class Vendor:
    feed: SqlFeed
    table: dict
    root: object

    def publish(self, listings: list[dict]) -> None:
        self.feed.publish(listings, self.root)


@contextmanager
def vendor_database(backend: str, listings: list[dict], root):
    with (throwaway_database(backend) if backend != "sqlite" else _nothing()) as url:
        feed = SqlFeed(url, photos=True)
        feed.publish(listings, root)
        yield Vendor(feed, feed.source(feed.start(root), "vendormls"), root)


@contextmanager
def _nothing():
    yield None


@pytest.fixture(params=BACKENDS)
def vendor(request, listings, tmp_path):
    with vendor_database(request.param, listings, tmp_path / "vendor") as vendor:
        yield vendor


def wanted_md5s(vendor: Vendor, listings: list[dict]) -> list[str]:
    """MD5s of every photo that must be stored: all but the corrupt ones."""
    return sorted(p["md5"] for x in listings for p in vendor.feed.expected_photos(x) if not p["corrupt"])


def corrupt_count(vendor: Vendor, listings: list[dict]) -> int:
    return sum(p["corrupt"] for x in listings for p in vendor.feed.expected_photos(x))


def move_photos(listing: dict) -> None:
    """What ``sandbox mutate --change-photos`` does to a listing: new bytes, a later change time."""
    listing["PhotoVersion"] = listing.get("PhotoVersion", 0) + 1
    listing["PhotosChangeTimestamp"] = listing["ModificationTimestamp"] = ANCHOR + dt.timedelta(days=1)


# -- sql_blob -------------------------------------------------------------------------------------

def test_exactly_the_published_photos_are_stored_and_corrupt_ones_counted_failed(vendor, deployment, listings):
    run = deployment.run(deployment.add(vendor.table))
    corrupt = corrupt_count(vendor, listings)
    assert corrupt, "the sandbox should publish some corrupt photos"
    assert (run.status, run.images_ready, run.images_attempt) == ("succeeded", False, 0), run.images_error
    assert (run.photos_stored, run.photos_failed) == (len(wanted_md5s(vendor, listings)), corrupt)
    assert sorted(deployment.objects().values()) == wanted_md5s(vendor, listings)


def test_stored_photos_are_measured_and_carry_their_caption_and_time(vendor, deployment, listings):
    source_id = deployment.add(vendor.table)
    deployment.run(source_id)
    listing = max(listings, key=lambda x: x["PhotosCount"])
    good = [p for p in vendor.feed.expected_photos(listing) if not p["corrupt"]]
    media = deployment.media(source_id, listing["ListingKey"])
    assert [m.order for m in media] == [p["order"] for p in good]
    assert all(m.width and m.height and m.content_type.startswith("image/") for m in media)
    assert [m.bytes for m in media] == [p["bytes"] for p in good]
    assert {m.caption for m in media} == {f"Photo {p['order']}" for p in good}
    changed = vendor.feed.expected(listing)["PhotosChangeTimestamp"]
    assert {m.modification_timestamp for m in media} == {changed}


def test_a_second_run_uploads_nothing(vendor, deployment):
    source_id = deployment.add(vendor.table)
    deployment.run(source_id)
    before = deployment.objects()
    again = deployment.run(source_id)
    assert (again.photos_fetched, again.photos_stored, again.photos_removed) == (0, 0, 0)
    assert deployment.objects() == before


def test_a_new_photo_version_replaces_the_objects_and_deletes_the_old_ones(vendor, deployment, listings):
    source_id = deployment.add(vendor.table)
    deployment.run(source_id)
    before = deployment.objects()
    # a new version that turns out corrupt would keep the photo we had: pick one that does not
    changed = next(x for x in listings if x["PhotosCount"] >= 3 and not any(kind(x["ListingKey"], n, v) == "corrupt"
                   for n in range(1, x["PhotosCount"] + 1) for v in (0, 1)))
    old = {k for k in before if f"/{changed['ListingKey']}/" in k}
    move_photos(changed)
    vendor.publish(listings)
    run = deployment.run(source_id)
    after = deployment.objects()
    assert sorted(after.values()) == wanted_md5s(vendor, listings)
    assert old and not old & set(after), "the changed listing's old objects are gone"
    assert run.photos_removed == len(old) and run.photos_fetched == changed["PhotosCount"]
    assert set(before) - old <= set(after), "the other listings' photos stay"


@pytest.mark.parametrize("vendor", SERVERS, indirect=True)
def test_rejected_credentials_give_up_on_the_photos_but_not_on_the_data(vendor, deployment):
    # PostgreSQL here trusts loopback, so an unknown role stands for a wrong password
    url = make_url(vendor.table["images"]["url"])
    url = url.set(username="no_such_user") if url.get_backend_name() == "postgresql" else url.set(password="wrong-pw")
    table = {**vendor.table, "images": {**vendor.table["images"], "url": url.render_as_string(hide_password=False)}}
    run = deployment.run(deployment.add(table))
    assert run.status == "succeeded", "a photo failure never fails the listing data"
    assert (run.images_ready, run.images_attempt, run.images_next_attempt_at) == (False, 1, None)
    assert run.images_error.startswith("photos failed") and "wrong-pw" not in run.images_error
    assert deployment.objects() == {}


def test_an_unreachable_photo_database_makes_the_image_job_retry_later(listings, deployment, tmp_path):
    with vendor_database("sqlite", listings, tmp_path / "vendor") as vendor:
        refused = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test"
        table = {**vendor.table, "images": {**vendor.table["images"], "url": refused, "timeout": 5}}
        run = deployment.run(deployment.add(table))
    assert run.status == "succeeded", "a photo failure never fails the listing data"
    assert run.images_ready and run.images_attempt == 1 and run.images_next_attempt_at is not None
    assert "photos: attempt 1 failed" in run.images_error


def listing_photos(listing: dict) -> ListingPhotos:
    return ListingPhotos(0, "vendormls", listing["ListingKey"], listing["ListingId"], listing["PhotosCount"],
                         {"ListingKey": listing["ListingKey"]})


def test_rows_come_back_in_order_as_bytes_however_large(vendor, listings):
    listing = max(listings, key=lambda x: x["PhotosCount"])
    large = os.urandom(300_000)  # past MySQL's 64 KB BLOB: the vendor's column must be LONGBLOB
    engine = create_engine(vendor.table["images"]["url"], poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE l_pictures SET picture = :large WHERE l_uid = :key AND seq = 2"),
                           {"large": large, "key": listing["ListingKey"]})
    engine.dispose()
    with STRATEGY.open(vendor.table["images"], {}) as source:
        photos = source.photos(listing_photos(listing))
    assert [p.order for p in photos] == list(range(1, listing["PhotosCount"] + 1))
    assert all(type(p.data) is bytes for p in photos)
    assert photos[1].data == large and photos[0].data == photo_bytes(listing["ListingKey"], 1)


@pytest.mark.parametrize("change, error", [
    ({"query": "SELECT seq AS n, picture AS data FROM l_pictures"}, ":key parameter"),
    ({"query": "SELECT seq AS n FROM l_pictures WHERE l_uid = :key"}, "data_column 'data' is not a column"),
    ({"query": "SELECT * FROM no_such_table WHERE l_uid = :key"}, "no such table"),
    ({"order_column": "position"}, "order_column 'position' is not a column"),
    ({"query": "SELECT descr AS n, picture AS data, descr AS caption, updated AS modified FROM l_pictures"
               " WHERE l_uid = :key"}, "whole numbers"),
    ({"timeout": "soon"}, "timeout"),
    ({"url": None}, "images.url is required"),
])
def test_a_wrong_spec_is_a_config_error(listings, tmp_path, change, error):
    with vendor_database("sqlite", listings, tmp_path / "vendor") as vendor:
        listing = next(x for x in listings if x["PhotosCount"])
        with pytest.raises(SourceConfigError, match=error):
            with STRATEGY.open({**vendor.table["images"], **change}, {}) as source:
                source.photos(listing_photos(listing))


# -- linked photos: the sandbox's SOAP and RESO servers host them -----------------------------------

@contextmanager
def serving(feed, listings: list[dict], root):
    feed.publish(listings, root)
    running = feed.start(root)
    try:
        yield running
    finally:
        running.stop()


def assert_links_serve_the_photos(deployment: Deployment, source_id: str, feed, running, listings: list[dict]):
    """Every listing's media rows hold the feed's photo URLs, and each URL answers with its bytes."""
    for listing in listings:
        expected = feed.expected_photos(listing, running)
        media = deployment.media(source_id, listing["ListingKey"])
        assert [(m.order, m.url, m.storage_key) for m in media] == [(p["order"], p["url"], None) for p in expected]
        for photo in expected:
            reply = requests.get(photo["url"], timeout=10)
            assert reply.status_code == 200, photo["url"]
            assert reply.content == photo_bytes(listing["ListingKey"], photo["order"], listing.get("PhotoVersion", 0))


def test_soap_photo_links_from_the_url_template_are_served_by_the_sandbox(deployment, tmp_path):
    listings = list(synthetic_listings(COUNT, ["soapmls"], seed=8))
    with serving(SOAP, listings, tmp_path / "soap") as running:
        source_id = deployment.add(SOAP.source(running, "soapmls"))
        assert deployment.run(source_id).photos_stored == 0
        assert deployment.objects() == {}
        assert_links_serve_the_photos(deployment, source_id, SOAP, running, listings)
        changed = next(x for x in listings if x["PhotosCount"])
        move_photos(changed)
        SOAP.publish(listings, tmp_path / "soap")
        assert_links_serve_the_photos(deployment, source_id, SOAP, running, [changed])


def test_reso_media_urls_are_served_by_the_sandbox(deployment, tmp_path):
    listings = list(synthetic_listings(COUNT, ["resomls"], seed=9))
    feed = ResoFeed(host_media=True)
    with serving(feed, listings, tmp_path / "reso") as running:
        source_id = deployment.add(feed.source(running, "resomls"))
        assert deployment.run(source_id).photos_stored == 0
        assert_links_serve_the_photos(deployment, source_id, feed, running, listings)
        missing = requests.get(f"{running.details['base']}/media/{listings[0]['ListingKey']}/99.jpg", timeout=10)
        assert missing.status_code == 404
