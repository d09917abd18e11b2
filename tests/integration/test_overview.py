"""The operator's overview (status page, `mlsfeeds status`, metrics) puts what needs a person
first: a failed run, then a stale source, then held removals; it reads listing counts from the
trigger-kept table and knows each source's latest success."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from core.models import FeedRun
from core.overview import overview
from core.types import utcnow
from pipeline.errors import SourceAuthError
from tests.support.pipeline import FakeConnector, make_balancer, new_run, record, run_to_end, with_sources


def test_what_needs_a_person_comes_first(tmp_path):
    from tests.support.databases import fresh_database

    with fresh_database("sqlite", tmp_path) as url:
        connector = FakeConnector()
        balancer = make_balancer(url, tmp_path / "objects", connector)
        with_sources(balancer, "a_ok", "b_held", "c_stale", "d_failed")
        for sid in ("a_ok", "b_held", "c_stale", "d_failed"):
            connector.feeds[sid] = [record(n) for n in range(20)]
        connector.failures["d_failed"] = [SourceAuthError("login refused: check the password")]
        started = utcnow() - dt.timedelta(hours=1)
        runs = {sid: run_to_end(balancer, new_run(balancer, sid, "full", started_at=started))
                for sid in ("a_ok", "b_held", "c_stale", "d_failed")}
        connector.feeds["b_held"] = [record(n) for n in range(10)]  # half gone: more than max_removed_share
        held = run_to_end(balancer, new_run(balancer, "b_held", "full", started_at=started + dt.timedelta(minutes=1)))
        assert held.removals_held == 10
        with balancer.sessions() as session:
            session.execute(update(FeedRun).where(FeedRun.id == runs["c_stale"].id)
                            .values(finished_at=utcnow() - dt.timedelta(days=2)))
            session.commit()
            views = overview(session, utcnow())
    assert [(v.id, v.state) for v in views] == [("d_failed", "failed"), ("c_stale", "stale"), ("b_held", "held"),
                                                ("a_ok", "ok")]
    by_id = {v.id: v for v in views}
    assert "login refused" in by_id["d_failed"].error and by_id["d_failed"].last_success is None
    assert by_id["b_held"].held["listings"] == 10 and by_id["b_held"].listings == {"active": 20, "removed": 0}
    assert by_id["a_ok"].statuses == {"Active": 20} and by_id["a_ok"].age < dt.timedelta(minutes=5)
    assert runs["a_ok"].listings_active == 20, "a finished run records the listings it left"
