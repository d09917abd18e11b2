"""The database: sources, their runs, listings and media, SOAP clients, caches.

Column names are the snake_case forms of RESO Data Dictionary names; the SOAP service puts the
RESO names back on the wire.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.types import BigId, UTCDateTime, generation_start, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Source(Base):
    """An MLS feed: where it comes from, when it may be pulled, how it is read."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    earliest_download: Mapped[dt.time] = mapped_column(Time, default=dt.time(2, 0))
    repeat_every_seconds: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    download: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parse: Mapped[dict[str, Any]] = mapped_column(default=dict)
    images: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A full run that would remove more than this share of the active listings holds the
    # removals for an operator instead (0.1 = 10 %; 1 never holds).
    max_removed_share: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")
    # What the connector left after the last successful download (ETag, files seen...).
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bumped by database triggers whenever a listing of this source is inserted, deleted or has a
    # column that searches filter on or return changed (migration 0006): a search count or
    # answer cached under a value is never stale.
    # It starts at a time in microseconds, so a source deleted and created again never repeats
    # a value its predecessor had.
    data_generation: Mapped[int] = mapped_column(BigId, default=generation_start, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    runs: Mapped[list[FeedRun]] = relationship(back_populates="source", passive_deletes=True)


class FeedRun(Base):
    """One pull of one source: its step, lease, counts, and the images-ready flag."""

    __tablename__ = "feed_runs"
    __table_args__ = (
        # One run per slot: two balancers ticking at once cannot both start the day's run.
        UniqueConstraint("source_id", "business_date", "slot"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "source_id", "business_date"),
        Index(None, "images_ready"),
        # A source's latest run (and latest success) found by an index probe, not a scan of its history.
        Index(None, "source_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    business_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16), default="full")  # full | incremental
    slot: Mapped[str] = mapped_column(String(32), default="full")  # "full", or "inc-HHMM" local time
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed
    step: Mapped[str] = mapped_column(String(16), default="download")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    window_start: Mapped[dt.datetime | None]  # incremental: ModificationTimestamp lower bound
    window_end: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    step_timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bytes_downloaded: Mapped[int] = mapped_column(BigId, default=0)
    rows_parsed: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_inserted: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_removed: Mapped[int] = mapped_column(Integer, default=0)
    rows_geocoded: Mapped[int] = mapped_column(Integer, default=0)
    photos_fetched: Mapped[int] = mapped_column(Integer, default=0)
    photos_stored: Mapped[int] = mapped_column(Integer, default=0)
    photos_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    photos_removed: Mapped[int] = mapped_column(Integer, default=0)
    photos_failed: Mapped[int] = mapped_column(Integer, default=0)
    photos_linked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # by URL, not stored
    photo_bytes: Mapped[int] = mapped_column(BigId, default=0)
    raw_keys: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)
    # What an operator should know about a run that succeeded: an incomplete feed (nothing
    # removed), removals held, their release.
    warning: Mapped[str | None] = mapped_column(Text)
    removals_held: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    removals_released_at: Mapped[dt.datetime | None]
    images_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    images_ready_at: Mapped[dt.datetime | None]
    images_reset_at: Mapped[dt.datetime | None]
    images_attempt: Mapped[int] = mapped_column(Integer, default=0)
    images_next_attempt_at: Mapped[dt.datetime | None]
    images_error: Mapped[str | None] = mapped_column(Text)
    # The source's active listings when the run finished: the status page draws them over time.
    listings_active: Mapped[int | None] = mapped_column(Integer)

    source: Mapped[Source] = relationship(back_populates="runs")


class HeldRemoval(Base):
    """A listing a full run would have removed, held because the run would remove too many.

    Pending while the row exists: ``mlsfeeds run SOURCE --release-removals`` removes those held
    listings that are still absent and deletes the rows; a later full run that decides its own
    removals makes them moot (it deletes them too).
    """

    __tablename__ = "held_removals"

    run_id: Mapped[int] = mapped_column(ForeignKey("feed_runs.id", ondelete="CASCADE"), primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)


class FeedReject(Base):
    """A record that could not be mapped: kept with its reason for an operator to read."""

    __tablename__ = "feed_rejects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("feed_runs.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)  # record number (or line) in the payload
    # The listing the record is about, when its key could be read: a full run keeps that
    # listing rather than removing it as missing (it was in the feed, only unreadable).
    listing_key: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ListingCount(Base):
    """How many listings a source has per status, removed or not, kept by database triggers.

    Migration 0010 maintains it in the transaction that writes ``listings`` (every writer: the
    loader, removals, a seed, an operator's SQL), so metrics and the status page read a few
    hundred rows where counting the listings would read a million. ``standard_status`` is ''
    for listings without one.
    """

    __tablename__ = "listing_counts"

    # No foreign key: the triggers write here while a source's deletion cascades to its listings.
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    standard_status: Mapped[str] = mapped_column(String(32), primary_key=True)
    removed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    listings: Mapped[int] = mapped_column(BigId, default=0)


class PhotoCount(Base):
    """A source's photos: ``stored`` in our object store, ``linked`` by URL; kept by triggers on
    ``media`` (and on ``listings``, whose deletion takes its photos along), as ListingCount is."""

    __tablename__ = "photo_counts"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stored: Mapped[int] = mapped_column(BigId, default=0)
    linked: Mapped[int] = mapped_column(BigId, default=0)


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        UniqueConstraint("source_id", "listing_key"),
        Index(None, "source_id", "standard_status"),
        Index(None, "postal_code"),
        # City searches, in the two orders a listing page asks for most (see service/search.py).
        Index(None, "city_key", "list_price", "id"),
        Index(None, "city_key", "modification_timestamp", "id"),
        # The search orders: (column, id) lets a page stop after its own rows (service/search.py).
        # Entitlement, removal and the coordinates ride along: a count over a price or time range,
        # and a page walked in that order through an area, read the index alone.
        Index("ix_listings_price_order", "list_price", "id", "source_id", "removed_at", "latitude", "longitude"),
        Index("ix_listings_time_order", "modification_timestamp", "id", "source_id", "removed_at", "latitude",
              "longitude"),
        Index(None, "listing_key", "id"),
        # The usual search (status, type, price; entitlement by source) counted from the index alone.
        Index("ix_listings_search_count", "standard_status", "property_type", "list_price", "source_id", "removed_at"),
        # Areas (boxes, radii): the coordinates, the sort values and what every search tests,
        # so a page is chosen from the index alone and only its own rows are read.
        Index("ix_listings_area", "latitude", "longitude", "list_price", "modification_timestamp", "id",
              "source_id", "removed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    listing_key: Mapped[str] = mapped_column(String(128))
    listing_id: Mapped[str | None] = mapped_column(String(64))
    standard_status: Mapped[str | None] = mapped_column(String(32))
    property_type: Mapped[str | None] = mapped_column(String(64))
    property_sub_type: Mapped[str | None] = mapped_column(String(64))
    list_price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    bedrooms_total: Mapped[int | None] = mapped_column(Integer)
    bathrooms_total_integer: Mapped[int | None] = mapped_column(Integer)
    living_area: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    lot_size_acres: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    year_built: Mapped[int | None] = mapped_column(Integer)
    unparsed_address: Mapped[str | None] = mapped_column(String(255))
    street_number: Mapped[str | None] = mapped_column(String(32))
    street_name: Mapped[str | None] = mapped_column(String(128))
    unit_number: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(128))
    # The city as searches match it (core.reso.city_key): case and spacing folded the same way
    # on every database, which lower() is not (SQLite's folds ASCII only).
    city_key: Mapped[str | None] = mapped_column(String(128))
    state_or_province: Mapped[str | None] = mapped_column(String(32))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    county_or_parish: Mapped[str | None] = mapped_column(String(128))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    geocode_precision: Mapped[str | None] = mapped_column(String(16))  # source|address|zip|none
    public_remarks: Mapped[str | None] = mapped_column(Text)
    list_agent_full_name: Mapped[str | None] = mapped_column(String(128))
    list_office_name: Mapped[str | None] = mapped_column(String(128))
    photos_count: Mapped[int] = mapped_column(Integer, default=0)
    photos_change_timestamp: Mapped[dt.datetime | None]
    # The PhotosChangeTimestamp its photos were last fetched for: equal means nothing to fetch.
    photos_synced_at: Mapped[dt.datetime | None]
    modification_timestamp: Mapped[dt.datetime | None]
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None]
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Hash of the mapped record as last loaded: an unchanged record costs no UPDATE.
    record_hash: Mapped[str | None] = mapped_column(String(32))

    media: Mapped[list[Media]] = relationship(
        back_populates="listing", order_by="Media.order", passive_deletes=True
    )


class Media(Base):
    """A photo of a listing: hosted by the MLS (``url``) or stored by us (``storage_key``)."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("listing_id", "order"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    order: Mapped[int] = mapped_column(Integer)
    media_key: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(String(1024))
    storage_key: Mapped[str | None] = mapped_column(String(512))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    caption: Mapped[str | None] = mapped_column(String(255))
    modification_timestamp: Mapped[dt.datetime | None]

    listing: Mapped[Listing] = relationship(back_populates="media")


class Client(Base):
    """A SOAP consumer. ``consumer`` sees its entitled sources; ``operator`` sees all."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="consumer")
    password_hash: Mapped[str] = mapped_column(String(255))
    # The password sealed with the service secret: WS-Security PasswordDigest needs the
    # plain text to recompute SHA1(nonce + created + password). Never returned anywhere.
    password_sealed: Mapped[str | None] = mapped_column(Text)
    all_sources: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    sources: Mapped[list[ClientSource]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class ClientSource(Base):
    __tablename__ = "client_sources"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[str] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )


class GeocodeCache(Base):
    __tablename__ = "geocode_cache"

    address: Mapped[str] = mapped_column(String(255), primary_key=True)  # normalized
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    precision: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WsNonce(Base):
    """WS-Security nonces seen within the Created window: a replay finds its row here.

    Kept in the database, not in memory, so a replay sent to another gunicorn worker or
    another host behind the balancer is refused too.
    """

    __tablename__ = "ws_nonces"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)  # sha256(user, nonce)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class MigrationJob(Base):
    """``mlsfeeds images migrate SRC DEST``: one archive move, resumable from its items."""

    __tablename__ = "migration_jobs"
    __table_args__ = (UniqueConstraint("source_url", "dest_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_url: Mapped[str] = mapped_column(String(512))
    dest_url: Mapped[str] = mapped_column(String(512))
    key_mapping: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="listing")  # listing|copying|done
    listed_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    # The process listing the archive into the manifest, and until when its lease holds: one
    # lister at a time; another takes over when the lease runs out (a dead lister).
    lister: Mapped[str | None] = mapped_column(String(64))
    lister_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None]


class MigrationItem(Base):
    """One file of a migration: where it comes from, where it goes, and how far it got."""

    __tablename__ = "migration_items"
    __table_args__ = (
        UniqueConstraint("job_id", "path_hash"),
        Index(None, "job_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("migration_jobs.id", ondelete="CASCADE"))
    path_hash: Mapped[str] = mapped_column(String(40))  # sha1 of source_path: indexable at any length
    source_path: Mapped[str] = mapped_column(Text)
    dest_key: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigId)
    md5: Mapped[str | None] = mapped_column(String(32))
    # pending | copying (claimed by lease_owner until lease_expires_at; any process takes it
    # over after that) | copied | skipped | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None]
    # copied by a process that died before recording it; found at the destination, not sent again
    recovered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
