"""The balancer: a tick creates the runs that are due and advances the runs it can claim.

Work is claimed with a lease in the database (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite has one writer at a time, so its claim transaction is ``BEGIN IMMEDIATE``). A claimed
run advances one committed step at a time while a heartbeat keeps its lease; a worker that
dies stops heartbeating, its lease expires, and another worker resumes the run at the step
that did not finish. Failures are classified by their error class: transient ones retry with
exponential backoff up to a limit, permanent ones fail the run at once. One source's trouble
never holds up another's: each run is claimed, advanced and failed on its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from core.db import refresh_statistics
from core.logs import run_context
from core.models import FeedRun, Source
from core.overview import active_listings
from pipeline import steps
from pipeline.clock import db_now
from pipeline.errors import PipelineError
from pipeline.schedule import UNFINISHED, schedule

log = logging.getLogger(__name__)
STATS_AFTER = 1000  # listings a load must change before the planner's statistics are refreshed


@dataclass
class Policy:
    lease_seconds: int = 300
    max_attempts: int = 5
    backoff_seconds: int = 60          # first retry after this; doubles each attempt
    max_backoff_seconds: int = 3600


@dataclass
class TickReport:
    created: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Balancer:
    def __init__(self, sessions: sessionmaker[Session], services: steps.Services,
                 policy: Policy | None = None, worker: str | None = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 on_step: Callable[[FeedRun, str, str], None] = lambda run, step, summary: None,
                 on_lease_lost: Callable[[str, str], None] = lambda source_id, step: None):
        """``on_step(run, step, summary)`` follows every step that ended (the run says how: its
        status is ``waiting`` or ``failed`` after a failure); ``on_lease_lost(source, step)``
        follows a step whose result was thrown away because another worker took the run."""
        self.sessions = sessions
        self.services = services
        self.policy = policy or Policy()
        self.worker = worker or worker_name()
        self.should_stop = should_stop
        self.on_step = on_step
        self.on_lease_lost = on_lease_lost

    def tick(self) -> TickReport:
        report = TickReport()
        with self.sessions() as session:
            created = schedule(session, db_now(session))
            session.commit()
            report.created = [f"{r.source_id}/{r.slot}" for r in created]
        while not self.should_stop() and (run_id := self.claim()) is not None:
            report.advanced.append(self.advance(run_id))
        return report

    # -- claiming --------------------------------------------------------------------------------

    def claim(self, run_id: int | None = None) -> int | None:
        """Lease one runnable run (or the given one) to this worker; None if there is none."""
        with self.sessions() as session:
            now = db_now(session)
            candidate = session.scalar(_claimable(now, run_id).with_for_update(skip_locked=True))
            if candidate is None:
                return None
            taken = session.execute(
                update(FeedRun)
                .where(FeedRun.id == candidate, or_(FeedRun.lease_expires_at.is_(None), FeedRun.lease_expires_at < now))
                .values(lease_owner=self.worker, lease_expires_at=self._lease_end(now), heartbeat_at=now,
                        status="running", next_attempt_at=None)
            ).rowcount
            if taken != 1:
                session.rollback()
                return None
            run = session.get(FeedRun, candidate)
            if run.started_at is None:
                run.started_at = now
            session.commit()
            return candidate

    def _lease_end(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.policy.lease_seconds)

    # -- advancing -------------------------------------------------------------------------------

    def advance(self, run_id: int) -> str:
        """Run the claimed run's steps, committing after each, until done, failed or stopped."""
        with self.sessions() as session:
            source_id = session.scalar(select(FeedRun.source_id).where(FeedRun.id == run_id))
        with _Heartbeat(self, run_id), run_context(run_id, source_id):
            while True:
                with self.sessions() as session:
                    run = session.get(FeedRun, run_id)
                    if run.step == "done" or run.status not in ("running",):
                        return f"{run.source_id}#{run.id} {run.status}"
                    if self.should_stop():
                        self._release(session, run)
                        return f"{run.source_id}#{run.id} paused at {run.step} (stopping)"
                    if not self._do_step(session, run):
                        break
        with self.sessions() as session:
            run = session.get(FeedRun, run_id)
            return f"{run.source_id}#{run.id} {run.status} at {run.step}"

    def _do_step(self, session: Session, run: FeedRun) -> bool:
        run_id, step, source_id = run.id, run.step, run.source_id  # read now: after a rollback they would need a new transaction
        try:
            summary = steps.run_step(session, run, self.services)
        except Exception as exc:  # the outermost loop: record what failed, classify, move on
            session.rollback()
            session.close()
            self._failed(run_id, step, exc)
            return False
        if not self._still_mine(session, run_id):
            session.rollback()
            log.warning("run %s: lease lost during %s; another worker has it", run_id, step)
            self.on_lease_lost(source_id, step)
            return False
        run.step = steps.next_step(step)
        run.attempt = 0
        if run.step == "done":
            steps.finish(run, session.get(Source, run.source_id), db_now(session))
            run.listings_active = active_listings(session, run.source_id)
            run.lease_owner = run.lease_expires_at = None
        session.commit()
        if step == "load" and _changed_much(run):
            refresh_statistics(session.get_bind())
        self.on_step(run, step, summary)
        return run.step != "done"

    def _still_mine(self, session: Session, run_id: int) -> bool:
        owner = session.scalar(select(FeedRun.lease_owner).where(FeedRun.id == run_id).with_for_update())
        return owner == self.worker

    def _failed(self, run_id: int, step: str, exc: Exception) -> None:
        with self.sessions() as session:
            run = session.get(FeedRun, run_id)
            if run.lease_owner != self.worker:
                return
            now = db_now(session)
            run.attempt += 1
            message = describe(exc)
            transient = getattr(exc, "transient", not isinstance(exc, PipelineError))
            if transient and run.attempt < self.policy.max_attempts:
                run.status = "waiting"
                wait = max(self._backoff(run.attempt), dt.timedelta(seconds=getattr(exc, "retry_after", None) or 0))
                run.next_attempt_at = now + wait
                run.last_error = f"{step}: attempt {run.attempt} of {self.policy.max_attempts} failed: {message}"
            else:
                run.status = "failed"
                run.finished_at = now
                tries = f" after {run.attempt} attempts" if transient else ""
                run.last_error = f"{step} failed{tries}: {message}"
            run.lease_owner = run.lease_expires_at = None
            session.commit()
            self.on_step(run, step, run.last_error)

    def _backoff(self, attempt: int) -> dt.timedelta:
        seconds = self.policy.backoff_seconds * 2 ** (attempt - 1)
        return dt.timedelta(seconds=min(seconds, self.policy.max_backoff_seconds))

    def _release(self, session: Session, run: FeedRun) -> None:
        run.lease_owner = run.lease_expires_at = None
        session.commit()

    def heartbeat(self, run_id: int) -> bool:
        """Extend this worker's lease; False if the run is no longer ours."""
        with self.sessions() as session:
            now = db_now(session)
            done = session.execute(
                update(FeedRun).where(FeedRun.id == run_id, FeedRun.lease_owner == self.worker)
                .values(lease_expires_at=self._lease_end(now), heartbeat_at=now)
            ).rowcount
            session.commit()
            return done == 1


def _claimable(now: dt.datetime, run_id: int | None):
    other = aliased(FeedRun)
    busy_source = exists().where(
        other.source_id == FeedRun.source_id, other.id != FeedRun.id, other.lease_expires_at >= now,
    )
    earlier_unfinished = exists().where(
        other.source_id == FeedRun.source_id, other.id < FeedRun.id, other.status.in_(UNFINISHED),
    )
    conditions = [
        FeedRun.status.in_(UNFINISHED),
        or_(FeedRun.next_attempt_at.is_(None), FeedRun.next_attempt_at <= now),
        or_(FeedRun.lease_expires_at.is_(None), FeedRun.lease_expires_at < now),
        ~busy_source,
        ~earlier_unfinished,  # a source's runs go in order
    ]
    if run_id is not None:
        conditions.append(FeedRun.id == run_id)
    return select(FeedRun.id).where(and_(*conditions)).order_by(FeedRun.created_at, FeedRun.id).limit(1)


def describe(exc: BaseException) -> str:
    if isinstance(exc, PipelineError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


class _Heartbeat:
    """Extends the lease every third of its length while a run advances."""

    def __init__(self, balancer: Balancer, run_id: int):
        self.balancer, self.run_id = balancer, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = max(self.balancer.policy.lease_seconds / 3, 0.5)
        while not self._stop.wait(interval):
            try:
                if not self.balancer.heartbeat(self.run_id):
                    return
            except Exception as exc:  # a missed beat is survivable; the next one may land
                log.warning("heartbeat for run %s failed: %s", self.run_id, exc)


def _changed_much(run: FeedRun) -> bool:
    """Whether a load changed enough listings for the planner's statistics to go stale: a tenth
    of the source, and at least STATS_AFTER rows (a first load always qualifies)."""
    changed = run.rows_inserted + run.rows_updated + run.rows_removed
    return changed >= STATS_AFTER and changed * 10 >= changed + run.rows_unchanged
