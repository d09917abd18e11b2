"""Removals after a full load: only from a whole payload, and never too many at once.

A full run marks removed (``removed_at``) the listings its payload no longer carries, and only
when the payload is provably whole:

- no file was skipped as already fetched (``Payload.complete``), and the connector found
  nothing missing (``Payload.incomplete``): RETS rows equal the COUNT the server sent, RESO
  records equal ``@odata.count``, a SOAP feed's records equal its total, a file was read to its
  end at the size the server listed;
- the records parsed are not fewer than the source announced.

A listing whose record arrived but was rejected (a value that cannot be mapped) is in the feed:
it is kept as it was, not removed as missing, and counted in the step's summary.

Otherwise nothing is removed and the run's ``warning`` says why. Incremental runs never remove.

Then a guard every feed business wants: a full run that would remove more than the source's
``max_removed_share`` of the listings it had (default 10 %) removes none of them. It records
which listings it held (``held_removals``), the count (``removals_held``) and a warning; the
load and the run still succeed. ``release(session, source_id, now)`` (``mlsfeeds run SOURCE
--release-removals``) then removes exactly the held listings that are still missing: one seen
by any later run (full or incremental) has ``last_seen`` past the holding run's start and
stays. A later full run that decides its removals itself (it removes, or holds afresh) makes
earlier holds moot: they are cleared, and their warning says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from core.models import FeedReject, FeedRun, HeldRemoval, Listing, Source
from core.overview import RELEASE, held_removals as pending  # noqa: F401  (pending: held removals by source)
from pipeline.loader import LoadCounts, mark_removed



@dataclass
class Outcome:
    """What a full load did about the listings its payload no longer carries."""

    removed: int = 0
    held: int = 0
    warning: str | None = None      # for the run record and `mlsfeeds status`
    summary: str = ""               # for the step's one-line summary


@dataclass
class Release:
    """What releasing a source's held removals did."""

    runs: list[int]
    removed: int = 0
    came_back: int = 0


def why_not_whole(run: FeedRun, raw: dict[str, Any]) -> str | None:
    """Why this run's payload is not provably whole, or None when it is."""
    if raw.get("incomplete"):
        return raw["incomplete"]
    announced = raw.get("announced")
    if announced is not None and run.rows_parsed < announced:
        return f"the source announced {announced:,} records and {run.rows_parsed:,} were parsed"
    return None


def after_full_load(session: Session, source: Source, run: FeedRun, counts: LoadCounts) -> Outcome:
    """Remove what a whole full payload no longer carries, or hold it, or say why not."""
    raw = run.raw_keys or {}
    if not raw.get("complete", True):
        return Outcome(summary="not a whole snapshot: nothing removed")
    if problem := why_not_whole(run, raw):
        return Outcome(warning=f"nothing removed: the payload is not whole: {problem}",
                       summary=f"nothing removed, the payload is not whole ({problem})")
    seen_at = run.started_at
    kept = _keep_rejected(session, run, seen_at)
    missing = _missing(source.id, seen_at)
    would = session.scalar(select(func.count()).select_from(missing.subquery()))
    had = _active(session, source.id) - counts.inserted
    _clear_holds(session, source.id, run.id)
    kept_note = f" ({kept:,} kept: in the feed, their records rejected)" if kept else ""
    if would and would > source.max_removed_share * had + 1e-9:
        outcome = _hold(session, source, run, missing, would, had)
        outcome.summary += kept_note
        return outcome
    removed = mark_removed(session, source.id, seen_at, seen_at) if would else 0
    return Outcome(removed=removed, summary=f"{removed:,} removed{kept_note}")


def release(session: Session, source_id: str, now: dt.datetime) -> Release:
    """Remove the held listings of ``source_id`` that are still missing; clear the holds."""
    holding = list(session.scalars(
        select(FeedRun).where(FeedRun.source_id == source_id,
                              FeedRun.id.in_(select(HeldRemoval.run_id).distinct())).order_by(FeedRun.id)))
    report = Release(runs=[run.id for run in holding])
    for run in holding:
        removed, held = _release_run(session, run, now)
        report.removed += removed
        report.came_back += held - removed
    return report


# -- holding ----------------------------------------------------------------------------------------

def _keep_rejected(session: Session, run: FeedRun, seen_at: dt.datetime) -> int:
    """Listings whose record this run rejected are seen all the same: the feed carries them."""
    rejected_keys = select(FeedReject.listing_key).where(FeedReject.run_id == run.id,
                                                         FeedReject.listing_key.is_not(None))
    return session.execute(
        update(Listing).where(Listing.source_id == run.source_id, Listing.listing_key.in_(rejected_keys),
                              Listing.removed_at.is_(None), Listing.last_seen < seen_at)
        .values(last_seen=seen_at).execution_options(synchronize_session=False)
    ).rowcount or 0


def _missing(source_id: str, seen_at: dt.datetime):
    return select(Listing.id).where(Listing.source_id == source_id, Listing.removed_at.is_(None),
                                    Listing.last_seen < seen_at)


def _active(session: Session, source_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.source_id == source_id, Listing.removed_at.is_(None)))


def _hold(session: Session, source: Source, run: FeedRun, missing, would: int, had: int) -> Outcome:
    session.execute(insert(HeldRemoval).from_select(
        ["run_id", "listing_id"], missing.with_only_columns(literal(run.id, BigInteger), Listing.id)))
    share = f"{would / had:.0%}" if had else "all"
    warning = (f"{would:,} of the {had:,} listings ({share}) are missing from this full feed, more than "
               f"max_removed_share allows ({source.max_removed_share:.0%}): their removal is held. "
               f"`{RELEASE.format(source=source.id)}` removes those still missing.")
    return Outcome(held=would, warning=warning, summary=f"{would:,} removals held (more than "
                                                         f"{source.max_removed_share:.0%} of {had:,})")


def _clear_holds(session: Session, source_id: str, deciding_run: int) -> None:
    """Earlier holds are moot once a full run decides its own removals (a re-run load included)."""
    runs = select(FeedRun.id).where(FeedRun.source_id == source_id)
    earlier = list(session.scalars(select(FeedRun).where(
        FeedRun.id.in_(select(HeldRemoval.run_id).where(HeldRemoval.run_id.in_(runs))), FeedRun.id != deciding_run)))
    for run in earlier:
        run.warning = f"{run.warning or ''} Superseded by run {deciding_run}, which decided removals itself.".strip()
    session.execute(delete(HeldRemoval).where(HeldRemoval.run_id.in_(runs)))


def _release_run(session: Session, run: FeedRun, now: dt.datetime) -> tuple[int, int]:
    held_ids = select(HeldRemoval.listing_id).where(HeldRemoval.run_id == run.id)
    held = session.scalar(select(func.count()).select_from(held_ids.subquery()))
    removed = session.execute(
        update(Listing).where(Listing.id.in_(held_ids), Listing.removed_at.is_(None),
                              Listing.last_seen < run.started_at)  # not seen by any run since
        .values(removed_at=now).execution_options(synchronize_session=False)
    ).rowcount or 0
    session.execute(delete(HeldRemoval).where(HeldRemoval.run_id == run.id))
    run.removals_released_at, run.rows_removed = now, run.rows_removed + removed
    run.warning = (f"{run.warning or ''} Released {now:%Y-%m-%d %H:%M} UTC: {removed:,} removed, "
                   f"{held - removed:,} back in the feed since (kept).").strip()
    return removed, held
