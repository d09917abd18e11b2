"""``mlsfeeds images migrate SRC DEST``: move a photo archive into the object store.

Parallel, resumable after a kill, verified, with progress. How the pieces fit::

    lister thread ──rows, in batches──▶ migration_items ◀──claim in id order / record──┐
    (archive.walk → key template)       (the manifest)                                  │
                                                                 coordinator (this thread)
                                                                   │ chunks ▲ outcomes
                                                                   ▼        │
                                            workers ×N: probe the chunk's keys at the destination,
                                            then per file: read → MD5 → same there? skip : PUT → verify

* Several processes, on one host or many, run one job together on PostgreSQL: each claims
  chunks ``FOR UPDATE SKIP LOCKED`` under a lease it renews (``manifest``), one of them lists
  the archive under the job's listing lease, and each keeps going until the whole job is done,
  so the report every one of them prints at the end shows the same job. On SQLite, one process.
* Only the coordinator claims and records, and a claim is committed before its files are
  touched: after kill -9 the claimed files stay ``copying`` until their lease ends (on SQLite,
  until the next run starts); then another claim takes them, and since every chunk is probed at
  the destination before anything is uploaded, a file whose upload had landed is recognised
  (same size, ETag = MD5) and recorded as copied (``recovered``) without a second upload.
* Nothing holds the whole listing: the lister streams rows into the database, the coordinator
  keeps at most ``2 × workers`` chunks in flight.
* A stop request (SIGINT/SIGTERM → ``stop`` event) ends the run cleanly: unstarted files are
  released to pending, started ones finish, outcomes are written; the job resumes next time.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from core.storage import EtagMismatch, StorageError
from core.types import utcnow
from pipeline.clock import db_now
from pipeline.errors import PipelineError, SourceUnavailable
from pipeline.images import manifest
from pipeline.images.archives import Archive
from pipeline.images.destinations import Destination, Payload, VerifyFailed, same_content
from pipeline.images.keymap import KeyMapping, UnsafeKey
from pipeline.images.manifest import COPIED, FAILED, SKIPPED, Item
from pipeline.images.progress import Progress, format_bytes, format_duration

UNMATCHED = "the path does not match the --key-template pattern"


@dataclass(frozen=True)
class MigrateOptions:
    workers: int = 16
    verify: bool = False
    unmatched: str = "fail"     # "fail": recorded as failed items; "skip": left out
    restart: bool = False
    chunk: int = 50             # files per worker task, probed at the destination together
    chunks_per_claim: int = 4   # chunks claimed in one transaction
    insert_batch: int = 1000
    read_attempts: int = 3
    flush_seconds: float = 0.5
    lease_seconds: float = 60.0  # a process silent this long is presumed dead: its files are taken over
    poll_seconds: float = 0.5    # how often an idle process looks for work other processes left


@dataclass
class RunCounts:
    copied: int = 0
    skipped: int = 0
    recovered: int = 0       # copied by a run that died before recording it; not uploaded again
    failed: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    unmatched_skipped: int = 0
    reopened_in_flight: int = 0
    reopened_failed: int = 0
    verified: int = 0
    mismatched: int = 0


@dataclass
class MigrationReport:
    job_id: int
    source_url: str
    dest_url: str
    run: RunCounts
    totals: dict[str, tuple[int, int]]
    failures: list[tuple[str, int, str]]
    elapsed: float
    listing_error: str | None = None
    stopped_by: int | None = None  # the signal that stopped the run
    verify_ran: bool = False
    recovered: int = 0             # in the whole job: copies found landed after their process died
    owner: str = ""

    @property
    def exit_code(self) -> int:
        if self.stopped_by:
            return 128 + self.stopped_by
        failed = self.totals.get(FAILED, (0, 0))[0]
        return 1 if failed or self.listing_error or self.run.mismatched else 0

    def render(self) -> str:
        return "\n".join(render_report(self))


@dataclass(frozen=True)
class Outcome:
    item: Item
    status: str
    size: int | None = None
    md5: str | None = None
    error: str | None = None
    recovered: bool = False

    def row(self) -> dict:
        verified = utcnow() if self.status in (COPIED, SKIPPED) else None
        return {"id": self.item.id, "status": self.status, "size": self.size, "md5": self.md5,
                "error": self.error, "verified_at": verified, "recovered": self.recovered}


@dataclass(frozen=True)
class Released:
    ids: list[int]


@dataclass
class _State:
    listing_done: bool = False
    listing_error: str | None = None
    in_flight: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    last_flush: float = 0.0
    last_total: float = 0.0
    inserts: int = 0              # batches the lister has committed
    drained_at: int | None = None  # `inserts` when a claim last came back empty
    drained_time: float = 0.0      # and when
    last_renew: float = 0.0
    lister: threading.Thread | None = None


class Migration:
    """One run of one job. ``run()`` returns the report; ``stop`` ends it early and cleanly."""

    def __init__(self, sessions: sessionmaker, engine: Engine, archive: Archive, destination: Destination,
                 mapping: KeyMapping, options: MigrateOptions, progress: Progress,
                 stop: threading.Event | None = None, stopped_by: Callable[[], int | None] = lambda: None,
                 owner: str | None = None):
        self.sessions, self.engine = sessions, engine
        self.owner = owner or default_owner()
        self.shared = manifest.shared(engine)
        self.archive, self.destination, self.mapping = archive, destination, mapping
        self.options, self.progress = options, progress
        self.stop = stop or threading.Event()
        self.stopped_by = stopped_by
        self.counts = RunCounts()
        self.state = _State()
        self.empty_destination = False  # nothing under the prefix when the run began
        self.work: queue.Queue = queue.Queue(maxsize=max(options.workers, 2 * options.chunks_per_claim))
        self.results: queue.Queue = queue.Queue()

    def run(self) -> MigrationReport:
        started = time.monotonic()
        job_id, listed = self._open_job()
        with manifest.exclusive(self.engine, job_id):
            self._reopen(job_id)
            self.empty_destination = self.destination.is_empty()
            self._copy_all(job_id, listed)
            if self.options.verify and not self.stop.is_set():
                self._verify_all(job_id)
            self._finish_job(job_id)
        return self._report(job_id, time.monotonic() - started)

    # -- job ------------------------------------------------------------------------------

    def _open_job(self) -> tuple[int, bool]:
        try:
            return self._open_job_once(self.options.restart)
        except IntegrityError:
            # Another process created the job between our look and our insert (processes started
            # together): join the job it created, as if it had been there first.
            return self._open_job_once(restart=False)

    def _open_job_once(self, restart: bool) -> tuple[int, bool]:
        with self.sessions() as session:
            if restart and (old := manifest.find_job(session, self.archive.url, self.destination.url)):
                manifest.delete_job(session, old)
            job = manifest.open_job(session, self.archive.url, self.destination.url, self.mapping.spec)
            session.commit()
            return job.id, job.listed_complete

    def _reopen(self, job_id: int) -> None:
        with self.sessions() as session:
            in_flight, failed = manifest.reopen(session, job_id, in_flight_too=not self.shared)
            session.commit()
        self.counts.reopened_in_flight, self.counts.reopened_failed = in_flight, failed

    def _finish_job(self, job_id: int) -> None:
        with self.sessions() as session:
            listed, _ = manifest.listing_state(session, job_id)
            complete = listed and not manifest.open_items(session, job_id) and not self.stop.is_set()
            manifest.set_job_status(session, job_id, "done" if complete else "copying", finished=complete)
            session.commit()

    # -- listing --------------------------------------------------------------------------

    def _start_lister(self, job_id: int) -> None:
        """List the archive in a thread of this process, if no other process is listing it."""
        if manifest.retrying(self.sessions, lambda session: self._take_listing(session, job_id)):
            self.state.lister = threading.Thread(target=self._list, args=(job_id,), name="migrate-list", daemon=True)
            self.state.lister.start()

    def _listing(self) -> bool:
        return self.state.lister is not None and self.state.lister.is_alive()

    def _list(self, job_id: int) -> None:
        """The lister thread: archive → manifest rows, in batches (and at least every second)."""
        try:
            batch, last = [], time.monotonic()
            for file in self.archive.walk():
                if self.stop.is_set():
                    return
                if (row := self._row(job_id, file.path, file.size)) is not None:
                    batch.append(row)
                if len(batch) >= self.options.insert_batch or (batch and time.monotonic() - last > 1):
                    self._insert(batch)
                    batch, last = [], time.monotonic()
            self._insert(batch, finished=job_id)
            self.state.listing_done = True
        except PipelineError as exc:
            self.state.listing_error = str(exc)
        except Exception as exc:  # the thread's outermost frame: recorded and reported, never lost
            self.state.listing_error = f"{exc.__class__.__name__}: {exc}"

    def _row(self, job_id: int, path: str, size: int | None) -> dict | None:
        try:
            key = self.mapping.map(path)
        except UnsafeKey as exc:
            return manifest.item_row(job_id, path, None, size, str(exc))
        if key is None:
            if self.options.unmatched == "skip":
                self.counts.unmatched_skipped += 1
                return None
            return manifest.item_row(job_id, path, None, size, UNMATCHED)
        return manifest.item_row(job_id, path, key, size, None)

    def _insert(self, batch: list[dict], finished: int | None = None) -> None:
        with self.sessions() as session:
            manifest.insert_items(session, batch)
            if finished is not None:
                manifest.finish_listing(session, finished)
            session.commit()
        self.state.inserts += 1

    # -- copying --------------------------------------------------------------------------

    def _copy_all(self, job_id: int, listed: bool) -> None:
        self.state.listing_done = listed
        threads = [threading.Thread(target=self._work, name=f"migrate-{n}", daemon=True)
                   for n in range(self.options.workers)]
        for thread in threads:
            thread.start()
        if not listed:
            self._start_lister(job_id)
        try:
            self._coordinate(job_id)
        finally:
            self._shut_down(threads + ([self.state.lister] if self.state.lister else []))
            self._release_listing(job_id)
        self.progress.finish()

    def _coordinate(self, job_id: int) -> None:
        while not self.stop.is_set():
            if self._room() < self.options.chunks_per_claim:
                time.sleep(0.01)  # the workers are busy: let outcomes gather, take them in one go
            self._pump(timeout=0.05)
            self._flush()
            self._keep_up(job_id)
            self.progress.tick()
            listing = self._listing()  # before claiming: the lister's last rows count
            claimed = self._refill(job_id)
            if not claimed and not listing and self.state.in_flight == 0 and self.work.empty() \
                    and self._job_finished(job_id):
                return

    def _keep_up(self, job_id: int) -> None:
        """Renew this process's leases, take over a dead lister's listing, update the total."""
        now = time.monotonic()
        if now - self.state.last_renew >= min(self.options.lease_seconds / 4, 5.0):
            self.state.last_renew = now
            manifest.retrying(self.sessions, lambda session: self._renew(session, job_id))
        self._update_total(job_id)

    def _renew(self, session, job_id: int) -> None:
        now, until = self._lease_from(session)
        manifest.renew(session, job_id, self.owner, until)
        if self._listing():
            self._take_listing(session, job_id)

    def _take_listing(self, session, job_id: int) -> bool:
        now, until = self._lease_from(session)
        return manifest.claim_listing(session, job_id, self.owner, until, now)

    def _job_finished(self, job_id: int) -> bool:
        """True when the whole job is done: listed, and no file pending or in flight anywhere.

        Otherwise wait a little: files other processes hold come back when their lease ends
        (if they died), and another process's listing may add more.
        """
        self._flush(force=True)
        with self.sessions() as session:
            listed, someone_lists = manifest.listing_state(session, job_id)
            open_items = manifest.open_items(session, job_id)
        listing_over = listed or self.state.listing_error is not None
        if listing_over and not open_items:
            return True
        if not listing_over and not self._listing():
            self._start_lister(job_id)  # nobody is listing, or the lister died: list here
        self.stop.wait(self.options.poll_seconds)
        return False

    def _release_listing(self, job_id: int) -> None:
        if self.state.lister is not None and not self.state.listing_done:
            with self.sessions() as session:
                manifest.release_listing(session, job_id, self.owner)  # another may list at once
                session.commit()

    def _refill(self, job_id: int) -> bool:
        """Claim chunks while the queue has room; False when nothing was claimable.

        After an empty claim the next one waits for this process's lister's next batch, or
        ``poll_seconds`` (other processes list, die and release too).
        """
        claimed_any, chunk = False, self.options.chunk
        while self._room() >= self.options.chunks_per_claim and not self._drained():
            inserts = self.state.inserts
            items = manifest.retrying(self.sessions, lambda session: self._claim(session, job_id))
            if not items:
                self.state.drained_at, self.state.drained_time = inserts, time.monotonic()
                return claimed_any
            self.state.in_flight += len(items)
            for start in range(0, len(items), chunk):
                self.work.put(items[start:start + chunk])
            claimed_any = True
        return claimed_any or self._room() < self.options.chunks_per_claim

    def _claim(self, session, job_id: int) -> list[Item]:
        now, until = self._lease_from(session)
        return manifest.claim(session, job_id, self.options.chunk * self.options.chunks_per_claim, self.owner,
                              until, now)

    def _lease_from(self, session) -> tuple[dt.datetime, dt.datetime]:
        """(now, when a lease taken now ends), on the database's clock."""
        now = db_now(session)
        return now, now + dt.timedelta(seconds=self.options.lease_seconds)

    def _drained(self) -> bool:
        return (self.state.drained_at == self.state.inserts
                and time.monotonic() - self.state.drained_time < self.options.poll_seconds)

    def _room(self) -> int:
        return self.work.maxsize - self.work.qsize()

    def _shut_down(self, threads: list[threading.Thread]) -> None:
        """Stop the workers: unstarted chunks are released, started files finish and are recorded."""
        self._release_queued()
        for _ in range(self.options.workers):
            self.work.put(None)
        for thread in threads:
            while thread.is_alive():
                self._pump(timeout=0.05)
                thread.join(timeout=0.05)
        self._pump(timeout=0)
        self._flush(force=True)

    def _release_queued(self) -> None:
        while True:
            try:
                chunk = self.work.get_nowait()
            except queue.Empty:
                return
            if chunk:
                self.state.released.extend(item.id for item in chunk)
                self.state.in_flight -= len(chunk)

    def _pump(self, timeout: float) -> None:
        """Take every outcome the workers have posted (waiting up to ``timeout`` for the first)."""
        try:
            message = self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            while True:
                self._take(message)
                message = self.results.get_nowait()
        except queue.Empty:
            return

    def _take(self, message: Outcome | Released) -> None:
        if isinstance(message, Released):
            self.state.released.extend(message.ids)
            self.state.in_flight -= len(message.ids)
            return
        self.state.outcomes.append(message)
        self.state.in_flight -= 1
        self._count(message)

    def _count(self, outcome: Outcome) -> None:
        size = outcome.size or 0
        if outcome.status == COPIED:
            self.counts.copied += 1
            self.counts.recovered += outcome.recovered
            self.counts.bytes_copied += size
        elif outcome.status == SKIPPED:
            self.counts.skipped += 1
            self.counts.bytes_skipped += size
        else:
            self.counts.failed += 1
        self.progress.add(outcome.status, size)

    def _flush(self, force: bool = False) -> None:
        state, now = self.state, time.monotonic()
        if not (state.outcomes or state.released):
            return
        if not force and len(state.outcomes) < 500 and now - state.last_flush < self.options.flush_seconds:
            return
        rows, released = [outcome.row() for outcome in state.outcomes], state.released

        def write(session) -> None:
            manifest.record(session, rows)
            manifest.release(session, released)

        manifest.retrying(self.sessions, write)
        state.outcomes, state.released, state.last_flush = [], [], now

    def _update_total(self, job_id: int) -> None:
        now = time.monotonic()
        if now - self.state.last_total < 1.0 and self.progress.total:
            return
        self.state.last_total = now
        with self.sessions() as session:
            still_open = manifest.open_items(session, job_id)
            listed, _ = manifest.listing_state(session, job_id)
        self.progress.set_total(self.progress.files + still_open - len(self.state.outcomes), listed)

    # -- the workers ----------------------------------------------------------------------

    def _work(self) -> None:
        while (chunk := self.work.get()) is not None:
            try:
                self._do_chunk(chunk)
            except Exception as exc:  # the thread's outermost frame: every file gets an outcome
                for item in chunk:
                    self.results.put(Outcome(item, FAILED, error=f"internal error: {exc.__class__.__name__}: {exc}"))

    def _do_chunk(self, chunk: list[Item]) -> None:
        try:
            found = self._probe(chunk)
        except StorageError as exc:
            for item in chunk:
                self.results.put(Outcome(item, FAILED, error=f"destination: {_reason(exc, item)}"))
            return
        for position, item in enumerate(chunk):
            if self.stop.is_set():
                self.results.put(Released([i.id for i in chunk[position:]]))
                return
            self.results.put(self._copy(item, found.get(item.dest_key)))

    def _probe(self, chunk: list[Item]) -> dict:
        """What the destination holds for the chunk's keys. Skipped only when the destination
        was empty when the run began and no file of the chunk was ever tried before: then
        nothing can be there but what this run put, and this run has not reached them."""
        if self.empty_destination and not any(item.attempts for item in chunk):
            return {}
        return self.destination.existing([item.dest_key for item in chunk])

    def _copy(self, item: Item, found) -> Outcome:
        try:
            payload = self._read(item)
        except PipelineError as exc:
            return Outcome(item, FAILED, error=f"source: {_reason(exc, item)}")
        with payload:
            if found is not None and same_content(found, payload):
                recovered = item.attempts > 0  # tried before: our own upload had landed
                return Outcome(item, COPIED if recovered else SKIPPED, payload.size, payload.md5, recovered=recovered)
            try:
                self.destination.put(item.dest_key, payload)
            except StorageError as exc:
                return Outcome(item, FAILED, payload.size, payload.md5, error=f"destination: {_reason(exc, item)}")
            return Outcome(item, COPIED, payload.size, payload.md5)

    def _read(self, item: Item) -> Payload:
        """The file's bytes, retrying what is worth retrying, with backoff and jitter."""
        for attempt in range(1, self.options.read_attempts + 1):
            payload = Payload()
            try:
                self.archive.read(item.source_path, payload)
                return payload
            except SourceUnavailable:
                payload.close()
                if attempt == self.options.read_attempts or self.stop.is_set():
                    raise
            except BaseException:
                payload.close()
                raise
            time.sleep(random.uniform(0, 0.2 * 2 ** attempt))
        raise AssertionError("unreachable")

    # -- verify ---------------------------------------------------------------------------

    def _verify_all(self, job_id: int, batch: int = 500) -> None:
        """Check every copied or skipped item against the destination; mismatches become failed."""
        after = 0
        while not self.stop.is_set():
            with self.sessions() as session:
                items = manifest.done_items(session, job_id, after, batch)
            if not items:
                return
            after = items[-1].id
            found = self.destination.existing([item.dest_key for item in items])
            rows = [self._verify_row(item, found.get(item.dest_key)) for item in items]
            with self.sessions() as session:
                manifest.record(session, rows)
                session.commit()

    def _verify_row(self, item, found) -> dict:
        problem = self._mismatch(item, found)
        row = {"id": item.id, "status": item.status, "size": item.size, "md5": item.md5,
               "error": item.error, "verified_at": utcnow()}
        if problem is None:
            self.counts.verified += 1
            return row
        self.counts.mismatched += 1
        return {**row, "status": FAILED, "error": f"verify: {problem}", "verified_at": None}

    def _mismatch(self, item, found) -> str | None:
        if found is None:
            return "the object is missing at the destination"
        if found.size != item.size:
            return "the object at the destination has another size"
        if found.etag and "-" not in found.etag:
            return None if found.etag == item.md5 else "the object at the destination has other bytes (ETag is not the MD5)"
        return None if self.destination.content_md5(item.dest_key) == item.md5 else \
            "the object at the destination has other bytes (MD5 read back differs)"

    # -- report ---------------------------------------------------------------------------

    def _report(self, job_id: int, elapsed: float) -> MigrationReport:
        with self.sessions() as session:
            totals = manifest.states(session, job_id)
            failures = manifest.failure_groups(session, job_id)
            recovered = manifest.recovered_count(session, job_id)
        return MigrationReport(job_id, self.archive.url, self.destination.url, self.counts, totals, failures,
                               elapsed, self.state.listing_error, self.stopped_by() if self.stop.is_set() else None,
                               self.options.verify, recovered, self.owner)


def default_owner() -> str:
    """This process, as leases name it: host, pid and a random tag (pids repeat across hosts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _reason(exc: Exception, item: Item) -> str:
    """A failure's reason without the file's own path, key or URL, so that failures group."""
    if isinstance(exc, EtagMismatch):
        text = "S3 answered an ETag that is not the MD5 of the bytes sent"
    elif isinstance(exc, VerifyFailed):
        text = "the object read back after the upload differs from the file"
    else:
        text = re.sub(r"\b(https?://|s3://)\S+", "…", str(exc))
    for own in (item.dest_key, item.source_path):
        text = text.replace(repr(own), "").replace(own, "…") if own else text
    return text


# -- dry run ------------------------------------------------------------------------------

@dataclass
class DryRun:
    """What a run would do: counts, sample mappings, and what would fail to map."""

    source_url: str
    dest_url: str
    files: int = 0
    bytes_known: int = 0
    sizes_unknown: int = 0
    mapped: int = 0
    unmatched: int = 0
    unsafe: int = 0
    samples: list[tuple[str, str]] = field(default_factory=list)
    unmapped_examples: list[tuple[str, str]] = field(default_factory=list)
    listing_error: str | None = None
    destination_error: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.listing_error or self.destination_error else 0

    def render(self) -> str:
        return "\n".join(render_dry_run(self))


def dry_run(archive: Archive, destination: Destination, mapping: KeyMapping, samples: int = 5,
            stop: threading.Event | None = None) -> DryRun:
    """List the archive and map every path, without writing anything anywhere."""
    report = DryRun(archive.url, destination.url)
    try:
        destination.check()
    except StorageError as exc:
        report.destination_error = str(exc)
    try:
        for file in archive.walk():
            if stop is not None and stop.is_set():
                break
            _dry_run_one(report, mapping, file.path, file.size, samples)
    except PipelineError as exc:
        report.listing_error = str(exc)
    return report


def _dry_run_one(report: DryRun, mapping: KeyMapping, path: str, size: int | None, samples: int) -> None:
    report.files += 1
    if size is None:
        report.sizes_unknown += 1
    else:
        report.bytes_known += size
    try:
        key = mapping.map(path)
    except UnsafeKey as exc:
        report.unsafe += 1
        if len(report.unmapped_examples) < samples:
            report.unmapped_examples.append((path, str(exc)))
        return
    if key is None:
        report.unmatched += 1
        if len(report.unmapped_examples) < samples:
            report.unmapped_examples.append((path, UNMATCHED))
        return
    report.mapped += 1
    if len(report.samples) < samples:
        report.samples.append((path, key))


def render_dry_run(report: DryRun) -> list[str]:
    size = format_bytes(report.bytes_known) + (f" (+ {report.sizes_unknown:,} files of unknown size)"
                                               if report.sizes_unknown else "")
    lines = [f"dry run: {report.source_url} -> {report.dest_url} (nothing copied, no manifest written)",
             f"  files    {report.files:>10,}  {size}",
             f"  mapped   {report.mapped:>10,}",
             f"  unmapped {report.unmatched + report.unsafe:>10,}  ({report.unmatched:,} unmatched, "
             f"{report.unsafe:,} unsafe keys)"]
    if report.samples:
        lines.append("  sample mappings:")
        lines.extend(f"    {path}  ->  {key}" for path, key in report.samples)
    if report.unmapped_examples:
        lines.append("  not mapped:")
        lines.extend(f"    {path}: {why}" for path, why in report.unmapped_examples)
    if report.listing_error:
        lines.append(f"  LISTING FAILED: {report.listing_error}")
    lines.append(f"  destination: {'NOT REACHABLE: ' + report.destination_error if report.destination_error else 'reachable'}")
    return lines


# -- the report ---------------------------------------------------------------------------

def render_report(report: MigrationReport) -> list[str]:
    run, lines = report.run, [f"migration job {report.job_id}: {report.source_url} -> {report.dest_url}"]
    done = run.copied + run.skipped + run.failed
    rate = f"{done / report.elapsed:,.0f} files/s, {format_bytes(run.bytes_copied / report.elapsed)}/s" \
        if report.elapsed > 0 else ""
    lines.append(f"  copied   {run.copied:>10,} files  {format_bytes(run.bytes_copied)}")
    if run.recovered:
        lines.append(f"           {run.recovered:>10,} of them had reached the destination before the last run "
                     "stopped (checked, not uploaded again)")
    lines.append(f"  skipped  {run.skipped:>10,} files  {format_bytes(run.bytes_skipped)} (already at the destination)")
    lines.append(f"  failed   {run.failed:>10,} files")
    if run.unmatched_skipped:
        lines.append(f"  left out {run.unmatched_skipped:>10,} files the --key-template pattern does not match")
    lines.append(f"  this run {done:>10,} files in {format_duration(report.elapsed)} ({report.elapsed:.1f} s; {rate})"
                 f" by {report.owner}")
    if run.reopened_in_flight or run.reopened_failed:
        lines.append(f"  resumed: {run.reopened_in_flight:,} files were in flight when the last run stopped, "
                     f"{run.reopened_failed:,} had failed; all were checked at the destination first")
    lines.extend(_verify_lines(report))
    lines.extend(_totals_lines(report))
    return lines


def _verify_lines(report: MigrationReport) -> list[str]:
    if not report.verify_ran:
        return []
    run = report.run
    text = f"  verified {run.verified:>10,} files match the destination (size and MD5)"
    if run.mismatched:
        text += f"; {run.mismatched:,} DO NOT (now failed: the next run copies them again)"
    return [text]


def _totals_lines(report: MigrationReport) -> list[str]:
    totals = report.totals
    count = {status: totals.get(status, (0, 0))[0] for status in
             (COPIED, SKIPPED, FAILED, manifest.PENDING, manifest.COPYING)}
    size = sum(totals.get(status, (0, 0))[1] for status in (COPIED, SKIPPED))
    lines = [f"  job      {sum(count.values()):>10,} files: {count[COPIED]:,} copied, {count[SKIPPED]:,} skipped, "
             f"{count[FAILED]:,} failed, {count[manifest.PENDING] + count[manifest.COPYING]:,} to do; "
             f"{format_bytes(size)} at the destination"]
    if report.recovered:
        lines.append(f"           {report.recovered:,} copies had landed when their process died: found at the "
                     "destination, not uploaded again")
    if report.failures:
        lines.append("  failures, by reason:")
        lines.extend(f"    {n:>8,} × {reason}  (e.g. {example})" for reason, n, example in report.failures)
    if report.listing_error:
        lines.append(f"  LISTING FAILED: {report.listing_error} (run again to list the rest)")
    if report.stopped_by:
        lines.append("  stopped before the end: run the same command again to resume")
    return lines
