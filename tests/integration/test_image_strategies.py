"""The rets, ftp (over FTP, FTPS and SFTP) and http photo strategies against the sandbox's MLS servers.

Each case starts a sandbox feed, publishes a few synthetic listings, reads the feed's own
``[[source]]`` table as ``mlsfeeds sources apply`` would, runs the data steps with the real
connector of its kind, then the image job, over a real database and a local object store. The
store must then hold exactly sandbox.photos' bytes for every photo that is an image, the corrupt
ones counted as failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from core.db import make_engine, session_factory
from core.models import FeedRun, Listing, Media
from core.storage import LocalObjectStore
from pipeline.balancer import Balancer, Policy
from pipeline.geocode.zipcentroid import ZipCentroidGeocoder
from pipeline.images.job import ImageJob, ImagePolicy
from pipeline.spec import apply, parse_source
from pipeline.steps import Services
from sandbox.feeds.ftp import FtpFeed
from sandbox.feeds.http import HttpFeed
from sandbox.feeds.rets import FEED as RETS_FEED
from sandbox.feeds.sftp import SftpFeed
from sandbox.listings import synthetic_listings
from sandbox.photos import kind
from tests.support.databases import fresh_database

SID = "photomls"
LISTINGS = 10
SEED = 4
T0 = dt.datetime(2026, 6, 2, 8, 0, tzinfo=dt.timezone.utc)


def _ftps() -> FtpFeed:
    pytest.importorskip("OpenSSL", reason="pyftpdlib's FTPS server needs pyOpenSSL")
    return FtpFeed(tls=True)


FEEDS = {"rets": lambda: RETS_FEED, "ftp": FtpFeed, "ftps": _ftps, "sftp": SftpFeed, "http": HttpFeed}
# Feeds that say when a listing's photos changed: unchanged ones are not even fetched again.
WITH_CHANGE_TIMES = {"rets", "ftp", "ftps", "http"}


@dataclass
class Mls:
    """One sandbox feed and our pipeline pointed at it."""

    name: str
    feed: Any
    root: Path
    running: Any
    listings: list[dict]
    balancer: Balancer
    job: ImageJob
    store: LocalObjectStore
    published: int = 0
    runs: list[FeedRun] = field(default_factory=list)

    def publish(self) -> None:
        """Publish the listings again, as a newer file or document than the last."""
        self.published += 1
        if self.feed.kind == "rets":
            self.feed.publish(self.listings, self.root)
        else:
            self.feed.publish(self.listings, self.root, mtime=T0 + dt.timedelta(hours=self.published))

    def configure(self, **images) -> None:
        """(Re)apply the feed's source table, its images spec changed by ``images``."""
        table = self.feed.source(self.running, SID)
        table["images"] = {**table["images"], **images}
        with self.balancer.sessions() as session:
            apply(session, [parse_source(table)])
            session.commit()

    def run(self, publish: bool = True, photos: bool = True) -> FeedRun:
        """A full run through the data steps, then (unless told not to) the image job; the run as it ended."""
        if publish:
            self.publish()
        with self.balancer.sessions() as session:
            run = FeedRun(source_id=SID, business_date=dt.date(2026, 6, 2), kind="full", slot=f"r{len(self.runs)}")
            session.add(run)
            session.commit()
            run_id = run.id
        assert self.balancer.claim(run_id) == run_id
        self.balancer.advance(run_id)
        if photos:
            assert self.job.claim() == run_id, self._run(run_id).last_error
            self.job.process(run_id)
        self.runs.append(self._run(run_id))
        return self.runs[-1]

    def _run(self, run_id: int) -> FeedRun:
        with self.balancer.sessions() as session:
            return session.get(FeedRun, run_id)

    def stored(self) -> dict[tuple[str, int], str]:
        """{(listing key, order): MD5} of every photo object in the store."""
        found = {}
        for info in self.store.list("photos/"):
            _, source, key, name = info.key.split("/")
            with self.store.open(info.key) as stream:
                found[key, int(name.split("-")[0])] = hashlib.md5(stream.read()).hexdigest()
        return found

    def expected(self) -> dict[tuple[str, int], str]:
        """{(listing key, order): MD5} of every photo the feed publishes that is an image."""
        return {(listing["ListingKey"], photo["order"]): photo["md5"]
                for listing in self.listings for photo in self.feed.expected_photos(listing) if not photo["corrupt"]}

    def corrupt(self) -> int:
        return sum(p["corrupt"] for listing in self.listings for p in self.feed.expected_photos(listing))

    def keys(self) -> set[str]:
        return {info.key for info in self.store.list("photos/")}


@contextmanager
def started(name: str, tmp_path: Path, feed: Any = None) -> Iterator[Mls]:
    feed = feed or FEEDS[name]()
    listings = list(synthetic_listings(LISTINGS, [SID], SEED))
    root = tmp_path / "mls"
    feed.publish(listings, root)
    running = feed.start(root)
    try:
        with fresh_database("sqlite", tmp_path) as url:
            yield _pipeline(name, feed, root, running, listings, tmp_path / "objects", url)
    finally:
        running.stop()


@pytest.fixture(params=list(FEEDS))
def mls(request, tmp_path):
    with started(request.param, tmp_path) as mls:
        yield mls


@pytest.fixture
def rets(tmp_path):
    with started("rets", tmp_path) as mls:
        yield mls


@pytest.fixture(params=["ftp", "sftp"])
def file_server(request, tmp_path):
    with started(request.param, tmp_path) as mls:
        yield mls


@pytest.fixture(params=["rets", "ftp", "sftp"])
def logged_in(request, tmp_path):
    with started(request.param, tmp_path) as mls:
        yield mls


def _pipeline(name, feed, root, running, listings, objects: Path, url: str) -> Mls:
    sessions = session_factory(make_engine(url, immediate=True))
    store = LocalObjectStore(objects)
    services = Services(store=store, geocoders=[ZipCentroidGeocoder()], environ={})
    balancer = Balancer(sessions, services, Policy(lease_seconds=60, backoff_seconds=60))
    job = ImageJob(sessions, store, {}, "photos-1", ImagePolicy(threads=3))
    mls = Mls(name, feed, root, running, listings, balancer, job, store)
    mls.configure()
    return mls


def test_the_store_holds_every_photo_byte_for_byte_and_rejects_the_corrupt_ones(mls):
    run = mls.run()
    assert mls.corrupt(), "the listings should have some corrupt photos"
    assert run.status == "succeeded" and not run.images_ready, run.images_error
    assert mls.stored() == mls.expected()
    assert (run.photos_stored, run.photos_failed) == (len(mls.expected()), mls.corrupt())
    with mls.balancer.sessions() as session:
        media = session.scalars(select(Media)).all()
        assert {m.storage_key for m in media} == mls.keys()
        assert all(m.width and m.height and m.content_type.startswith("image/") for m in media)


def test_a_second_run_uploads_nothing(mls):
    first = mls.run()
    before, served = mls.stored(), _served(mls)
    again = mls.run()
    assert (again.photos_stored, again.photos_removed) == (0, 0) and mls.stored() == before
    if mls.name in WITH_CHANGE_TIMES:  # the feed says the photos did not change: nothing is fetched
        assert (again.photos_fetched, again.photos_failed) == (0, 0) and _served(mls) == served
    else:  # no change time in the feed: fetched again, found identical, not uploaded
        assert (again.photos_unchanged, again.photos_failed) == (first.photos_stored, mls.corrupt())


def test_a_new_photo_version_replaces_the_objects_and_deletes_the_old_ones(mls):
    mls.run()
    before = mls.keys()
    changed = _new_photo_version(mls.listings, count=2)
    old = {k for k in before if any(f"/{key}/" in k for key in changed)}
    run = mls.run()
    after = mls.keys()
    assert mls.stored() == mls.expected()
    assert old and not old & after, "the changed listings' old objects are gone"
    assert run.photos_removed == len(old) and run.photos_stored == len(after - before)
    assert before - old <= after, "the other listings' objects stay"


def test_rets_location_links_the_photos_instead_of_storing_them(rets):
    rets.configure(location=True)
    run = rets.run()
    assert rets.keys() == set() and run.photos_failed == 0
    with rets.balancer.sessions() as session:
        rows = session.execute(select(Listing.listing_key, Media.order, Media.url).join(Media)).all()
    every = {(l["ListingKey"], p["order"]): p["md5"] for l in rets.listings for p in rets.feed.expected_photos(l)}
    assert {(key, order) for key, order, _ in rows} == set(every)
    key, order, url = rows[0]
    assert hashlib.md5(requests.get(url, timeout=10).content).hexdigest() == every[key, order]


def test_rets_logs_in_again_when_the_session_expires(rets):
    controls = rets.running.details["controls"]
    controls.expire_after = 4
    run = rets.run()
    assert rets.stored() == rets.expected() and run.photos_failed == rets.corrupt()
    assert controls.stats["expired"] >= 1


def test_a_refused_login_fails_the_photos_for_good(logged_in):
    logged_in.configure(password="wrong")
    run = logged_in.run()
    assert run.status == "succeeded", "the listing data is in all the same"
    assert not run.images_ready and run.images_attempt == 1 and run.images_next_attempt_at is None
    assert "photos failed" in run.images_error and logged_in.keys() == set()


def test_a_missing_photo_file_fails_that_photo_until_it_is_there(file_server):
    mls = file_server
    listing = next(l for l in mls.listings if (l["PhotosCount"] or 0) >= 3 and kind(l["ListingKey"], 2) != "corrupt")
    mls.publish()
    (mls.root / mls.name / "photos" / f"{listing['ListingId']}_2.jpg").unlink()
    run = mls.run(publish=False)
    stored = mls.stored()
    if mls.name == "ftp":  # counted: photo 2 fails, the others arrive
        assert (listing["ListingKey"], 2) not in stored and (listing["ListingKey"], 3) in stored
        assert run.photos_failed == mls.corrupt() + 1
    else:  # probed (the feed has no PhotosCount): the photos end at the first missing file
        assert (listing["ListingKey"], 1) in stored and (listing["ListingKey"], 3) not in stored
    mls.run()  # published again: the file is back
    assert mls.stored() == mls.expected()


@pytest.mark.parametrize("cap_reply", ["530", "421", "ssh"])
def test_a_server_that_caps_logins_serves_every_photo_over_the_connections_it_allows(cap_reply, tmp_path, caplog):
    feed = SftpFeed(max_sessions=2) if cap_reply == "ssh" else FtpFeed(max_logins=2, cap_reply=cap_reply)
    with started(feed.kind, tmp_path, feed) as mls:
        mls.job = ImageJob(mls.balancer.sessions, mls.store, {}, "photos-1", ImagePolicy(threads=6))
        with caplog.at_level(logging.WARNING, logger="pipeline.connectors.logins"):
            run = mls.run()
        assert run.status == "succeeded" and not run.images_ready, run.images_error
        assert mls.stored() == mls.expected() and run.photos_failed == mls.corrupt()
        warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.connectors.logins"]
        assert len(warnings) == 1, warnings
        assert "refused one more connection" in warnings[0]
        if cap_reply == "ssh":
            sessions = mls.running.details["sessions"]
            assert sessions["most"] == 2 and sessions["refused"] >= 1
            return
        assert f"{cap_reply} " in warnings[0]
        if cap_reply == "530":
            logins = mls.running.details["logins"]
            assert logins.most == 2 and logins.refused >= 1


def test_connections_set_to_the_servers_cap_ask_for_no_more(tmp_path, caplog):
    with started("ftp", tmp_path, FtpFeed(max_logins=2)) as mls:
        mls.job = ImageJob(mls.balancer.sessions, mls.store, {}, "photos-1", ImagePolicy(threads=6))
        mls.configure(connections=0)
        run = mls.run()
        assert not run.images_ready and "images.connections must be a whole number >= 1, got 0" in run.images_error
        mls.configure(connections=2)
        with caplog.at_level(logging.WARNING, logger="pipeline.connectors.logins"):
            run = mls.run()
        assert mls.stored() == mls.expected() and run.photos_failed == mls.corrupt()
        logins = mls.running.details["logins"]
        assert (logins.most, logins.refused) == (2, 0)
        assert not [r for r in caplog.records if r.name == "pipeline.connectors.logins"]


def test_a_feed_without_photos_count_counts_the_photos_each_listing_has(tmp_path):
    with started("sftp", tmp_path) as mls:  # its export carries no PhotosCount column
        mls.run()
        has = {l["ListingKey"]: sum(not p["corrupt"] for p in mls.feed.expected_photos(l)) for l in mls.listings}
        assert _photo_counts(mls) == has and max(has.values()) > 0
        mls.run(photos=False)  # every listing loaded again: the count the photo job set stays
        assert _photo_counts(mls) == has


def _photo_counts(mls: Mls) -> dict[str, int]:
    with mls.balancer.sessions() as session:
        rows = session.execute(select(Listing.listing_key, Listing.photos_count)).all()
        media = dict(session.execute(select(Listing.listing_key, func.count(Media.id)).join(Media)
                                     .group_by(Listing.listing_key)).all())
    assert all(count == media.get(key, 0) for key, count in rows)
    return dict(rows)


def _served(mls: Mls) -> int:
    """How many photos the server has sent, where it counts them (RETS and HTTP)."""
    details = mls.running.details
    if "controls" in details:
        return details["controls"].stats["objects"]
    return details["stats"]["photos"] if "stats" in details else 0


def _new_photo_version(listings: list[dict], count: int) -> list[str]:
    """Give ``count`` listings new photos (none of them corrupt, so every old object is replaced)."""
    moved = T0 + dt.timedelta(days=1)
    chosen = [l for l in listings if l["PhotosCount"]
              and all(kind(l["ListingKey"], n, 1) != "corrupt" for n in range(1, l["PhotosCount"] + 1))][:count]
    assert chosen, "some listing should have photos"
    for listing in chosen:
        listing.update(PhotoVersion=1, PhotosChangeTimestamp=moved, ModificationTimestamp=moved)
    return [listing["ListingKey"] for listing in chosen]


# -- RETS GetObject as real servers send it (the sandbox's quirks) -----------------------------------

def _linked(mls: Mls) -> dict[tuple[str, int], tuple[str | None, str | None]]:
    """{(listing key, order): (url, caption)} of every media row."""
    with mls.balancer.sessions() as session:
        rows = session.execute(select(Listing.listing_key, Media.order, Media.url, Media.caption).join(Media)).all()
    return {(key, order): (url, caption) for key, order, url, caption in rows}


def _every_photo(mls: Mls) -> set[tuple[str, int]]:
    return {(l["ListingKey"], p["order"]) for l in mls.listings for p in mls.feed.expected_photos(l)}


def test_one_rets_session_serves_the_whole_photo_job(rets):
    controls = rets.running.details["controls"]
    run = rets.run(photos=False)
    controls.stats.clear()  # the download's own session is done: count the photo job's alone
    assert rets.job.claim() == run.id
    rets.job.process(run.id)
    assert rets.stored() == rets.expected()
    assert (controls.stats["Login"], controls.stats["Logout"]) == (1, 1)
    assert controls.stats["GetObject"] == sum(1 for l in rets.listings) > rets.job.policy.threads
    assert controls.stats["challenged"] == 1, "only the login's first request meets a 401 (auth = auto)"
    assert controls.stats["challenged Logout"] == 0


@pytest.mark.parametrize("quirk", ["location_bytes", "xml_links"])
def test_rets_location_replies_link_every_photo_whatever_the_parts_carry(rets, quirk):
    setattr(rets.running.details["controls"], quirk, True)
    rets.configure(location=True)
    run = rets.run()
    assert (run.photos_linked, run.photos_stored, run.photos_failed) == (len(_every_photo(rets)), 0, 0)
    assert set(_linked(rets)) == _every_photo(rets) and rets.keys() == set()


def test_xml_link_parts_keep_the_photos_linked_before(rets):
    rets.configure(location=True)
    rets.run()
    before = _linked(rets)
    rets.running.details["controls"].xml_links = True
    _new_photo_version(rets.listings, count=3)  # fetched again, now answered with XML parts
    run = rets.run()
    assert run.photos_removed == 0 and run.photos_failed == 0
    assert set(_linked(rets)) == set(before) and all(url for url, _ in _linked(rets).values())


def test_a_repeated_object_id_stores_no_extra_photo(rets):
    rets.running.details["controls"].duplicate_object_ids = True
    run = rets.run()
    assert rets.stored() == rets.expected() and run.photos_failed == rets.corrupt()


def test_captions_come_from_description_headers(rets):
    controls = rets.running.details["controls"]
    controls.caption_header, controls.object_data = "Description", True
    rets.run()
    captions = {key: caption for key, (_, caption) in _linked(rets).items()}
    assert captions and all(caption == f"Photo {order} of {key}" for (key, order), caption in captions.items())


def test_no_object_replies_labelled_as_images_in_tiny_chunks_are_no_photos(rets):
    controls = rets.running.details["controls"]
    controls.error_content_type, controls.error_chunk_size = "image/jpeg", 3
    run = rets.run()
    assert any(not l["PhotosCount"] for l in rets.listings), "some listing should have no photos"
    assert rets.stored() == rets.expected() and run.photos_failed == rets.corrupt()
