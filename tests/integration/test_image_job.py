"""The image job over a real database and object store, photos fetched over HTTP.

Each listing's photos are hosted by a local HTTP server (real JPEGs and PNGs from
sandbox.photos, some corrupt on purpose); the feed's Media column lists their URLs and the
source's strategy is ``http`` (re-hosted) or ``mls_urls`` (linked).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from core.models import FeedRun, Listing, Media, Source
from core.storage import LocalObjectStore
from pipeline.images.job import ImageJob, ImagePolicy
from sandbox.photos import kind
from tests.conftest import backend_param
from tests.support.databases import fresh_database
from tests.support.photo_server import photo_host
from tests.support.pipeline import FIELDS, FakeConnector, add_source, make_balancer, record

UTC = dt.timezone.utc
PHOTOS = 4


@pytest.fixture(params=[backend_param("sqlite"), backend_param("postgres")])
def database_url(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def host():
    with photo_host() as host:
        yield host


@pytest.fixture
def world(database_url, tmp_path, host):
    connector = FakeConnector()
    balancer = make_balancer(database_url, tmp_path / "objects", connector)
    store = LocalObjectStore(tmp_path / "objects")
    job = ImageJob(balancer.sessions, store, {}, "photos-1", ImagePolicy(threads=4))
    return balancer, connector, job, store


def listing_records(host, keys, changed=None):
    changed = changed or {}
    return [
        record(n, key=key, photos=[host.link(key, i) for i in range(1, PHOTOS + 1)],
               photos_changed=changed.get(key, "2026-11-29T10:00:00Z"))
        for n, key in enumerate(keys)
    ]


def setup_source(balancer, strategy="http"):
    with balancer.sessions() as session:
        add_source(session, "naples")
        source = session.get(Source, "naples")
        source.parse = {**source.parse, "fields": {**FIELDS, "Media": "photos", "PhotosChangeTimestamp": "photos_changed"}}
        source.images = {"strategy": strategy}
        session.commit()


def full_run(balancer, job):
    with balancer.sessions() as session:
        slot = f"r{session.scalar(select(FeedRun.id).order_by(FeedRun.id.desc()).limit(1)) or 0}"
        run = FeedRun(source_id="naples", business_date=dt.date(2026, 11, 30), kind="full", slot=slot)
        session.add(run)
        session.commit()
        run_id = run.id
    assert balancer.claim(run_id) == run_id
    balancer.advance(run_id)
    assert job.claim() == run_id
    job.process(run_id)
    with balancer.sessions() as session:
        return session.get(FeedRun, run_id)


def stored_objects(store):
    return {info.key: hashlib.md5(store.open(info.key).read()).hexdigest() for info in store.list("photos/")}


def expected_objects(host, keys):
    """MD5 of every photo that must be stored: all but the corrupt ones."""
    from sandbox.photos import expected_photo

    return sorted(
        expected_photo(key, n, host.versions.get(key, 0))["md5"]
        for key in keys for n in range(1, PHOTOS + 1)
        if kind(key, n, host.versions.get(key, 0)) != "corrupt"
    )


KEYS = [f"L{n:03d}" for n in range(30)]


def test_photos_are_stored_once_byte_for_byte_and_corrupt_ones_rejected(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    connector.feeds["naples"] = listing_records(host, KEYS)
    run = full_run(balancer, job)
    corrupt = sum(kind(k, n) == "corrupt" for k in KEYS for n in range(1, PHOTOS + 1))
    assert corrupt, "the sandbox should serve some corrupt photos"
    assert (run.photos_stored, run.photos_failed, run.images_ready) == (len(KEYS) * PHOTOS - corrupt, corrupt, False)
    assert sorted(stored_objects(store).values()) == expected_objects(host, KEYS)
    with balancer.sessions() as session:
        media = session.scalars(select(Media).where(Media.storage_key.is_not(None))).all()
        assert all(m.width and m.height and m.content_type.startswith("image/") for m in media)
        assert {m.storage_key for m in media} == set(stored_objects(store))


def test_a_second_run_fetches_nothing_when_photos_did_not_change(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    connector.feeds["naples"] = listing_records(host, KEYS)
    full_run(balancer, job)
    before, hits = stored_objects(store), sum(host.hits.values())
    again = full_run(balancer, job)
    assert (again.photos_fetched, again.photos_stored) == (0, 0)
    assert sum(host.hits.values()) == hits, "unchanged PhotosChangeTimestamp: nothing fetched at all"
    assert stored_objects(store) == before


def test_without_a_change_timestamp_photos_are_fetched_but_identical_ones_not_uploaded(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    connector.feeds["naples"] = [{**r, "photos_changed": None} for r in listing_records(host, KEYS[:5])]
    first = full_run(balancer, job)
    again = full_run(balancer, job)
    assert again.photos_fetched == first.photos_stored and again.photos_stored == 0
    assert again.photos_unchanged == first.photos_stored


def test_a_changed_photo_replaces_the_old_object(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    connector.feeds["naples"] = listing_records(host, KEYS[:6])
    full_run(balancer, job)
    before = stored_objects(store)
    host.versions["L002"] = 1
    connector.feeds["naples"] = listing_records(host, KEYS[:6], changed={"L002": "2026-11-30T09:00:00Z"})
    run = full_run(balancer, job)
    after = stored_objects(store)
    assert sorted(after.values()) == expected_objects(host, KEYS[:6])
    old_l002 = {k for k in before if "/L002/" in k}
    assert old_l002 and not (old_l002 & set(after)), "the old objects of the changed listing are gone"
    assert run.photos_removed == len(old_l002)
    assert {k for k in before if "/L002/" not in k} <= set(after)


def test_photos_of_removed_listings_go_after_the_grace_period(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    connector.feeds["naples"] = listing_records(host, KEYS[:4])
    full_run(balancer, job)
    connector.feeds["naples"] = listing_records(host, KEYS[1:4])
    full_run(balancer, job)
    assert any("/L000/" in k for k in stored_objects(store)), "kept during the grace period"
    with balancer.sessions() as session:
        gone = session.scalar(select(Listing).where(Listing.listing_key == "L000"))
        gone.removed_at = dt.datetime.now(UTC) - dt.timedelta(days=8)
        session.commit()
    full_run(balancer, job)
    assert not any("/L000/" in k for k in stored_objects(store))


def test_mls_urls_are_linked_not_stored(world, host):
    balancer, connector, job, store = world
    setup_source(balancer, strategy="mls_urls")
    connector.feeds["naples"] = listing_records(host, KEYS[:3])
    run = full_run(balancer, job)
    assert stored_objects(store) == {} and sum(host.hits.values()) == 0
    assert (run.photos_linked, run.photos_stored) == (3 * PHOTOS, 0), "the run counts the photos it linked"
    with balancer.sessions() as session:
        urls = session.scalars(select(Media.url).join(Listing).where(Listing.listing_key == "L001").order_by(Media.order))
        assert list(urls) == [host.link("L001", n) for n in range(1, PHOTOS + 1)]


def test_a_photo_host_that_is_down_makes_the_job_retry_later(world, host):
    balancer, connector, job, store = world
    setup_source(balancer)
    records = listing_records(host, KEYS)
    connector.feeds["naples"] = [{**r, "photos": [u.replace(host.url, "http://127.0.0.1:9") for u in r["photos"]]}
                                 for r in records]
    run = full_run(balancer, job)
    assert run.status == "succeeded", "a photo failure never fails the listing data"
    assert run.images_ready and run.images_attempt == 1 and run.images_next_attempt_at is not None
    assert "photo host keeps failing" in run.images_error
