"""The steps of a run: download → parse → load → geocode. Each is idempotent given its inputs.

download writes what the source sent to the object store (``raw/{source}/{date}/{run}/``)
before anything reads it; parse maps every record and writes the mapped ones back
(``parsed/.../records.ndjson.gz``), keeping rejects with their reasons; load upserts, and on a
full run removes what the feed dropped when its payload is whole (:mod:`pipeline.removals`);
geocode places what has no coordinates. Re-running any step rewrites its own outputs and nothing else.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from core.models import FeedReject, FeedRun, Listing, Source
from core.storage import ObjectStore
from pipeline import records, removals
from pipeline.connectors import Connector, FetchRequest, connector_for
from pipeline.errors import PermanentError
from pipeline.geocode import Geocoder
from pipeline.geocode.step import geocode_run
from pipeline.loader import load_listings
from pipeline.parsers import parser_for
from pipeline.payloads import open_payload
from pipeline.spec import resolve_secrets

if TYPE_CHECKING:
    from pipeline.mapping import RecordRejected

STEPS = ("download", "parse", "load", "geocode")
REJECT_BATCH = 500


@dataclass
class Services:
    """The adapters a step needs, built once at start-up from Settings."""

    store: ObjectStore
    geocoders: Sequence[Geocoder] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    scratch: Path | None = None           # local temp space; None = the system's
    progress: Callable[[str], None] = lambda message: None
    connectors: Mapping[str, Connector] = field(default_factory=dict)  # overrides by kind (tests)

    def connector(self, kind: str) -> Connector:
        return self.connectors.get(kind) or connector_for(kind)


def next_step(step: str) -> str:
    index = STEPS.index(step)
    return STEPS[index + 1] if index + 1 < len(STEPS) else "done"


def run_step(session: Session, run: FeedRun, services: Services) -> str:
    """Run the run's current step; returns a one-line summary. The caller commits."""
    source = session.get(Source, run.source_id)
    started = time.monotonic()
    summary = STEP_FUNCTIONS[run.step](session, run, source, services)
    timings = dict(run.step_timings or {})
    timings[run.step] = round(time.monotonic() - started, 3)
    run.step_timings = timings
    return summary


def _prefix(run: FeedRun, area: str) -> str:
    return f"{area}/{run.source_id}/{run.business_date.isoformat()}/{run.id}"


# -- download -------------------------------------------------------------------------------------

def download(session: Session, run: FeedRun, source: Source, services: Services) -> str:
    where = f"source {source.id!r}"
    spec = resolve_secrets(source.download, services.environ, where)
    since = run.window_start if run.kind == "incremental" else None
    with tempfile.TemporaryDirectory(dir=services.scratch, prefix=f"dl-{run.id}-") as workdir:
        payload = services.connector(spec["kind"]).fetch(
            FetchRequest(source.id, spec, Path(workdir), since, dict(source.state or {}), services.progress)
        )
        files = [_keep(services.store, _prefix(run, "raw"), f) for f in payload.files]
    run.raw_keys = {"files": files, "not_modified": payload.not_modified, "complete": payload.complete,
                    "incomplete": payload.incomplete, "announced": payload.announced, "state": payload.state}
    run.bytes_downloaded = payload.size
    if payload.not_modified:
        return "the source has nothing new"
    return f"{len(files)} file(s), {payload.size:,} bytes"


def _keep(store: ObjectStore, prefix: str, payload_file) -> dict:
    key = f"{prefix}/{payload_file.path.name}"
    info = store.put_file(key, payload_file.path)
    return {"key": key, "size": info.size, "format": payload_file.format, "meta": payload_file.meta}


# -- parse ------------------------------------------------------------------------------------------

def parse(session: Session, run: FeedRun, source: Source, services: Services) -> str:
    from pipeline.mapping import Mapper, RecordRejected

    session.execute(delete(FeedReject).where(FeedReject.run_id == run.id))
    mapper = Mapper(source.parse, source.timezone)
    parsed = rejected = 0
    pending_rejects: list[dict] = []
    with tempfile.TemporaryDirectory(dir=services.scratch, prefix=f"parse-{run.id}-") as tmp:
        out_path = Path(tmp) / "records.ndjson.gz"
        with records.writer(out_path) as out:
            for position, record in _raw_records(run, source, services):
                parsed += 1
                try:
                    records.dump(mapper.map(record), out)
                except RecordRejected as exc:
                    rejected += 1
                    line = exc.line or position
                    pending_rejects.append(_reject_row(run, line, exc, record))
                    if len(pending_rejects) >= REJECT_BATCH:
                        _flush_rejects(session, pending_rejects)
                if parsed % 50_000 == 0:
                    services.progress(f"parsed {parsed:,} records")
        _flush_rejects(session, pending_rejects)
        key = f"{_prefix(run, 'parsed')}/records.ndjson.gz"
        services.store.put_file(key, out_path)
    run.raw_keys = {**run.raw_keys, "parsed": key}
    run.rows_parsed, run.rows_rejected = parsed, rejected
    return f"{parsed:,} records, {rejected:,} rejected"


def _raw_records(run: FeedRun, source: Source, services: Services):
    position = 0
    for item in (run.raw_keys or {}).get("files", []):
        fmt = item.get("format") or source.parse.get("format")
        spec = {**source.parse, "format": fmt}  # a connector may imply the format of its files
        with open_payload(services.store, item["key"]) as stream:
            for record in parser_for(fmt).records(stream, spec):
                position += 1
                yield position, record


def _reject_row(run: FeedRun, position: int, rejected: "RecordRejected", record: dict) -> dict:
    from pipeline.mapping import json_safe

    key = (rejected.listing_key or "")[:128] or None
    return {"run_id": run.id, "source_id": run.source_id, "position": position, "listing_key": key,
            "reason": str(rejected)[:2000], "record": json_safe(record)}


def _flush_rejects(session: Session, rows: list[dict]) -> None:
    if rows:
        session.execute(insert(FeedReject), rows)
        rows.clear()


# -- load -------------------------------------------------------------------------------------------

def load(session: Session, run: FeedRun, source: Source, services: Services) -> str:
    raw = run.raw_keys or {}
    seen_at = run.started_at
    if raw.get("not_modified") or "parsed" not in raw:
        return "nothing to load"
    with services.store.open(raw["parsed"]) as stream:
        counts = load_listings(session, source.id, records.load_all(stream), seen_at)
    run.rows_inserted, run.rows_updated, run.rows_unchanged = counts.inserted, counts.updated, counts.unchanged
    loaded = f"{counts.inserted:,} inserted, {counts.updated:,} updated, {counts.unchanged:,} unchanged"
    if run.kind != "full":
        return loaded
    _refuse_empty_full_feed(session, source, counts, run)
    outcome = removals.after_full_load(session, source, run, counts)
    run.rows_removed, run.removals_held, run.warning = outcome.removed, outcome.held, outcome.warning
    return f"{loaded}, {outcome.summary}"


def _refuse_empty_full_feed(session: Session, source: Source, counts, run: FeedRun) -> None:
    if counts.inserted + counts.updated + counts.unchanged or not (run.raw_keys or {}).get("complete", True):
        return
    active = session.scalar(
        select(func.count()).select_from(Listing).where(Listing.source_id == source.id, Listing.removed_at.is_(None))
    )
    if active:
        raise PermanentError(
            f"the full feed held no listings ({run.rows_parsed} parsed, {run.rows_rejected} rejected); "
            f"refusing to mark all {active:,} listings of {source.id} removed — check the feed"
        )


# -- geocode ----------------------------------------------------------------------------------------

def geocode(session: Session, run: FeedRun, source: Source, services: Services) -> str:
    placed = geocode_run(session, source.id, run.started_at, services.geocoders)
    run.rows_geocoded = placed
    return f"{placed:,} listings geocoded"


STEP_FUNCTIONS = {"download": download, "parse": parse, "load": load, "geocode": geocode}


def finish(run: FeedRun, source: Source, now: dt.datetime) -> None:
    """The data is in: flag the photos job, keep the connector's state for the next run."""
    run.status = "succeeded"
    run.step = "done"
    run.finished_at = now
    run.images_ready = True
    run.images_ready_at = now
    run.last_error = None
    state = (run.raw_keys or {}).get("state")
    if state:
        source.state = state
