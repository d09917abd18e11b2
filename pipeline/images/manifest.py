"""The migration manifest: ``migration_jobs`` and ``migration_items``, and what may change them.

One job per (source URL, destination URL); one item per archive file, inserted in batches
while the archive is listed (``INSERT ... ON CONFLICT DO NOTHING`` on the path hash, so listing
again after a crash adds only what is new). Item states::

    pending ──claim──▶ copying ──▶ copied | skipped | failed
       ▲                  │
       └── next run ──────┘   (copying at start-up = in flight when the last run died;
                               failed = worth another try, unless the path had no key)

``attempts`` counts claims, so a pending item with ``attempts > 0`` was tried before and must
be checked against the destination before it is copied (the probe does that for every item).
The session is always a parameter; callers commit.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, and_, bindparam, func, insert, select, text, update
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
                    .values(listed_complete=True, status="copying", updated_at=utcnow()))


def set_job_status(session: Session, job_id: int, status: str, finished: bool = False) -> None:
    values = {"status": status, "updated_at": utcnow()}
    if finished:
        values["finished_at"] = utcnow()
    session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(**values))


@contextmanager
def exclusive(engine: Engine, job_id: int) -> Iterator[None]:
    """Hold a lock that only one process can hold per job, released even by kill -9.

    PostgreSQL: a session advisory lock; MariaDB/MySQL: GET_LOCK; SQLite: flock on a file beside
    the database. Two processes copying one job would each upload what the other claimed.
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        with _file_lock(Path(engine.url.database or "mlsfeeds.db"), job_id):
            yield
        return
    postgres = backend == "postgresql"
    lock, unlock = (("SELECT pg_try_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)") if postgres
                    else ("SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)"))
    key = {"k": 0x6D6C7300000000 + job_id if postgres else f"mlsfeeds-migrate-{job_id}"}
    with engine.connect() as conn:
        acquired = conn.execute(text(lock), key).scalar()
        conn.commit()  # the lock is the session's: no transaction needs to stay open for it
        if not acquired:
            raise ManifestConflict(f"migration job {job_id} is being run by another process")
        try:
            yield  # held while this connection lives: a killed process's connection drops it
        finally:
            conn.execute(text(unlock), key)
            conn.commit()


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


def reopen(session: Session, job_id: int) -> tuple[int, int]:
    """Back to pending: items in flight when the last run died, and failed items that had a key.

    Returns (in flight, failed) counts.
    """
    in_flight = _to_pending(session, job_id, MigrationItem.status == COPYING)
    failed = _to_pending(session, job_id, and_(MigrationItem.status == FAILED, MigrationItem.dest_key != UNMAPPED))
    return in_flight, failed


def _to_pending(session: Session, job_id: int, condition) -> int:
    result = session.execute(update(MigrationItem).where(MigrationItem.job_id == job_id, condition)
                             .values(status=PENDING, updated_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount or 0


def claim(session: Session, job_id: int, limit: int) -> list[Item]:
    """The next ``limit`` pending items in id order, marked copying (attempts + 1)."""
    rows = session.execute(
        select(MigrationItem.id, MigrationItem.source_path, MigrationItem.dest_key, MigrationItem.size,
               MigrationItem.attempts)
        .where(MigrationItem.job_id == job_id, MigrationItem.status == PENDING)
        .order_by(MigrationItem.id).limit(limit)
    ).all()
    if rows:
        session.execute(update(MigrationItem).where(MigrationItem.id.in_([r.id for r in rows]))
                        .values(status=COPYING, attempts=MigrationItem.attempts + 1, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
    return [Item(r.id, r.source_path, r.dest_key, r.size, r.attempts) for r in rows]


def record(session: Session, outcomes: Sequence[dict]) -> None:
    """Write outcomes: dicts with id, status, size, md5, error, verified_at (all keys, every dict).

    One executemany UPDATE by primary key (Core: the ORM's bulk path costs more per row).
    """
    if outcomes:
        table, now = MigrationItem.__table__, utcnow()
        statement = table.update().where(table.c.id == bindparam("item_id"))
        rows = [{"item_id": row["id"], **{k: v for k, v in row.items() if k != "id"}, "updated_at": now}
                for row in outcomes]
        session.execute(statement, rows)


def release(session: Session, ids: Sequence[int]) -> None:
    """Claimed items that were never started go back to pending (their claim does not count)."""
    if ids:
        session.execute(update(MigrationItem).where(MigrationItem.id.in_(list(ids)))
                        .values(status=PENDING, attempts=MigrationItem.attempts - 1, updated_at=utcnow())
                        .execution_options(synchronize_session=False))


def count_items(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(MigrationItem.job_id == job_id)) or 0


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
