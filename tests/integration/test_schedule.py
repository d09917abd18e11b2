"""When runs start: each source's own earliest time of day, in its own zone, DST included."""

import datetime as dt

import pytest
from sqlalchemy import select

from core.db import make_engine, session_factory
from core.models import FeedRun, Source
from pipeline.schedule import schedule
from tests.conftest import backend_param

UTC = dt.timezone.utc


@pytest.fixture(params=[backend_param("sqlite"), backend_param("postgres")])
def database_url(request, tmp_path):
    from tests.support.databases import fresh_database

    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def session(database_url):
    with session_factory(make_engine(database_url))() as session:
        yield session


def add_source(session, sid="naples", tz="America/New_York", at="02:30", repeat=None):
    session.add(Source(id=sid, name=sid, timezone=tz, earliest_download=dt.time.fromisoformat(at),
                       repeat_every_seconds=repeat, download={"kind": "http"}, parse={}, images={}, state={}))
    session.commit()


def slots(session):
    return [(r.source_id, r.business_date.isoformat(), r.slot) for r in session.scalars(select(FeedRun).order_by(FeedRun.id))]


def test_the_days_run_starts_after_the_earliest_time_in_the_sources_zone(session):
    add_source(session)
    assert schedule(session, dt.datetime(2026, 11, 30, 7, 29, tzinfo=UTC)) == []  # 02:29 EST
    created = schedule(session, dt.datetime(2026, 11, 30, 7, 30, tzinfo=UTC))  # 02:30 EST
    assert [(r.source_id, r.kind) for r in created] == [("naples", "full")]
    assert schedule(session, dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == []  # once a day
    session.commit()
    assert slots(session) == [("naples", "2026-11-30", "full")]


def test_sources_in_other_zones_start_on_their_own_clock(session):
    add_source(session, "tokyo", "Asia/Tokyo", "03:00")
    add_source(session, "denver", "America/Denver", "03:00")
    created = schedule(session, dt.datetime(2026, 11, 29, 17, 55, tzinfo=UTC))  # 02:55 Tokyo, 10:55 Denver
    assert [(r.source_id, r.business_date.isoformat()) for r in created] == [("denver", "2026-11-29")]
    created = schedule(session, dt.datetime(2026, 11, 29, 18, 5, tzinfo=UTC))  # 03:05 in Tokyo on the 30th
    assert [(r.source_id, r.business_date.isoformat()) for r in created] == [("tokyo", "2026-11-30")]
    created = schedule(session, dt.datetime(2026, 11, 30, 10, 5, tzinfo=UTC))  # 03:05 in Denver on the 30th
    assert [(r.source_id, r.business_date.isoformat()) for r in created] == [("denver", "2026-11-30")]


def test_a_start_time_inside_the_spring_forward_gap_starts_just_after_it(session):
    add_source(session, at="02:30")  # 2026-03-08 02:30 does not exist in New York
    assert schedule(session, dt.datetime(2026, 3, 8, 7, 29, tzinfo=UTC)) == []  # 03:29 EDT
    assert len(schedule(session, dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC))) == 1  # 03:30 EDT


def test_a_start_time_repeated_by_fall_back_starts_at_its_first_occurrence(session):
    add_source(session, at="01:30")  # 2026-11-01 01:30 happens twice in New York
    assert schedule(session, dt.datetime(2026, 11, 1, 5, 29, tzinfo=UTC)) == []
    assert len(schedule(session, dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC))) == 1  # 01:30 EDT
    assert schedule(session, dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC)) == []  # 01:30 EST: same day


def test_incremental_runs_follow_a_successful_full_run_every_interval(session):
    add_source(session, repeat=3600)
    full = schedule(session, dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC))[0]
    assert schedule(session, dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)) == []  # full still unfinished
    full.status, full.started_at = "succeeded", dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    full.created_at = dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    session.commit()
    assert schedule(session, dt.datetime(2026, 11, 30, 8, 59, tzinfo=UTC)) == []
    inc = schedule(session, dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC))[0]
    assert inc.kind == "incremental" and inc.slot == "inc-0400"
    assert inc.window_start == full.window_end - dt.timedelta(minutes=5)


def test_a_slot_already_taken_by_another_balancer_is_not_created_twice(session):
    from pipeline.schedule import _insert_once

    add_source(session)
    assert len(schedule(session, dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC))) == 1
    session.commit()
    # What a second balancer, racing the first, would try: the unique slot refuses it.
    twin = FeedRun(source_id="naples", business_date=dt.date(2026, 11, 30), kind="full", slot="full")
    assert _insert_once(session, twin) is False
    session.commit()
    assert slots(session) == [("naples", "2026-11-30", "full")]
