"""Completeness before removal, over a real database (SQLite, PostgreSQL, MariaDB).

A full run removes what its payload no longer carries only when the payload is provably whole,
and never more than the source's max_removed_share at once: beyond it the removals are held
for an operator, who releases them; those that came back in the meantime stay.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from core.models import FeedReject, FeedRun, HeldRemoval, Listing
from pipeline.clock import db_now
from pipeline.connectors import Payload
from pipeline.removals import pending, release
from tests.conftest import backend_param
from tests.support.databases import fresh_database
from tests.support.pipeline import FakeConnector, active_keys, make_balancer, new_run, record, run_to_end, with_sources

SID = "naples"
KEYS = {f"K{n:05d}" for n in range(20)}
MINUTES = itertools.count()


def start(balancer, kind="full"):
    """A run a minute after the last one (MariaDB keeps whole seconds: runs must not share one)."""
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + dt.timedelta(minutes=next(MINUTES))
    return run_to_end(balancer, new_run(balancer, SID, kind, started_at=moment))


@pytest.fixture(params=[backend_param(b) for b in ("sqlite", "postgres", "mariadb")])
def balancer(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        connector = FakeConnector()
        balancer = make_balancer(url, tmp_path / "objects", connector)
        with_sources(balancer, SID)
        connector.feeds[SID] = [record(n) for n in range(20)]
        start(balancer)
        yield balancer


def feed(balancer, numbers, **changes):
    balancer.services.connectors["fake"].feeds[SID] = [record(n, **changes) for n in numbers]


def held_keys(balancer, run_id):
    with balancer.sessions() as session:
        return set(session.scalars(select(Listing.listing_key).join(HeldRemoval, HeldRemoval.listing_id == Listing.id)
                                   .where(HeldRemoval.run_id == run_id)))


def release_now(balancer):
    with balancer.sessions() as session:
        report = release(session, SID, db_now(session))
        session.commit()
    return report


def test_dropping_no_more_than_the_share_removes_them(balancer):
    feed(balancer, range(2, 20))  # 2 of 20: 10 %, the default share
    run = start(balancer)
    assert (run.status, run.rows_removed, run.removals_held, run.warning) == ("succeeded", 2, 0, None)
    assert active_keys(balancer, SID) == KEYS - {"K00000", "K00001"}


def test_dropping_more_than_the_share_holds_the_removals_and_says_so(balancer):
    feed(balancer, range(5, 20))  # 5 of 20: 25 %
    run = start(balancer)
    assert (run.status, run.rows_removed, run.removals_held) == ("succeeded", 0, 5)
    assert run.warning.startswith("5 of the 20 listings (25%) are missing from this full feed, more than "
                                  "max_removed_share allows (10%): their removal is held.")
    assert "mlsfeeds run naples --release-removals" in run.warning
    assert active_keys(balancer, SID) == KEYS
    assert held_keys(balancer, run.id) == {f"K{n:05d}" for n in range(5)}
    with balancer.sessions() as session:
        assert pending(session)[SID] == {"run": run.id, "listings": 5, "held_since": run.started_at,
                                         "release": "mlsfeeds run naples --release-removals"}


def test_release_removes_the_held_listings_still_missing_and_keeps_those_back(balancer):
    feed(balancer, range(5, 20))
    holding = start(balancer)
    feed(balancer, [3], price="1")  # back in the feed, seen by an incremental run
    assert start(balancer, "incremental").status == "succeeded"
    report = release_now(balancer)
    assert (report.runs, report.removed, report.came_back) == ([holding.id], 4, 1)
    assert active_keys(balancer, SID) == KEYS - {"K00000", "K00001", "K00002", "K00004"}
    with balancer.sessions() as session:
        run = session.get(FeedRun, holding.id)
        assert run.rows_removed == 4 and run.removals_released_at is not None
        assert "4 removed, 1 back in the feed since (kept)" in run.warning
        assert pending(session) == {}
    assert release_now(balancer).runs == []


def test_a_later_full_run_within_the_share_makes_a_hold_moot(balancer):
    feed(balancer, range(5, 20))
    holding = start(balancer)
    feed(balancer, range(1, 20))  # the feed is whole again, but for one listing
    later = start(balancer)
    assert (later.rows_removed, later.removals_held) == (1, 0)
    assert active_keys(balancer, SID) == KEYS - {"K00000"}
    with balancer.sessions() as session:
        assert pending(session) == {}
        assert session.get(FeedRun, holding.id).warning.endswith(f"Superseded by run {later.id}, which decided "
                                                                 f"removals itself.")


def test_an_incomplete_payload_removes_nothing_and_says_why(balancer):
    connector = balancer.services.connectors["fake"]
    whole = connector.fetch

    def short(request):
        return Payload(whole(request).files, incomplete="the server announced 20 records and sent 12")

    connector.fetch = short
    feed(balancer, range(8, 20))
    run = start(balancer)
    assert (run.status, run.rows_removed, run.removals_held) == ("succeeded", 0, 0)
    assert run.warning == "nothing removed: the payload is not whole: the server announced 20 records and sent 12"
    assert active_keys(balancer, SID) == KEYS


def test_fewer_records_parsed_than_announced_removes_nothing(balancer):
    connector = balancer.services.connectors["fake"]
    whole = connector.fetch
    connector.fetch = lambda request: Payload(whole(request).files, announced=20)
    feed(balancer, range(19, 20))
    run = start(balancer)
    assert run.rows_removed == 0 and "the source announced 20 records and 1 were parsed" in run.warning
    assert active_keys(balancer, SID) == KEYS


def test_a_listing_whose_record_is_rejected_is_kept_not_removed(balancer):
    balancer.services.connectors["fake"].feeds[SID] = (
        [record(n) for n in range(3, 20)] + [record(1, price="twelve"), record(2, status="??")])
    run = start(balancer)  # 0 dropped; 1 and 2 in the feed but unreadable
    assert (run.rows_rejected, run.rows_removed, run.removals_held) == (2, 1, 0)
    assert active_keys(balancer, SID) == KEYS - {"K00000"}
    with balancer.sessions() as session:
        assert set(session.scalars(select(FeedReject.listing_key).where(FeedReject.run_id == run.id))) == {
            "K00001", "K00002"}
