"""GetFeedStatus: each visible source, its schedule and its latest run."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import FeedRun, Listing, Source
from service.auth import Caller
from service.errors import Forbidden, NotFound, shown

_COUNTS = {
    "RowsParsed": "rows_parsed",
    "RowsRejected": "rows_rejected",
    "RowsInserted": "rows_inserted",
    "RowsUpdated": "rows_updated",
    "RowsRemoved": "rows_removed",
    "RowsGeocoded": "rows_geocoded",
    "PhotosFetched": "photos_fetched",
    "PhotosStored": "photos_stored",
    "PhotosUnchanged": "photos_unchanged",
    "PhotosFailed": "photos_failed",
}


def statuses(session: Session, caller: Caller, source_id: str | None) -> list[dict]:
    """A FeedStatus record (by wire name) for each visible source."""
    sources = _visible_sources(session, caller, source_id)
    ids = [s.id for s in sources]
    latest = _latest_runs(session, ids)
    successes = _last_successes(session, ids)
    counts = _listing_counts(session, ids)
    return [
        _status(s, latest.get(s.id), successes.get(s.id), counts.get(s.id, 0), caller) for s in sources
    ]


def _visible_sources(session: Session, caller: Caller, source_id: str | None) -> list[Source]:
    stmt = select(Source).order_by(Source.id)
    if source_id:
        if not caller.can_see(source_id):
            raise Forbidden(f"not entitled to source {shown(source_id)}")
        found = list(session.scalars(stmt.where(Source.id == source_id)))
        if not found:
            raise NotFound(f"no source {shown(source_id)}")
        return found
    if caller.sources is not None:
        stmt = stmt.where(Source.id.in_(sorted(caller.sources)))
    return list(session.scalars(stmt))


def _latest_runs(session: Session, ids: list[str]) -> dict[str, FeedRun]:
    newest = (
        select(func.max(FeedRun.id)).where(FeedRun.source_id.in_(ids)).group_by(FeedRun.source_id)
    )
    return {r.source_id: r for r in session.scalars(select(FeedRun).where(FeedRun.id.in_(newest)))}


def _last_successes(session: Session, ids: list[str]) -> dict:
    stmt = (
        select(FeedRun.source_id, func.max(FeedRun.finished_at))
        .where(FeedRun.source_id.in_(ids), FeedRun.status == "succeeded")
        .group_by(FeedRun.source_id)
    )
    return {source_id: _aware(when) for source_id, when in session.execute(stmt)}


def _listing_counts(session: Session, ids: list[str]) -> dict[str, int]:
    stmt = (
        select(Listing.source_id, func.count())
        .where(Listing.source_id.in_(ids), Listing.removed_at.is_(None))
        .group_by(Listing.source_id)
    )
    return dict(session.execute(stmt).all())


def _aware(value):
    # func.max() loses the column type, so SQLite hands back a naive string-parsed value.
    from core.types import UTCDateTime

    if value is None or not isinstance(value, str) and value.tzinfo is not None:
        return value
    return UTCDateTime().process_result_value(value, None)


def _status(source: Source, run: FeedRun | None, last_success, listings: int, caller: Caller) -> dict:
    status = dict(
        SourceId=source.id,
        Name=source.name,
        Enabled=source.enabled,
        Timezone=source.timezone,
        EarliestDownload=source.earliest_download.strftime("%H:%M"),
        RepeatEverySeconds=source.repeat_every_seconds,
        ListingCount=listings,
        LastSuccessAt=last_success,
        ImagesReady=bool(run and run.images_ready),
    )
    if run is not None:
        _describe_run(status, run, caller)
    return status


def _describe_run(status: dict, run: FeedRun, caller: Caller) -> None:
    status.update(
        RunId=run.id,
        RunKind=run.kind,
        RunStatus=run.status,
        CurrentStep=run.step,
        Attempt=run.attempt,
        BusinessDate=run.business_date,
        StartedAt=run.started_at,
        FinishedAt=run.finished_at,
        ImagesReadyAt=run.images_ready_at,
    )
    for wire_name, column in _COUNTS.items():
        status[wire_name] = getattr(run, column)
    if run.last_error:
        # Operators get the whole story; consumers learn that something failed, not what.
        status["LastError"] = run.last_error if caller.is_operator else f"the run failed at step {run.step}"
