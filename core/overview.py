"""What an operator needs to see, read cheaply: every source at a glance, and one source's history.

The status page, ``mlsfeeds status`` and the metrics scrape all read through here. Every query
is an index probe or reads a small table, never every listing or every run: listing and photo
counts come from the trigger-kept ``listing_counts`` / ``photo_counts`` (migration 0010), a
source's latest run and latest success from ``(source_id, id)``, unfinished runs from
``(status, next_attempt_at)``, pending photo jobs from ``images_ready``.

Freshness: a source promises a successful load every ``repeat_every`` (else every day, after its
earliest download time). It is **stale** when its last success is older than that period plus
``STALE_GRACE`` (the time a run may take), or when it never succeeded although its first day
has started.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, aliased

from core.models import FeedReject, FeedRun, HeldRemoval, ListingCount, PhotoCount, Source

DAY = dt.timedelta(days=1)
STALE_GRACE = dt.timedelta(hours=2)
UNFINISHED = ("queued", "running", "waiting")
RELEASE = "mlsfeeds run {source} --release-removals"


@dataclass
class SourceView:
    """One source as the operator sees it; ``attention`` orders the list (0 needs a person first)."""

    source: Source
    run: FeedRun | None
    last_success: dt.datetime | None
    photo_run: FeedRun | None          # the latest run whose photo job ended
    listings: dict[str, int]           # {"active": n, "removed": n}
    statuses: dict[str, int]           # active listings by StandardStatus
    photos: dict[str, int]             # {"stored": n, "linked": n}
    photo_jobs_pending: int
    held: dict[str, Any] | None
    now: dt.datetime

    @property
    def id(self) -> str:
        return self.source.id

    @property
    def period(self) -> dt.timedelta:
        """How often the schedule promises a successful load."""
        every = self.source.repeat_every_seconds
        return dt.timedelta(seconds=every) if every else DAY

    @property
    def age(self) -> dt.timedelta | None:
        return self.now - self.last_success if self.last_success else None

    @property
    def stale(self) -> bool:
        if not self.source.enabled:
            return False
        if self.age is None:
            return self.run is not None and self.now - self.run.created_at > self.period + STALE_GRACE
        return self.age > self.period + STALE_GRACE

    @property
    def error(self) -> str | None:
        """The latest run's error in full, or its photo job's."""
        if self.run is not None and self.run.last_error:
            return self.run.last_error
        photo = self.photo_run
        return photo.images_error if photo is not None and photo.images_error else None

    @property
    def photos_failed(self) -> int:
        return self.photo_run.photos_failed if self.photo_run is not None else 0

    @property
    def attention(self) -> int:
        status = self.run.status if self.run else None
        for rank, wanted in enumerate((status == "failed", self.stale, bool(self.held), status == "waiting",
                                       bool(self.error), self.photos_failed > 0,
                                       bool(self.run and self.run.warning))):
            if wanted:
                return rank
        return 8 if not self.source.enabled else 7

    @property
    def state(self) -> str:
        """One word for the row's colour: failed, stale, held, retrying, warning, ok, off."""
        return ("failed", "stale", "held", "retrying", "warning", "warning", "warning", "ok", "off")[self.attention]


def overview(session: Session, now: dt.datetime) -> list[SourceView]:
    """Every source, what needs a person first, then by id."""
    sources = list(session.scalars(select(Source).order_by(Source.id)))
    latest = _runs(session, _latest_ids())
    successes = _runs(session, _latest_ids(lambda run: run.status == "succeeded"))
    photo_runs = _runs(session, _latest_ids(lambda run: run.images_reset_at.is_not(None)))
    counts, statuses = listing_counts(session)
    photos = photo_counts(session)
    pending = photo_jobs_pending(session)
    held = held_removals(session)
    views = [SourceView(s, latest.get(s.id), _finished(successes.get(s.id)), photo_runs.get(s.id),
                        counts.get(s.id, {"active": 0, "removed": 0}), statuses.get(s.id, {}),
                        photos.get(s.id, {"stored": 0, "linked": 0}), pending.get(s.id, 0), held.get(s.id), now)
             for s in sources]
    return sorted(views, key=lambda v: (v.attention, v.id))


def _latest_ids(where=lambda run: true()):
    """Per source, the id of its newest run ``where(run)`` holds: an index probe per source."""
    run = aliased(FeedRun)
    newest = (select(func.max(run.id)).where(run.source_id == Source.id, where(run))
              .correlate(Source).scalar_subquery())
    return select(newest).select_from(Source)


def _runs(session: Session, ids) -> dict[str, FeedRun]:
    return {r.source_id: r for r in session.scalars(select(FeedRun).where(FeedRun.id.in_(ids)))}


def _finished(run: FeedRun | None) -> dt.datetime | None:
    return (run.finished_at or run.started_at) if run is not None else None


def listing_counts(session: Session) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """({source: {"active", "removed"}}, {source: {status: active listings}}) from listing_counts."""
    totals: dict[str, dict[str, int]] = {}
    statuses: dict[str, dict[str, int]] = {}
    for row in session.scalars(select(ListingCount).where(ListingCount.listings != 0)):
        kind = "removed" if row.removed else "active"
        bucket = totals.setdefault(row.source_id, {"active": 0, "removed": 0})
        bucket[kind] += row.listings
        if not row.removed:
            statuses.setdefault(row.source_id, {})[row.standard_status or "(none)"] = row.listings
    return totals, statuses


def active_listings(session: Session, source_id: str) -> int:
    return session.scalar(select(func.coalesce(func.sum(ListingCount.listings), 0))
                          .where(ListingCount.source_id == source_id, ListingCount.removed.is_(False))) or 0


def photo_counts(session: Session) -> dict[str, dict[str, int]]:
    return {r.source_id: {"stored": r.stored, "linked": r.linked} for r in session.scalars(select(PhotoCount))}


def photo_jobs_pending(session: Session) -> dict[str, int]:
    """Runs whose photo job has not run yet (or waits to retry), by source."""
    rows = session.execute(select(FeedRun.source_id, func.count()).where(FeedRun.images_ready.is_(True))
                           .group_by(FeedRun.source_id))
    return dict(rows.all())


def held_removals(session: Session) -> dict[str, dict[str, Any]]:
    """Held removals waiting for an operator, by source: the holding run, how many, how to release."""
    rows = session.execute(
        select(FeedRun.source_id, FeedRun.id, FeedRun.started_at, func.count(HeldRemoval.listing_id))
        .join(HeldRemoval, HeldRemoval.run_id == FeedRun.id)
        .group_by(FeedRun.source_id, FeedRun.id, FeedRun.started_at).order_by(FeedRun.id))
    return {source_id: {"run": run_id, "listings": count, "held_since": started,
                        "release": RELEASE.format(source=source_id)}
            for source_id, run_id, started, count in rows}


def unfinished_runs(session: Session) -> dict[str, int]:
    """Runs not finished yet, by status (queued, running, waiting)."""
    rows = session.execute(select(FeedRun.status, func.count()).where(FeedRun.status.in_(UNFINISHED))
                           .group_by(FeedRun.status))
    return {status: 0 for status in UNFINISHED} | dict(rows.all())


def oldest_queued(session: Session) -> dt.datetime | None:
    """When the oldest run still waiting to start (or to be retried) was created."""
    return session.scalar(select(func.min(FeedRun.created_at, type_=FeedRun.created_at.type)).where(FeedRun.status.in_(("queued", "waiting"))))


def history(session: Session, source_id: str, limit: int = 30) -> list[FeedRun]:
    """The source's latest ``limit`` runs, newest first."""
    return list(session.scalars(select(FeedRun).where(FeedRun.source_id == source_id)
                                .order_by(FeedRun.id.desc()).limit(limit)))


def recent_rejects(session: Session, runs: list[FeedRun], limit: int = 50) -> list[FeedReject]:
    """The newest rejects of these runs, with their reasons."""
    ids = [r.id for r in runs if r.rows_rejected]
    if not ids:
        return []
    return list(session.scalars(select(FeedReject).where(FeedReject.run_id.in_(ids))
                                .order_by(FeedReject.run_id.desc(), FeedReject.position).limit(limit)))
