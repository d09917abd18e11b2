"""A simulated "remote MLS database": the vendor's own tables, reached with a SQLAlchemy URL.

``rets_property`` (one row per listing, primary key ``l_uid``) uses the vendor's column names and
codes: ``l_status`` A/U/P/S/C/W/X/K/H, ``l_type`` RE/RL/LN/CI/MF/FM/MH, and timestamps
(``lm_modified``, ``l_picts_modified``) as naive local times of the vendor's server, in
America/New_York. By default the database is a SQLite file, ``root/sql/mls.db``; ``SqlFeed(url)``
publishes into a PostgreSQL or MariaDB database instead (tests use that). There is no server to
start for SQLite: ``start`` only says where the database is.

With ``photos=True`` (``FEED``'s setting) the vendor also keeps its photos in the database:
``l_pictures`` (``l_uid``, ``seq`` from 1, ``picture`` BLOB / bytea / LONGBLOB, ``descr``,
``updated`` as a naive Eastern time), rendered by sandbox.photos at the listing's
``PhotoVersion``; the source reads them with the ``sql_blob`` image strategy. Rendering every
photo costs a few milliseconds each, which is why it is not the default for ad-hoc feeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column, DateTime, Double, Integer, LargeBinary, MetaData, Numeric, String, Table, Text, create_engine, delete,
    insert,
)
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.pool import NullPool

from sandbox.feeds import Running
from sandbox.photos import expected_photo, photo_bytes

VENDOR_ZONE = "America/New_York"
BATCH = 2000
PHOTO_BATCH = 100  # rows of image bytes per INSERT: a few MB

STATUS = {
    "Active": "A", "Active Under Contract": "U", "Pending": "P", "Closed": "S", "Coming Soon": "C",
    "Withdrawn": "W", "Expired": "X", "Canceled": "K", "Hold": "H",
}
TYPE = {
    "Residential": "RE", "Residential Lease": "RL", "Land": "LN", "Commercial Sale": "CI",
    "Residential Income": "MF", "Farm": "FM", "Manufactured In Park": "MH",
}
COLUMNS = {  # RESO name -> column of rets_property
    "ListingKey": "l_uid", "ListingId": "l_listingid", "StandardStatus": "l_status", "PropertyType": "l_type",
    "PropertySubType": "l_style", "ListPrice": "l_askingprice", "StreetNumber": "l_addressnumber",
    "StreetName": "l_addressstreet", "UnitNumber": "l_addressunit", "City": "l_city", "StateOrProvince": "l_state",
    "PostalCode": "l_zip", "CountyOrParish": "l_county", "BedroomsTotal": "lm_int_beds",
    "BathroomsTotalInteger": "lm_int_baths", "LivingArea": "lm_dec_sqft", "LotSizeAcres": "lm_dec_acres",
    "YearBuilt": "lm_int_yearbuilt", "Latitude": "lm_dec_lat", "Longitude": "lm_dec_lon",
    "PublicRemarks": "l_remarks", "ListAgentFullName": "la_name", "ListOfficeName": "lo_name",
    "PhotosCount": "l_pictcount", "PhotosChangeTimestamp": "l_picts_modified", "ModificationTimestamp": "lm_modified",
}

metadata = MetaData()
rets_property = Table(
    "rets_property", metadata,
    Column("l_uid", String(20), primary_key=True),
    Column("l_listingid", String(20), nullable=False),
    Column("l_status", String(2), nullable=False),
    Column("l_type", String(2), nullable=False),
    Column("l_style", String(40)),
    Column("l_askingprice", Numeric(14, 2, asdecimal=False)),
    Column("l_addressnumber", String(10)),
    Column("l_addressstreet", String(60)),
    Column("l_addressunit", String(10)),
    Column("l_city", String(60)),
    Column("l_state", String(2)),
    Column("l_zip", String(10)),
    Column("l_county", String(60)),
    Column("lm_int_beds", Integer),
    Column("lm_int_baths", Integer),
    Column("lm_dec_sqft", Numeric(10, 0, asdecimal=False)),
    Column("lm_dec_acres", Numeric(10, 2, asdecimal=False)),
    Column("lm_int_yearbuilt", Integer),
    Column("lm_dec_lat", Double),
    Column("lm_dec_lon", Double),
    Column("l_remarks", Text),
    Column("la_name", String(80)),
    Column("lo_name", String(80)),
    Column("l_pictcount", Integer),
    Column("l_picts_modified", DateTime),
    Column("lm_modified", DateTime, nullable=False, index=True),
)
l_pictures = Table(
    "l_pictures", metadata,
    Column("l_uid", String(20), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("picture", LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")),  # MySQL's BLOB stops at 64 KB
    Column("descr", String(80)),
    Column("updated", DateTime),
)
PHOTO_QUERY = ("SELECT seq AS n, picture AS data, descr AS caption, updated AS modified"
               " FROM l_pictures WHERE l_uid = :key")


class SqlFeed:
    """The vendor database: SQLite under ``root`` by default, or the database at ``url``;
    with ``photos``, its ``l_pictures`` table too."""

    kind = "sql"

    def __init__(self, url: str | None = None, photos: bool = False):
        self._url = url
        self.photos = photos

    def url(self, root: Path) -> str:
        """The SQLAlchemy URL of the vendor database."""
        return self._url or f"sqlite:///{Path(root).resolve() / 'sql' / 'mls.db'}"

    def publish(self, listings: Iterable[dict], root: Path) -> None:
        """Replace the rows of ``rets_property`` (and ``l_pictures``) with ``listings``, in one transaction."""
        if not self._url:
            (Path(root) / "sql").mkdir(parents=True, exist_ok=True)
        listings = list(listings)
        tables = [rets_property, l_pictures] if self.photos else [rets_property]
        engine = create_engine(self.url(root), poolclass=NullPool)
        try:
            metadata.create_all(engine, tables=tables)
            with engine.begin() as connection:
                for table in tables:
                    connection.execute(delete(table))
                for batch in _batches(map(_row, listings)):
                    connection.execute(insert(rets_property), batch)
                if self.photos:
                    for batch in _batches(_picture_rows(listings), PHOTO_BATCH):
                        connection.execute(insert(l_pictures), batch)
        finally:
            engine.dispose()

    def drop(self, root: Path) -> None:
        """Remove the vendor's tables (for tests that publish into a shared database)."""
        engine = create_engine(self.url(root), poolclass=NullPool)
        try:
            metadata.drop_all(engine)
        finally:
            engine.dispose()

    def start(self, root: Path) -> Running:
        """Nothing listens for SQLite; the Running says where the database is."""
        return Running(url=self.url(root), stop=lambda: None, details={"table": rets_property.name})

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table that reads the vendor's table incrementally on lm_modified."""
        columns = ", ".join(COLUMNS.values())
        return {
            "id": source_id,
            "name": f"Sandbox vendor database {source_id}",
            "timezone": VENDOR_ZONE,
            "download": {
                "kind": "sql", "url": running.url, "since_timezone": VENDOR_ZONE,
                "query": f"SELECT {columns} FROM rets_property WHERE lm_modified >= :since",
            },
            "parse": self._parse(),
            "fields": dict(COLUMNS),
            "values": {"StandardStatus": _inverse(STATUS), "PropertyType": _inverse(TYPE)},
            "images": self._images(running),
        }

    def _images(self, running: Running) -> dict:
        if not self.photos:
            return {"strategy": "none"}
        return {"strategy": "sql_blob", "url": running.url, "query": PHOTO_QUERY, "key_field": "ListingKey",
                "order_column": "n", "data_column": "data", "caption_column": "caption",
                "modified_column": "modified", "modified_timezone": VENDOR_ZONE}

    def _parse(self) -> dict:
        # SQLite has no datetime type: SQLAlchemy stored text, which comes back as it is
        if self._url:
            return {"format": "ndjson"}
        return {"format": "ndjson", "timestamp_format": "%Y-%m-%d %H:%M:%S.%f"}

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries, as the pipeline must store them."""
        stored = {name: listing.get(name) for name in COLUMNS}
        for name in ("ModificationTimestamp", "PhotosChangeTimestamp"):
            stored[name] = _from_local(_local(listing[name]))
        for name in ("ListPrice", "LivingArea", "LotSizeAcres"):
            stored[name] = Decimal(stored[name]) if stored[name] is not None else None
        return {name: value for name, value in stored.items() if value is not None}

    def expected_photos(self, listing: dict) -> list[dict]:
        """The listing's photos as the pipeline must store them (``corrupt`` ones rejected):
        sandbox.photos.expected_photo of 1..PhotosCount at its PhotoVersion; none without ``photos``."""
        if not self.photos:
            return []
        key, version = listing["ListingKey"], listing.get("PhotoVersion", 0)
        return [expected_photo(key, n, version) for n in range(1, (listing.get("PhotosCount") or 0) + 1)]


def _row(listing: dict) -> dict:
    row = {column: listing.get(name) for name, column in COLUMNS.items()}
    row.update(
        l_status=STATUS[listing["StandardStatus"]], l_type=TYPE[listing["PropertyType"]],
        lm_modified=_local(listing["ModificationTimestamp"]), l_picts_modified=_local(listing["PhotosChangeTimestamp"]),
    )
    for column in ("l_askingprice", "lm_dec_sqft", "lm_dec_acres"):
        row[column] = float(row[column]) if row[column] is not None else None
    return row


def _picture_rows(listings: Iterable[dict]) -> Iterator[dict]:
    """One row per photo, its bytes rendered at the listing's current photo version."""
    for listing in listings:
        key, version = listing["ListingKey"], listing.get("PhotoVersion", 0)
        updated = _local(listing["PhotosChangeTimestamp"])
        for n in range(1, (listing.get("PhotosCount") or 0) + 1):
            yield {"l_uid": key, "seq": n, "picture": photo_bytes(key, n, version), "descr": f"Photo {n}",
                   "updated": updated}


def _local(moment: dt.datetime) -> dt.datetime:
    """A UTC moment as the vendor's server writes it: naive, Eastern time."""
    return moment.astimezone(ZoneInfo(VENDOR_ZONE)).replace(tzinfo=None)


def _from_local(naive: dt.datetime) -> dt.datetime:
    return naive.replace(tzinfo=ZoneInfo(VENDOR_ZONE)).astimezone(dt.timezone.utc)


def _batches(rows: Iterator[dict], size: int = BATCH) -> Iterator[list[dict]]:
    while batch := list(islice(rows, size)):
        yield batch


def _inverse(mapping: dict[str, str]) -> dict[str, str]:
    return {theirs: ours for ours, theirs in mapping.items()}


FEED = SqlFeed(photos=True)
