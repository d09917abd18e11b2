"""Listing and photo counts kept by triggers (migration 0009) agree with counting the rows, on
SQLite, PostgreSQL and MariaDB, whatever writes: the loader, a full reload with removals, plain
SQL updates and deletes, the photo job's media rows, a deleted listing or source."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import case, delete, func, insert, literal_column, select, update

from core.models import ListingCount, Listing, Media, PhotoCount, Source
from tests.conftest import backend_param
from tests.support.databases import fresh_database
from tests.support.pipeline import FakeConnector, make_balancer, new_run, record, run_to_end, with_sources

BACKENDS = [backend_param(b) for b in ("sqlite", "postgres", "mariadb")]


@pytest.fixture(params=BACKENDS)
def balancer(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        connector = FakeConnector()
        balancer = make_balancer(url, tmp_path / "objects", connector)
        with_sources(balancer, "naples", "tampa")
        yield balancer


def kept(session) -> dict:
    rows = session.execute(select(ListingCount.source_id, ListingCount.standard_status, ListingCount.removed,
                                  ListingCount.listings))
    return {(s, st, bool(r)): n for s, st, r, n in rows if n}


def counted(session) -> dict:
    removed = Listing.removed_at.is_not(None)
    status = func.coalesce(Listing.standard_status, literal_column("''"))
    rows = session.execute(select(Listing.source_id, status, removed, func.count())
                           .group_by(Listing.source_id, status, removed))
    return {(s, st, bool(r)): n for s, st, r, n in rows}


def kept_photos(session) -> dict:
    return {s: (st, li) for s, st, li in session.execute(select(PhotoCount.source_id, PhotoCount.stored,
                                                                 PhotoCount.linked)) if st or li}


def counted_photos(session) -> dict:
    stored = func.sum(case((Media.storage_key.is_not(None), 1), else_=0))
    linked = func.sum(case((Media.url.is_not(None), 1), else_=0))
    rows = session.execute(select(Listing.source_id, stored, linked).join(Media, Media.listing_id == Listing.id)
                           .group_by(Listing.source_id))
    return {s: (int(st), int(li)) for s, st, li in rows if st or li}


def assert_agree(balancer):
    with balancer.sessions() as session:
        assert kept(session) == counted(session)
        assert kept_photos(session) == counted_photos(session)


def full_run(balancer, source, numbers, minutes, **changes):
    balancer.services.connectors["fake"].feeds[source] = [record(n, **changes) for n in numbers]
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + dt.timedelta(minutes=minutes)
    run = run_to_end(balancer, new_run(balancer, source, "full", started_at=started))
    assert run.status == "succeeded", run.last_error
    return run


def test_counts_follow_loads_reloads_and_removals(balancer):
    full_run(balancer, "naples", range(30), 0)
    full_run(balancer, "tampa", range(10), 0, status="P")
    assert_agree(balancer)
    with balancer.sessions() as session:
        assert kept(session) == {("naples", "Active", False): 30, ("tampa", "Pending", False): 10}
    # A full reload: some change status, two leave the feed (within max_removed_share), one is new.
    numbers = list(range(2, 30)) + [40]
    balancer.services.connectors["fake"].feeds["naples"] = [record(n, status="S" if n < 8 else "A") for n in numbers]
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + dt.timedelta(minutes=5)
    run = run_to_end(balancer, new_run(balancer, "naples", "full", started_at=started))
    assert run.rows_removed == 2
    assert_agree(balancer)
    with balancer.sessions() as session:
        assert kept(session)[("naples", "Active", True)] == 2
        assert kept(session)[("naples", "Closed", False)] == 6


def test_counts_follow_plain_sql_and_deletes(balancer):
    full_run(balancer, "naples", range(12), 0)
    with balancer.sessions() as session:
        now = dt.datetime.now(dt.timezone.utc)
        session.execute(update(Listing).where(Listing.listing_key.in_(["K00001", "K00002"])).values(removed_at=now))
        session.execute(update(Listing).where(Listing.listing_key == "K00003").values(standard_status=None))
        session.execute(update(Listing).where(Listing.listing_key == "K00004").values(list_price=1))  # no move
        session.execute(delete(Listing).where(Listing.listing_key == "K00005"))
        session.commit()
    assert_agree(balancer)
    with balancer.sessions() as session:
        assert kept(session) == {("naples", "Active", False): 8, ("naples", "Active", True): 2,
                                 ("naples", "", False): 1}


def test_photo_counts_follow_media_rows_and_their_listings(balancer):
    full_run(balancer, "naples", range(6), 0)
    full_run(balancer, "tampa", range(3), 0)
    with balancer.sessions() as session:
        ids = dict(session.execute(select(Listing.listing_key, Listing.id).where(Listing.source_id == "naples")).all())
        tampa = session.scalar(select(Listing.id).where(Listing.source_id == "tampa").limit(1))
        rows = [{"listing_id": ids[f"K{n:05d}"], "order": o, "storage_key": f"photos/{n}/{o}.jpg"}
                for n in range(6) for o in range(3)]
        rows += [{"listing_id": tampa, "order": o, "url": f"https://x/{o}.jpg"} for o in range(4)]
        session.execute(insert(Media), rows)
        session.commit()
    assert_agree(balancer)
    with balancer.sessions() as session:
        # The photo job: a photo replaced by a link, one dropped, a listing and then a source deleted.
        session.execute(update(Media).where(Media.listing_id == ids["K00000"], Media.order == 0)
                        .values(storage_key=None, url="https://x/y.jpg"))
        session.execute(delete(Media).where(Media.listing_id == ids["K00001"], Media.order == 2))
        session.commit()
        assert kept_photos(session) == {"naples": (16, 1), "tampa": (0, 4)}
        session.execute(delete(Listing).where(Listing.id == ids["K00002"]))
        session.commit()
    assert_agree(balancer)
    with balancer.sessions() as session:
        assert kept_photos(session)["naples"] == (13, 1)
        session.delete(session.get(Source, "tampa"))
        session.commit()
        assert "tampa" not in kept_photos(session) and all(k[0] != "tampa" for k in kept(session))
    assert_agree(balancer)
