"""The image job: claims runs whose images-ready flag is set, runs the source's strategy over
the listings the run touched, records counts, and resets the flag.

For every listing: photos are fetched only when its PhotosChangeTimestamp moved (when the
source says so); each fetched image is sniffed and measured, a corrupt one is rejected and
counted; an image whose content hash is unchanged is not uploaded again; a replaced or
dropped photo's old object is deleted. Photos of listings removed from their feed are deleted
after a grace period. A failed photo never fails the listing data; a failing source makes the
job retry with backoff, like any step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.models import FeedRun, Listing, Media, Source
from core.storage import ObjectStore
from pipeline import records
from pipeline.balancer import describe
from pipeline.clock import db_now
from pipeline.errors import PipelineError
from pipeline.images import ListingPhotos, Photo, strategy_for
from pipeline.images.sniff import ImageInfo, NotAnImage, sniff
from pipeline.spec import resolve_secrets

log = logging.getLogger(__name__)
BATCH = 200  # listings fetched per pool
APPLY = 25   # listings recorded per transaction


@dataclass
class PhotoCounts:
    fetched: int = 0
    stored: int = 0
    linked: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)

    def failed_because(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 20:
            self.failures.append(reason)


@dataclass
class Prepared:
    """A photo after the worker thread is done with it: sniffed, hashed, uploaded if new."""

    photo: Photo
    info: ImageInfo | None = None
    digest: str | None = None
    uploaded_key: str | None = None
    corrupt: bool = False


@dataclass
class _Changes:
    """What recording a group of listings collects: media rows to insert, objects to delete."""

    inserts: list[dict] = field(default_factory=list)
    obsolete: list[str] = field(default_factory=list)


@dataclass
class ImagePolicy:
    lease_seconds: int = 900
    max_attempts: int = 5
    backoff_seconds: int = 300
    threads: int = 8
    grace: dt.timedelta = dt.timedelta(days=7)


class ImageJob:
    def __init__(self, sessions: sessionmaker[Session], store: ObjectStore, environ, worker: str,
                 policy: ImagePolicy | None = None, on_done=lambda run, message: None):
        self.sessions = sessions
        self.store = store
        self.environ = environ
        self.worker = worker
        self.policy = policy or ImagePolicy()
        self.on_done = on_done

    def run_pending(self, should_stop=lambda: False) -> list[str]:
        done = []
        while not should_stop() and (run_id := self.claim()) is not None:
            done.append(self.process(run_id))
        return done

    # -- claiming ----------------------------------------------------------------------------------

    def claim(self, run_id: int | None = None) -> int | None:
        with self.sessions() as session:
            now = db_now(session)
            conditions = [
                FeedRun.images_ready.is_(True),
                or_(FeedRun.lease_expires_at.is_(None), FeedRun.lease_expires_at < now),
                or_(FeedRun.images_next_attempt_at.is_(None), FeedRun.images_next_attempt_at <= now),
            ]
            if run_id is not None:
                conditions.append(FeedRun.id == run_id)
            candidate = session.scalar(select(FeedRun.id).where(*conditions).order_by(FeedRun.id).limit(1)
                                       .with_for_update(skip_locked=True))
            if candidate is None:
                return None
            taken = session.execute(
                update(FeedRun).where(FeedRun.id == candidate,
                                      or_(FeedRun.lease_expires_at.is_(None), FeedRun.lease_expires_at < now))
                .values(lease_owner=self.worker, lease_expires_at=now + dt.timedelta(seconds=self.policy.lease_seconds))
            ).rowcount
            session.commit()
            return candidate if taken == 1 else None

    # -- processing --------------------------------------------------------------------------------

    def process(self, run_id: int) -> str:
        with self.sessions() as session:
            run = session.get(FeedRun, run_id)
            source = session.get(Source, run.source_id)
            images = resolve_secrets(source.images or {}, self.environ, f"source {source.id!r}")
            run_started, parsed_key, source_id = run.started_at, (run.raw_keys or {}).get("parsed"), source.id
        try:
            counts = self._photos(source_id, images, run_started, parsed_key)
        except Exception as exc:  # the outermost loop of the job: record, classify, retry later
            return self._failed(run_id, exc)
        return self._succeeded(run_id, counts)

    def _photos(self, source_id: str, images: dict, run_started, parsed_key: str | None) -> PhotoCounts:
        counts = PhotoCounts()
        name = images.get("strategy", "none")
        if name != "none" and parsed_key:
            strategy = strategy_for(name)
            with _Sources(strategy, images, self.environ) as sources, \
                    ThreadPoolExecutor(self.policy.threads) as pool:
                for batch in _batches(self._wanted(source_id, run_started, parsed_key), BATCH):
                    self._batch(pool, sources, strategy.stores, batch, counts)
        counts.removed += self._expire_removed(source_id)
        return counts

    def _wanted(self, source_id: str, run_started, parsed_key: str) -> Iterator[ListingPhotos]:
        """Listings of the run whose photos may have changed, with their mapped records."""
        with self.store.open(parsed_key) as stream:
            for chunk in _batches(records.load_all(stream), 500):
                rows = self._rows(source_id, [r["ListingKey"] for r in chunk])
                for record in chunk:
                    row = rows.get(record["ListingKey"])
                    if row is None or row.removed_at is not None:
                        continue
                    if row.photos_change_timestamp is not None and row.photos_change_timestamp == row.photos_synced_at:
                        continue  # the source says its photos did not change since we fetched them
                    # A count the feed does not give is unknown to the strategy (ours is derived).
                    count = (row.photos_count or 0) if "PhotosCount" in record else 0
                    yield ListingPhotos(row.id, source_id, row.listing_key, row.listing_id, count, record)

    def _rows(self, source_id: str, keys: list[str]) -> dict[str, Listing]:
        with self.sessions() as session:
            return {r.listing_key: r for r in session.scalars(
                select(Listing).where(Listing.source_id == source_id, Listing.listing_key.in_(keys)))}

    def _batch(self, pool: ThreadPoolExecutor, sources: "_Sources", stores: bool, batch: list[ListingPhotos],
               counts: PhotoCounts) -> None:
        """Fetch, check and upload in the pool's threads; record in this one, ``APPLY`` listings
        per transaction. The threads never touch the database: what they compare against (the
        stored hashes) is read for the whole batch first."""
        existing = self._existing_hashes([listing.id for listing in batch]) if stores else {}

        def fetch(listing: ListingPhotos) -> tuple[ListingPhotos, list[Prepared]]:
            photos = sources.get().photos(listing)
            return listing, [self._prepare_one(p, listing, existing.get(listing.id, {})) for p in photos]

        for done in _batches(pool.map(fetch, batch), APPLY):
            self._apply(done, counts)

    def _prepare_one(self, photo: Photo, listing: ListingPhotos, existing: dict[int, str]) -> Prepared:
        """Sniff, measure, hash and upload (when changed), in the worker thread."""
        if photo.data is None:
            return Prepared(photo)
        try:
            info = sniff(photo.data)
        except NotAnImage as exc:
            # What the source serves is broken: counted, and not fetched again until it changes.
            return Prepared(Photo(photo.order, error=f"{listing.listing_key} #{photo.order}: {exc}"), corrupt=True)
        digest = hashlib.sha256(photo.data).hexdigest()
        if existing.get(photo.order) == digest:
            return Prepared(photo, info, digest)
        key = photo_key(listing, photo.order, digest, info.extension)
        self.store.put_bytes(key, photo.data, info.content_type)
        return Prepared(photo, info, digest, key)

    def _existing_hashes(self, listing_ids: list[int]) -> dict[int, dict[int, str]]:
        """{listing id: {order: content hash}} of the stored photos of these listings."""
        found: dict[int, dict[int, str]] = {}
        with self.sessions() as session:
            for listing_id, order, digest in session.execute(
                    select(Media.listing_id, Media.order, Media.content_hash).where(Media.listing_id.in_(listing_ids))):
                found.setdefault(listing_id, {})[order] = digest
        return found

    def _apply(self, done: list[tuple[ListingPhotos, list[Prepared]]], counts: PhotoCounts) -> None:
        """Bring these listings' media rows in step with their photos, in one transaction;
        delete objects no longer used."""
        changes = _Changes()
        with self.sessions() as session:
            current: dict[int, dict[int, Media]] = {}
            for media in session.scalars(select(Media).where(Media.listing_id.in_([l.id for l, _ in done]))):
                current.setdefault(media.listing_id, {})[media.order] = media
            synced = [listing.id for listing, photos in done
                      if self._apply_listing(session, listing, photos, current.get(listing.id, {}), counts, changes)]
            if changes.inserts:  # Core executemany: ORM objects for thousands of new rows cost more than the photos
                session.execute(insert(Media), changes.inserts)
            if synced:
                session.execute(update(Listing).where(Listing.id.in_(synced))
                                .values(photos_synced_at=Listing.photos_change_timestamp)
                                .execution_options(synchronize_session=False))
            if uncounted := [listing.id for listing, _ in done if "PhotosCount" not in listing.record]:
                # The feed does not say: a listing's count is the photos it has.
                session.flush()
                session.execute(update(Listing).where(Listing.id.in_(uncounted)).values(
                    photos_count=select(func.count()).where(Media.listing_id == Listing.id).scalar_subquery())
                    .execution_options(synchronize_session=False))
            session.commit()
        counts.removed += self.store.delete(changes.obsolete) if changes.obsolete else 0

    def _apply_listing(self, session, listing: ListingPhotos, photos: list[Prepared], current: dict[int, Media],
                       counts: PhotoCounts, changes: "_Changes") -> bool:
        """One listing's rows; True when all its photos could be had (it is in sync)."""
        for prepared in photos:
            self._apply_one(session, listing, prepared, current.pop(prepared.photo.order, None), counts, changes)
        for leftover in current.values():
            if leftover.storage_key:
                changes.obsolete.append(leftover.storage_key)
            session.delete(leftover)
        return not any(p.photo.error and not p.corrupt for p in photos)  # a fetch may succeed next time

    def _apply_one(self, session, listing, prepared: Prepared, row: Media | None, counts, changes) -> None:
        obsolete = changes.obsolete
        photo = prepared.photo
        if photo.error:
            counts.failed_because(photo.error)
            if prepared.corrupt and row is not None:
                # The source now serves garbage at this position: the old image is no longer its photo.
                if row.storage_key:
                    obsolete.append(row.storage_key)
                session.delete(row)
            return  # after a failed fetch, the photo we had stays rather than being lost
        if photo.url is not None:
            counts.linked += 1
            values = dict(url=photo.url, storage_key=None, content_hash=None, content_type=None,
                          bytes=None, width=None, height=None)
        else:
            counts.fetched += 1
            if prepared.uploaded_key is None and row is not None:
                counts.unchanged += 1
                return
            counts.stored += 1
            counts.bytes += len(photo.data)
            if row is not None and row.storage_key and row.storage_key != prepared.uploaded_key:
                obsolete.append(row.storage_key)
            info = prepared.info
            values = dict(url=None, storage_key=prepared.uploaded_key, content_hash=prepared.digest,
                          content_type=info.content_type, bytes=len(photo.data), width=info.width, height=info.height)
        values.update(media_key=photo.media_key, caption=photo.caption, modification_timestamp=photo.modified)
        if row is None:
            changes.inserts.append(dict(listing_id=listing.id, order=photo.order, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)

    def _expire_removed(self, source_id: str) -> int:
        """Photos of listings removed longer ago than the grace period: objects and rows go."""
        with self.sessions() as session:
            cutoff = db_now(session) - self.policy.grace
            expired = select(Listing.id).where(Listing.source_id == source_id, Listing.removed_at < cutoff)
            keys = list(session.scalars(select(Media.storage_key).where(Media.listing_id.in_(expired),
                                                                      Media.storage_key.is_not(None))))
            session.execute(delete(Media).where(Media.listing_id.in_(expired)))
            session.commit()
        return self.store.delete(keys) if keys else 0

    # -- outcomes ----------------------------------------------------------------------------------

    def _succeeded(self, run_id: int, counts: PhotoCounts) -> str:
        with self.sessions() as session:
            run = session.get(FeedRun, run_id)
            now = db_now(session)
            run.photos_fetched, run.photos_stored, run.photos_unchanged = counts.fetched, counts.stored, counts.unchanged
            run.photos_removed, run.photos_failed, run.photo_bytes = counts.removed, counts.failed, counts.bytes
            run.photos_linked = counts.linked
            run.images_ready, run.images_reset_at, run.images_attempt = False, now, 0
            run.images_next_attempt_at = None
            run.images_error = "; ".join(counts.failures[:5]) or None
            run.lease_owner = run.lease_expires_at = None
            session.commit()
            message = (f"{counts.stored} stored, {counts.linked} linked, {counts.unchanged} unchanged, "
                       f"{counts.removed} removed, {counts.failed} failed")
            self.on_done(run, message)
            return f"{run.source_id}#{run.id} photos: {message}"

    def _failed(self, run_id: int, exc: Exception) -> str:
        with self.sessions() as session:
            run = session.get(FeedRun, run_id)
            now = db_now(session)
            run.images_attempt += 1
            transient = getattr(exc, "transient", not isinstance(exc, PipelineError))
            if transient and run.images_attempt < self.policy.max_attempts:
                wait = self.policy.backoff_seconds * 2 ** (run.images_attempt - 1)
                run.images_next_attempt_at = now + dt.timedelta(seconds=wait)
                run.images_error = f"photos: attempt {run.images_attempt} failed: {describe(exc)}"
            else:
                run.images_ready, run.images_reset_at = False, now  # given up: the flag comes down
                run.images_error = f"photos failed: {describe(exc)}"
            run.lease_owner = run.lease_expires_at = None
            session.commit()
            self.on_done(run, run.images_error)
            return f"{run.source_id}#{run.id} {run.images_error}"


class _Sources:
    """The job's PhotoSources: one shared by every thread when the strategy says ``shared`` (a
    RETS login), else one per thread; each opened when first needed, all closed with the job."""

    def __init__(self, strategy, images: dict, environ):
        self._strategy, self._images, self._environ = strategy, images, environ
        self._shared = getattr(strategy, "shared", False)
        self._local = threading.local()
        self._one = None
        self._failure: Exception | None = None  # a shared source that would not open: not tried again
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def get(self):
        if self._shared:
            with self._lock:
                if self._failure is not None:
                    raise self._failure
                if self._one is None:
                    try:
                        self._one = self._stack.enter_context(self._strategy.open(self._images, self._environ))
                    except Exception as exc:  # one refused login fails the job once, not per listing
                        self._failure = exc
                        raise
                return self._one
        if not hasattr(self._local, "source"):
            with self._lock:  # the stack is shared; each thread's connections are its own
                self._local.source = self._stack.enter_context(self._strategy.open(self._images, self._environ))
        return self._local.source

    def __enter__(self) -> "_Sources":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


def photo_key(listing: ListingPhotos, order: int, digest: str, extension: str) -> str:
    return f"photos/{listing.source_id}/{listing.listing_key}/{order}-{digest[:8]}.{extension}"


def _batches(items, size: int):
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
