"""Which runs are due: each source's day starts at its earliest download time, in its own zone.

A day's full run is created once the source's local clock passes ``earliest_download`` (DST
transitions included: a time inside the spring-forward gap is read with the offset before the
jump, so 02:30 in New York on the day clocks go from 02:00 to 03:00 starts at 03:30 EDT; a time
the fall-back hour repeats starts at its first occurrence). After it succeeds, an incremental run follows every ``repeat_every``, each pulling
what changed since the previous run started (less a small overlap, so nothing falls between).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import FeedRun, Source

OVERLAP = dt.timedelta(minutes=5)
UNFINISHED = ("queued", "running", "waiting")


def business_date(source: Source, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(source.timezone)).date()


def day_start(source: Source, day: dt.date) -> dt.datetime:
    """The instant (UTC) the source's day may start, DST-correct."""
    tz = ZoneInfo(source.timezone)
    local = dt.datetime.combine(day, source.earliest_download, tzinfo=tz)
    # Round-trip through UTC: a wall time inside a spring-forward gap becomes a real instant
    # (fold=0 takes the offset from before the jump: 02:30 EST is 03:30 EDT).
    return local.astimezone(dt.timezone.utc)


def schedule(session: Session, now: dt.datetime) -> list[FeedRun]:
    """Create the runs that are due now; returns those created."""
    created = []
    for source in session.scalars(select(Source).where(Source.enabled.is_(True)).order_by(Source.id)):
        run = _due_run(session, source, now)
        if run is not None and _insert_once(session, run):
            created.append(run)
    return created


def _due_run(session: Session, source: Source, now: dt.datetime) -> FeedRun | None:
    day = business_date(source, now)
    if now < day_start(source, day):
        return None
    runs = list(session.scalars(
        select(FeedRun).where(FeedRun.source_id == source.id, FeedRun.business_date == day).order_by(FeedRun.id)
    ))
    if not any(r.kind == "full" for r in runs):
        return FeedRun(source_id=source.id, business_date=day, kind="full", slot="full", window_end=now)
    if not source.repeat_every_seconds or any(r.status in UNFINISHED for r in runs):
        return None
    return _incremental(session, source, day, runs[-1], now)


def _incremental(session: Session, source: Source, day: dt.date, last: FeedRun, now: dt.datetime):
    due = last.created_at + dt.timedelta(seconds=source.repeat_every_seconds)
    if now < due:
        return None
    previous = last_success(session, source.id)
    if previous is None:
        return None  # no full run has ever succeeded: nothing to be incremental to
    start = (previous.window_end or previous.started_at or previous.created_at) - OVERLAP
    local = now.astimezone(ZoneInfo(source.timezone))
    return FeedRun(source_id=source.id, business_date=day, kind="incremental",
                   slot=f"inc-{local:%H%M}", window_start=start, window_end=now)


def last_success(session: Session, source_id: str) -> FeedRun | None:
    newest = select(func.max(FeedRun.id)).where(FeedRun.source_id == source_id, FeedRun.status == "succeeded")
    return session.scalar(select(FeedRun).where(FeedRun.id == newest.scalar_subquery()))


def _insert_once(session: Session, run: FeedRun) -> bool:
    """Insert unless another balancer created the same slot first (the unique key decides)."""
    try:
        with session.begin_nested():
            session.add(run)
        return True
    except IntegrityError:
        return False
