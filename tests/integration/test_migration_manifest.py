"""The migration manifest's claims on every database: the rules several processes rely on.

Claims run concurrently from threads with their own connections, as processes would; the
database decides who gets what (``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB).
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from core.db import make_engine, session_factory
from pipeline.clock import db_now
from pipeline.images import manifest
from tests.conftest import backend_param

ALL = [backend_param("sqlite"), backend_param("postgres"), backend_param("mariadb")]
SHARED = [backend_param("postgres"), backend_param("mariadb")]


@pytest.fixture
def job(database_url):
    """(sessions, job id) for a job of 600 pending items."""
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    with sessions() as session:
        job = manifest.open_job(session, "file:///archive", "s3://bucket", "{path}")
        manifest.insert_items(session, [manifest.item_row(job.id, f"p/{n:04d}.jpg", f"p/{n:04d}.jpg", 10, None)
                                        for n in range(600)])
        session.commit()
        yield sessions, job.id
    engine.dispose()


def claim(sessions, job_id: int, owner: str, limit: int = 25, lease: float = 60) -> list[int]:
    with sessions() as session:
        ids = _claim(session, job_id, owner, limit, lease)
        session.commit()
    return ids


def _claim(session, job_id: int, owner: str, limit: int = 25, lease: float = 60) -> list[int]:
    now = db_now(session)
    return [item.id for item in manifest.claim(session, job_id, limit, owner, now + dt.timedelta(seconds=lease), now)]


@pytest.mark.parametrize("database_url", SHARED, indirect=True)
def test_concurrent_claims_never_take_the_same_item(job):
    sessions, job_id = job
    taken: dict[str, list[int]] = {f"p{n}": [] for n in range(4)}

    def worker(owner: str) -> None:
        while ids := manifest.retrying(sessions, lambda session: _claim(session, job_id, owner)):
            taken[owner].extend(ids)

    threads = [threading.Thread(target=worker, args=(owner,)) for owner in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [i for ids in taken.values() for i in ids]
    assert len(every) == len(set(every)) == 600
    assert sum(bool(ids) for ids in taken.values()) >= 2  # they really ran side by side


@pytest.mark.parametrize("database_url", ALL, indirect=True)
def test_an_expired_lease_is_taken_over_and_a_renewed_one_is_not(job):
    sessions, job_id = job
    alive = claim(sessions, job_id, "alive", limit=10, lease=-1)  # expired, but its owner renews:
    with sessions() as session:
        now = db_now(session)
        assert manifest.renew(session, job_id, "alive", now + dt.timedelta(seconds=60)) == 10
        session.commit()
    dead = claim(sessions, job_id, "dead", limit=10, lease=-1)   # expired: its owner died
    again = claim(sessions, job_id, "survivor", limit=15)
    assert again[:10] == dead and not set(again) & set(alive)  # the dead process's files first
    with sessions() as session:
        attempts = {item.id: item.attempts for item in manifest.done_items(session, job_id, 0, 1000)}
    assert attempts == {}  # nothing finished yet


@pytest.mark.parametrize("database_url", ALL, indirect=True)
def test_one_process_lists_at_a_time_and_a_dead_listers_lease_is_taken_over(job):
    sessions, job_id = job
    with sessions() as session:
        now = db_now(session)
        assert manifest.claim_listing(session, job_id, "first", now + dt.timedelta(seconds=60), now)
        assert not manifest.claim_listing(session, job_id, "second", now + dt.timedelta(seconds=60), now)
        assert manifest.claim_listing(session, job_id, "first", now + dt.timedelta(seconds=60), now)  # renewal
        later = now + dt.timedelta(seconds=61)
        assert manifest.claim_listing(session, job_id, "second", later + dt.timedelta(seconds=60), later)
        manifest.finish_listing(session, job_id)
        assert not manifest.claim_listing(session, job_id, "third", later, later)  # nothing left to list
        session.commit()
        assert manifest.listing_state(session, job_id) == (True, False)
