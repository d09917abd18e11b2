"""The migration manifest: ``migration_jobs`` and ``migration_items``, and what may change them.

One job per (source URL, destination URL); one item per archive file, inserted in batches
while the archive is listed (``INSERT ... ON CONFLICT DO NOTHING`` on the path hash, so listing
again after a crash adds only what is new). Item states::

    pending ──claim──▶ copying ──▶ copied | skipped | failed
       ▲                  │
       └──────────────────┘   copying whose lease ran out (its process died) is claimed again;
                              failed is worth another try at the next start, unless the path had
                              no key

Several processes, on one host or many, share a job on PostgreSQL (or MariaDB): a claim takes
the next pending items ``FOR UPDATE SKIP LOCKED``, so two claims never take the same item, and
sets ``lease_owner`` and ``lease_expires_at`` (the database's clock); the owner renews its
leases while it works. One process at a time lists the archive, under the job's listing lease
(``lister``), taken over the same way. On SQLite one process runs a job (``exclusive``).

``attempts`` counts claims, so an item with ``attempts > 0`` was tried before and must be
checked against the destination before it is copied (the probe does that for every item).
The session is always a parameter; callers commit.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


from sqlalchemy import Engine, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.models import MigrationItem, MigrationJob
from core.types import utcnow
from pipeline.errors import SourceConfigError

PENDING, COPYING, COPIED, SKIPPED, FAILED = "pending", "copying", "copied", "skipped", "failed"
DONE_STATES = (COPIED, SKIPPED)
UNMAPPED = ""  # dest_key of an item whose path had no key: never retried
MAX_URL = 512


class ManifestConflict(SourceConfigError):
    """The job exists with a different key mapping, or another process is running it."""


@dataclass(frozen=True)
class Item:
    """A claimed item, as handed to a worker."""

    id: int
    source_path: str
    dest_key: str
    size: int | None
    attempts: int  # before this claim


def path_hash(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()


# -- jobs -------------------------------------------------------------------------------------

def find_job(session: Session, source_url: str, dest_url: str) -> MigrationJob | None:
    return session.scalar(select(MigrationJob).where(MigrationJob.source_url == source_url,
                                                     MigrationJob.dest_url == dest_url))


def open_job(session: Session, source_url: str, dest_url: str, key_mapping: str) -> MigrationJob:
    """The job for this source and destination, created if new; its key mapping must match."""
    for name, value in (("source URL", source_url), ("destination URL", dest_url), ("key template", key_mapping)):
        if len(value) > MAX_URL:
            raise SourceConfigError(f"the {name} is longer than {MAX_URL} characters: the manifest cannot hold it")
    job = find_job(session, source_url, dest_url)
    if job is None:
        job = MigrationJob(source_url=source_url, dest_url=dest_url, key_mapping=key_mapping, status="listing")
        session.add(job)
        session.flush()
    elif job.key_mapping != key_mapping:
        raise ManifestConflict(
            f"migration job {job.id} ({source_url} -> {dest_url}) was started with --key-template "
            f"{job.key_mapping!r}; resume it with the same template, or pass --restart to start over")
    return job


def delete_job(session: Session, job: MigrationJob) -> None:
    """Forget a job and its items (``--restart``); what was copied stays at the destination."""
    session.execute(MigrationItem.__table__.delete().where(MigrationItem.job_id == job.id))
    session.delete(job)
    session.flush()


def finish_listing(session: Session, job_id: int) -> None:
    session.execute(update(MigrationJob).where(MigrationJob.id == job_id)
                    .values(listed_complete=True, status="copying", lister=None, lister_expires_at=None,
                            updated_at=utcnow()))


def set_job_status(session: Session, job_id: int, status: str, finished: bool = False) -> None:
    values = {"status": status, "updated_at": utcnow()}
    if finished:
        values["finished_at"] = utcnow()
    session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(**values))


def retrying(sessions, work, attempts: int = 8):
    """``work(session)`` in a transaction, committed; run again when the database chose it as
    a deadlock victim or failed to serialize it (MariaDB's InnoDB does, under concurrent
    claims). Returns what ``work`` returned."""
    for attempt in range(1, attempts + 1):
        with sessions() as session:
            try:
                result = work(session)
                session.commit()
                return result
            except OperationalError as exc:
                session.rollback()
                if attempt == attempts or not _transient(exc):
                    raise
        time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")


def _transient(exc: OperationalError) -> bool:
    """Deadlock (MySQL 1213, PostgreSQL 40P01), lock wait timeout (1205), serialization (40001)."""
    code = getattr(exc.orig, "sqlstate", None) or (exc.orig.args[0] if getattr(exc.orig, "args", None) else None)
    return code in (1213, 1205, "40P01", "40001")


def shared(engine: Engine) -> bool:
    """Whether several processes can share a job on this database (row locks, SKIP LOCKED)."""
    return engine.url.get_backend_name() != "sqlite"


@contextmanager
def exclusive(engine: Engine, job_id: int) -> Iterator[None]:
    """On SQLite, hold a lock only one process can hold per job (flock on a file beside the
    database, released even by kill -9). Other databases share jobs: nothing to hold."""
    if shared(engine):
        yield
        return
    with _file_lock(Path(engine.url.database or "mlsfeeds.db"), job_id):
        yield


def claim_listing(session: Session, job_id: int, owner: str, until: dt.datetime, now: dt.datetime) -> bool:
    """Become (or stay) the job's lister unless another process holds a live listing lease."""
    taken = session.execute(
        update(MigrationJob).where(MigrationJob.id == job_id, MigrationJob.listed_complete.is_(False),
                                   or_(MigrationJob.lister.is_(None), MigrationJob.lister == owner,
                                       MigrationJob.lister_expires_at < now))
        .values(lister=owner, lister_expires_at=until).execution_options(synchronize_session=False))
    return taken.rowcount == 1


def release_listing(session: Session, job_id: int, owner: str) -> None:
    session.execute(update(MigrationJob).where(MigrationJob.id == job_id, MigrationJob.lister == owner)
                    .values(lister=None, lister_expires_at=None).execution_options(synchronize_session=False))


def listing_state(session: Session, job_id: int) -> tuple[bool, bool]:
    """(listing complete, someone else holds a listing lease that may still be live)."""
    job = session.execute(select(MigrationJob.listed_complete, MigrationJob.lister).where(
        MigrationJob.id == job_id)).one()
    return bool(job.listed_complete), job.lister is not None


@contextmanager
def _file_lock(database: Path, job_id: int) -> Iterator[None]:
    lock_path = database.with_name(f"{database.name}.migrate-{job_id}.lock")
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ManifestConflict(f"migration job {job_id} is being run by another process") from None
        yield


# -- items ------------------------------------------------------------------------------------

def item_row(job_id: int, path: str, dest_key: str | None, size: int | None, error: str | None) -> dict:
    """A row for ``insert_items``; no key (``dest_key`` None) makes it failed with ``error``."""
    return {"job_id": job_id, "path_hash": path_hash(path), "source_path": path,
            "dest_key": dest_key if dest_key is not None else UNMAPPED, "size": size,
            "status": PENDING if dest_key is not None else FAILED, "error": error,
            "attempts": 0, "updated_at": utcnow()}


def insert_items(session: Session, rows: Sequence[dict]) -> None:
    """Insert rows, ignoring paths the job already has."""
    if rows:
        session.execute(_insert_ignoring_duplicates(session), list(rows))


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(MigrationItem).on_conflict_do_nothing(index_elements=["job_id", "path_hash"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(MigrationItem).on_conflict_do_nothing(index_elements=["job_id", "path_hash"])
    return insert(MigrationItem).prefix_with("IGNORE")  # MariaDB / MySQL


def reopen(session: Session, job_id: int, in_flight_too: bool) -> tuple[int, int]:
    """Back to pending: failed items that had a key, and (``in_flight_too``: when this process
    is alone on the job) items in flight when the last run died, without waiting for their lease.

    Returns (in flight, failed) counts.
    """
    in_flight = _to_pending(session, job_id, MigrationItem.status == COPYING) if in_flight_too else 0
    failed = _to_pending(session, job_id, and_(MigrationItem.status == FAILED, MigrationItem.dest_key != UNMAPPED))
    return in_flight, failed


def _to_pending(session: Session, job_id: int, condition) -> int:
    result = session.execute(update(MigrationItem).where(MigrationItem.job_id == job_id, condition)
                             .values(status=PENDING, lease_owner=None, lease_expires_at=None, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    return result.rowcount or 0


def claim(session: Session, job_id: int, limit: int, owner: str, until: dt.datetime, now: dt.datetime) -> list[Item]:
    """Up to ``limit`` items for ``owner``, leased until ``until``: first those whose owner's
    lease ran out (a dead process's), then pending ones in id order. Each is marked copying
    (attempts + 1). Rows another transaction is claiming are skipped, never waited for."""
    taken_over = _claimable(session, job_id, limit, and_(MigrationItem.status == COPYING,
                                                          MigrationItem.lease_expires_at < now))
    rows = taken_over + _claimable(session, job_id, limit - len(taken_over), MigrationItem.status == PENDING)
    if rows:
        session.execute(update(MigrationItem).where(MigrationItem.id.in_([r.id for r in rows]))
                        .values(status=COPYING, attempts=MigrationItem.attempts + 1, lease_owner=owner,
                                lease_expires_at=until, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
    return [Item(r.id, r.source_path, r.dest_key, r.size, r.attempts) for r in rows]


def _claimable(session: Session, job_id: int, limit: int, condition) -> list:
    if limit <= 0:
        return []
    return list(session.execute(
        select(MigrationItem.id, MigrationItem.source_path, MigrationItem.dest_key, MigrationItem.size,
               MigrationItem.attempts)
        .where(MigrationItem.job_id == job_id, condition)
        .order_by(MigrationItem.id).limit(limit).with_for_update(skip_locked=True)
    ).all())


def renew(session: Session, job_id: int, owner: str, until: dt.datetime) -> int:
    """Extend ``owner``'s leases on the items it is copying; returns how many it holds."""
    result = session.execute(update(MigrationItem).where(
        MigrationItem.job_id == job_id, MigrationItem.status == COPYING, MigrationItem.lease_owner == owner)
        .values(lease_expires_at=until).execution_options(synchronize_session=False))
    return result.rowcount or 0


def record(session: Session, outcomes: Sequence[dict]) -> None:
    """Write outcomes: dicts with id, status, size, md5, error, verified_at (all keys, every dict)
    and optionally recovered. The lease ends with the outcome.

    One executemany UPDATE by primary key (Core: the ORM's bulk path costs more per row).
    """
    if outcomes:
        table, now = MigrationItem.__table__, utcnow()
        statement = table.update().where(table.c.id == bindparam("item_id"))
        rows = [{"item_id": row["id"], "recovered": False, **{k: v for k, v in row.items() if k != "id"},
                 "lease_owner": None, "lease_expires_at": None, "updated_at": now} for row in outcomes]
        session.execute(statement, rows)


def release(session: Session, ids: Sequence[int]) -> None:
    """Claimed items that were never started go back to pending (their claim does not count)."""
    if ids:
        session.execute(update(MigrationItem).where(MigrationItem.id.in_(list(ids)))
                        .values(status=PENDING, attempts=MigrationItem.attempts - 1, lease_owner=None,
                                lease_expires_at=None, updated_at=utcnow())
                        .execution_options(synchronize_session=False))


def open_items(session: Session, job_id: int) -> int:
    """Items not finished yet: pending, or being copied by some process."""
    return session.scalar(select(func.count()).where(MigrationItem.job_id == job_id,
                                                     MigrationItem.status.in_((PENDING, COPYING)))) or 0


def count_items(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(MigrationItem.job_id == job_id)) or 0


def recovered_count(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(MigrationItem.job_id == job_id,
                                                     MigrationItem.recovered.is_(True))) or 0


def states(session: Session, job_id: int) -> dict[str, tuple[int, int]]:
    """status → (items, bytes) for the whole job."""
    rows = session.execute(
        select(MigrationItem.status, func.count(), func.coalesce(func.sum(MigrationItem.size), 0))
        .where(MigrationItem.job_id == job_id).group_by(MigrationItem.status))
    return {status: (count, int(size)) for status, count, size in rows}


def failure_groups(session: Session, job_id: int, limit: int = 20) -> list[tuple[str, int, str]]:
    """(reason, items, one example path) for failed items, most frequent first."""
    rows = session.execute(
        select(MigrationItem.error, func.count(), func.min(MigrationItem.source_path))
        .where(MigrationItem.job_id == job_id, MigrationItem.status == FAILED)
        .group_by(MigrationItem.error).order_by(func.count().desc()).limit(limit))
    return [(error or "unknown", count, example) for error, count, example in rows]


def done_items(session: Session, job_id: int, after_id: int, limit: int) -> list[MigrationItem]:
    """Copied or skipped items with ids above ``after_id``, in id order (for ``--verify``)."""
    return list(session.scalars(
        select(MigrationItem).where(MigrationItem.job_id == job_id, MigrationItem.id > after_id,
                                    MigrationItem.status.in_(DONE_STATES))
        .order_by(MigrationItem.id).limit(limit)))
