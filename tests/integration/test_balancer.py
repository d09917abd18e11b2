"""The balancer end to end over a real database: runs, retries, leases, removal, rejects.

The source is a small fake of our own Connector protocol; everything after it (object store,
NDJSON parser, mapping, loader, geocoder, leases) is the real thing.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, update

from core.models import FeedReject, FeedRun, Listing
from pipeline.balancer import Policy
from pipeline.errors import SourceAuthError, SourceUnavailable
from pipeline.schedule import schedule
from tests.conftest import backend_param
from tests.support.databases import fresh_database
from tests.support.pipeline import (
    FakeConnector,
    add_source,
    active_keys,
    make_balancer,
    new_run,
    record,
    run_to_end,
    with_sources,
)

UTC = dt.timezone.utc


@pytest.fixture(params=[backend_param("sqlite"), backend_param("postgres")])
def database_url(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def connector():
    return FakeConnector()


@pytest.fixture
def balancer(database_url, tmp_path, connector):
    return make_balancer(database_url, tmp_path / "objects", connector)


def test_a_run_goes_through_every_step_and_loads_mapped_listings(balancer, connector):
    with_sources(balancer, "naples")
    connector.feeds["naples"] = [record(n) for n in range(30)] + [record(99, status="S", price="$1,250,000")]
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert (run.status, run.step, run.images_ready) == ("succeeded", "done", True)
    assert (run.rows_parsed, run.rows_inserted, run.rows_rejected, run.rows_geocoded) == (31, 31, 0, 31)
    assert set(run.step_timings) == {"download", "parse", "load", "geocode"}
    with balancer.sessions() as session:
        sold = session.scalar(select(Listing).where(Listing.listing_key == "K00099"))
        assert (sold.standard_status, sold.list_price, sold.geocode_precision) == ("Closed", 1_250_000, "zip")
        assert sold.latitude == pytest.approx(26.1, abs=0.2)  # ZIP 34102, Naples FL


def test_running_the_same_full_feed_again_changes_nothing(balancer, connector):
    with_sources(balancer, "naples")
    connector.feeds["naples"] = [record(n) for n in range(20)]
    run_to_end(balancer, new_run(balancer, "naples"))
    again = run_to_end(balancer, new_run(balancer, "naples"))
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged, again.rows_removed) == (0, 0, 20, 0)


def test_a_full_run_removes_what_the_feed_dropped_and_an_incremental_never_does(balancer, connector):
    with_sources(balancer, "naples", max_removed_share=0.5)  # 3 of 10 dropped: within this source's share
    connector.feeds["naples"] = [record(n) for n in range(10)]
    run_to_end(balancer, new_run(balancer, "naples"))
    connector.feeds["naples"] = [record(n, price="1") for n in range(2)]
    incremental = run_to_end(balancer, new_run(balancer, "naples", "incremental"))
    assert (incremental.rows_updated, incremental.rows_removed) == (2, 0)
    assert len(active_keys(balancer, "naples")) == 10
    connector.feeds["naples"] = [record(n) for n in range(3, 10)] + [record(50)]
    full = run_to_end(balancer, new_run(balancer, "naples"))
    assert (full.rows_inserted, full.rows_removed) == (1, 3)
    assert active_keys(balancer, "naples") == {f"K{n:05d}" for n in [*range(3, 10), 50]}


def test_a_full_feed_that_arrives_empty_fails_instead_of_removing_everything(balancer, connector):
    with_sources(balancer, "naples")
    connector.feeds["naples"] = [record(n) for n in range(5)]
    run_to_end(balancer, new_run(balancer, "naples"))
    connector.feeds["naples"] = []
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert run.status == "failed" and "refusing to mark all 5 listings" in run.last_error
    assert len(active_keys(balancer, "naples")) == 5


def test_records_that_cannot_be_mapped_are_rejected_counted_and_kept(balancer, connector):
    with_sources(balancer, "naples")
    connector.feeds["naples"] = [record(1), record(2, key=""), record(3, price="call agent"), record(4, status="Q")]
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert (run.status, run.rows_parsed, run.rows_inserted, run.rows_rejected) == ("succeeded", 4, 1, 3)
    with balancer.sessions() as session:
        reasons = [r.reason for r in session.scalars(select(FeedReject).order_by(FeedReject.position))]
    assert len(reasons) == 3
    assert "ListingKey" in reasons[0] and "call agent" in reasons[1] and "StandardStatus" in reasons[2]


def test_a_transient_failure_is_retried_with_backoff_and_fails_after_the_limit(database_url, tmp_path, connector):
    balancer = make_balancer(database_url, tmp_path / "o", connector, policy=Policy(max_attempts=3, backoff_seconds=60))
    with_sources(balancer, "naples")
    connector.failures["naples"] = [SourceUnavailable("connection refused")] * 3
    run_id = new_run(balancer, "naples")
    run = run_to_end(balancer, run_id)
    assert (run.status, run.attempt, run.step) == ("waiting", 1, "download")
    first_wait = run.next_attempt_at
    assert balancer.claim(run_id) is None  # not before its time
    for expected_attempt, expected_status in ((2, "waiting"), (3, "failed")):
        with balancer.sessions() as session:
            session.execute(update(FeedRun).where(FeedRun.id == run_id).values(next_attempt_at=dt.datetime(2000, 1, 1, tzinfo=UTC)))
            session.commit()
        run = run_to_end(balancer, run_id)
        assert (run.attempt, run.status) == (expected_attempt, expected_status)
        if expected_status == "waiting":
            assert run.next_attempt_at - run.started_at > first_wait - run.started_at  # the wait doubles
    assert "after 3 attempts" in run.last_error and "connection refused" in run.last_error


def test_a_permanent_failure_fails_at_once_and_other_sources_still_run(balancer, connector):
    with_sources(balancer, "broken", "fine")
    connector.failures["broken"] = [SourceAuthError("login refused: check NAPLES_PASSWORD")]
    connector.feeds["fine"] = [record(1)]
    with balancer.sessions() as session:
        created = schedule(session, dt.datetime.now(UTC))
        session.commit()
    assert len(created) == 2
    balancer.tick()
    with balancer.sessions() as session:
        runs = {r.source_id: r for r in session.scalars(select(FeedRun))}
    assert runs["broken"].status == "failed" and runs["broken"].attempt == 1
    assert "login refused" in runs["broken"].last_error
    assert runs["fine"].status == "succeeded"


def test_a_missing_secret_fails_the_run_and_names_the_variable(balancer, connector):
    with balancer.sessions() as session:
        add_source(session, "naples", password="${NAPLES_PASSWORD}")
        session.commit()
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert run.status == "failed" and "NAPLES_PASSWORD" in run.last_error
    assert connector.calls["naples"] == 0


def test_an_expired_lease_is_resumed_by_another_worker_at_the_step_that_did_not_finish(database_url, tmp_path, connector):
    store = tmp_path / "objects"
    first = make_balancer(database_url, store, connector, worker="first")
    second = make_balancer(database_url, store, connector, worker="second")
    with_sources(first, "naples")
    connector.feeds["naples"] = [record(n) for n in range(12)]
    run_id = new_run(first, "naples")
    assert first.claim(run_id) == run_id
    for _ in range(2):  # the first worker finishes download and parse, then dies
        with first.sessions() as session:
            assert first._do_step(session, session.get(FeedRun, run_id))
    assert second.claim(run_id) is None  # the lease still holds
    with first.sessions() as session:
        session.execute(update(FeedRun).where(FeedRun.id == run_id).values(lease_expires_at=dt.datetime(2000, 1, 1, tzinfo=UTC)))
        session.commit()
    assert second.claim(run_id) == run_id
    second.advance(run_id)
    with second.sessions() as session:
        run = session.get(FeedRun, run_id)
        assert (run.status, run.rows_inserted) == ("succeeded", 12)
        assert session.scalar(select(func.count()).select_from(Listing)) == 12
    assert connector.calls["naples"] == 1  # download was not repeated
    # The dead worker, were it to wake up, can no longer commit a step.
    with first.sessions() as session:
        assert not first._still_mine(session, run_id)


@pytest.mark.parametrize("database_url", [backend_param("postgres")], indirect=True)
def test_two_workers_share_the_runs_and_each_is_done_once(database_url, tmp_path):
    connector = FakeConnector(delay=0.2)
    store = tmp_path / "objects"
    workers = [make_balancer(database_url, store, connector, worker=f"w{i}") for i in range(2)]
    sources = [f"s{i}" for i in range(8)]
    with_sources(workers[0], *sources)
    for n, sid in enumerate(sources):
        connector.feeds[sid] = [record(n * 100 + k) for k in range(25)]
    with workers[0].sessions() as session:
        schedule(session, dt.datetime.now(UTC))
        session.commit()
    done: dict[str, list[str]] = {}
    threads = [threading.Thread(target=lambda w=w: done.setdefault(w.worker, w.tick().advanced)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(done.values()), f"both workers should have taken work: {done}"
    assert sorted(connector.calls) == sources and set(connector.calls.values()) == {1}
    with workers[0].sessions() as session:
        assert {r.status for r in session.scalars(select(FeedRun))} == {"succeeded"}
        assert session.scalar(select(func.count()).select_from(Listing)) == 8 * 25


def test_a_partial_full_payload_removes_nothing(balancer, connector):
    """A full run whose connector skipped files it had already fetched is not a snapshot."""
    from pipeline.connectors import Payload

    with_sources(balancer, "naples")
    connector.feeds["naples"] = [record(n) for n in range(6)]
    run_to_end(balancer, new_run(balancer, "naples"))
    connector.feeds["naples"] = [record(1, price="5")]
    original = connector.fetch

    def partial(request):
        payload = original(request)
        return Payload(payload.files, payload.state, complete=False)

    connector.fetch = partial
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert (run.status, run.rows_updated, run.rows_removed) == ("succeeded", 1, 0)
    assert len(active_keys(balancer, "naples")) == 6


def test_a_retry_after_longer_than_the_backoff_is_honoured(balancer, connector):
    with_sources(balancer, "naples")
    connector.failures["naples"] = [SourceUnavailable("HTTP 503", retry_after=7200)]
    run = run_to_end(balancer, new_run(balancer, "naples"))
    assert run.status == "waiting"
    assert (run.next_attempt_at - run.started_at).total_seconds() >= 7200 - 5
