"""Fingerprints of seeded data: what ``mlsfeeds sandbox seed`` wrote, down to the stored bytes.

The digests read the rows back through the driver without SQLAlchemy's type processing, so a
value stored differently (a float where a string was, another datetime format, ``{}`` as
JSON text or as a number) changes the digest even when the ORM would read both alike.
``first_seen``/``last_seen`` hold the time of the seeding itself and are left out; the test
checks them separately. The column lists are fixed here so that a column added later does
not silently move the golden values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import create_engine

LISTING_COLUMNS = (
    "id", "source_id", "listing_key", "listing_id", "standard_status", "property_type",
    "property_sub_type", "list_price", "bedrooms_total", "bathrooms_total_integer", "living_area",
    "lot_size_acres", "year_built", "unparsed_address", "street_number", "street_name",
    "unit_number", "city", "state_or_province", "postal_code", "county_or_parish", "latitude",
    "longitude", "geocode_precision", "public_remarks", "list_agent_full_name", "list_office_name",
    "photos_count", "photos_change_timestamp", "photos_synced_at", "modification_timestamp",
    "removed_at", "extra", "record_hash",
)
MEDIA_COLUMNS = (
    "id", "listing_id", '"order"', "media_key", "url", "storage_key", "content_hash",
    "content_type", "bytes", "width", "height", "caption", "modification_timestamp",
)


def database_digest(url: str) -> str:
    """sha256 over every listing and media row as the driver returns them, in id order."""
    engine = create_engine(url)
    digest = hashlib.sha256()
    try:
        with engine.connect() as conn:
            for table, columns in (("listings", LISTING_COLUMNS), ("media", MEDIA_COLUMNS)):
                rows = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
                _feed(digest, table, rows)
    finally:
        engine.dispose()
    return digest.hexdigest()


def generator_digest(records: Iterable[dict]) -> str:
    """sha256 over the generator's records: every key, in order, and every value's repr."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(repr(list(record.items())).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _feed(digest, table: str, rows) -> None:
    digest.update(table.encode())
    for row in rows:
        # repr keeps the stored type visible: 1230.0 and '1230.00' and Decimal('1230.00') differ.
        digest.update(repr(tuple(row)).encode())
        digest.update(b"\n")
