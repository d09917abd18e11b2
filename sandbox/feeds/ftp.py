"""An MLS that publishes a pipe-delimited, Latin-1 flat file on an FTP (or FTPS) server.

The dialect, as old MLS exports write it: a header row, ``|`` between fields, CRLF line ends,
no quoting, one-letter status codes, short property-type codes, whole-dollar prices, 5-decimal
coordinates and local times as ``MM/DD/YYYY HH:MM:SS`` (America/New_York), e.g.::

    SYSID|MLS_NUM|STATUS|PROP_TYPE|SUB_TYPE|LIST_PRICE|ADDR|CITY|STATE|ZIP|COUNTY|BEDS|...
    482910375518|NAP010000007|A|RES|Condominium|389000|1204 Palm Ct, Naples, FL 34102|...

A full file is published per day (``listings_full_YYYYMMDD.txt``); change files
(``listings_incr_YYYYMMDDHHMMSS.txt``) carry only the listings changed since.

Photos are files beside it, ``/photos/{ListingId}_{n}.jpg`` for n in 1..PhotosCount, rendered by
sandbox.photos at the listing's ``PhotoVersion`` (a few are PNGs under a .jpg name, a few are
corrupt, as on real MLS servers). ``publish`` rewrites only the files whose listing, number or
version changed, and deletes those of photos no longer published.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.feeds import Running
from sandbox.feeds._common import (atomic_file, business_day, from_local_text, local_text, saved_port,
                                   self_signed_certificate)
from sandbox.photos import expected_photo, photo_bytes

TIMEZONE = "America/New_York"
TIME_FORMAT = "%m/%d/%Y %H:%M:%S"
ENCODING = "latin-1"
FULL_PATTERN = "listings_full_*.txt"
INCREMENTAL_PATTERN = "listings_incr_*.txt"
PHOTO_DIRECTORY = "photos"
PHOTO_PATTERN = "{ListingId}_{n}.jpg"

STATUS_CODES = {
    "Active": "A", "Active Under Contract": "U", "Pending": "P", "Closed": "S", "Coming Soon": "CS",
    "Withdrawn": "W", "Expired": "X", "Canceled": "C", "Hold": "H",
}
TYPE_CODES = {
    "Residential": "RES", "Residential Lease": "RNT", "Land": "LND", "Commercial Sale": "COM",
    "Residential Income": "MUL", "Farm": "FRM", "Manufactured In Park": "MH",
}
# column -> RESO name; the order is the file's.
COLUMNS = {
    "SYSID": "ListingKey", "MLS_NUM": "ListingId", "STATUS": "StandardStatus", "PROP_TYPE": "PropertyType",
    "SUB_TYPE": "PropertySubType", "LIST_PRICE": "ListPrice", "ADDR": "UnparsedAddress", "CITY": "City",
    "STATE": "StateOrProvince", "ZIP": "PostalCode", "COUNTY": "CountyOrParish", "BEDS": "BedroomsTotal",
    "BATHS": "BathroomsTotalInteger", "SQFT": "LivingArea", "ACRES": "LotSizeAcres", "YR_BUILT": "YearBuilt",
    "LAT": "Latitude", "LNG": "Longitude", "AGENT": "ListAgentFullName", "OFFICE": "ListOfficeName",
    "REMARKS": "PublicRemarks", "PHOTO_CNT": "PhotosCount", "PHOTO_MOD": "PhotosChangeTimestamp",
    "MOD_DATE": "ModificationTimestamp",
}
TEXT = {"ListingKey", "ListingId", "PropertySubType", "UnparsedAddress", "City", "StateOrProvince", "PostalCode",
        "CountyOrParish", "ListAgentFullName", "ListOfficeName", "PublicRemarks"}
INTEGERS = {"BedroomsTotal", "BathroomsTotalInteger", "YearBuilt", "PhotosCount"}
TIMES = {"PhotosChangeTimestamp", "ModificationTimestamp"}


class FtpFeed:
    """The FTP MLS. ``tls=True`` plays an FTPS server (explicit TLS, needs pyOpenSSL);
    ``mlsd=False`` plays an old server without MLSD, listed with NLST, SIZE and MDTM;
    ``max_logins=N`` a server that lets N connections in at once and refuses the next, as
    ProFTPD does at login (``cap_reply="530"``) or as vsftpd and pyftpdlib do on connecting
    (``"421"``)."""

    kind = "ftp"

    def __init__(self, *, tls: bool = False, mlsd: bool = True, username: str = "mlsuser",
                 password: str = "ftp-secret-1", max_logins: int | None = None, cap_reply: str = "530"):
        if cap_reply not in ("421", "530"):
            raise ValueError(f"cap_reply must be '421' or '530', got {cap_reply!r}")
        self.tls, self.mlsd = tls, mlsd
        self.username, self.password = username, password
        self.max_logins, self.cap_reply = max_logins, cap_reply

    # -- files ---------------------------------------------------------------------------------

    def publish(self, listings: Iterable[dict], root: Path, *, day: dt.date | None = None,
                mtime: dt.datetime | None = None) -> Path:
        """Write the day's full file (today in the MLS's time zone unless ``day`` is given)."""
        day = day or business_day(TIMEZONE)
        listings = list(listings)
        _photo_files(root).publish(listings)
        return self._write(Path(root) / "ftp" / f"listings_full_{day:%Y%m%d}.txt", listings, mtime)

    def publish_incremental(self, listings: Iterable[dict], root: Path, *, at: dt.datetime | None = None) -> Path:
        """Write a change file holding only ``listings`` (and their photos), named after ``at`` (now by default)."""
        at = at or dt.datetime.now(dt.timezone.utc)
        stamp = local_text(at, TIMEZONE, "%Y%m%d%H%M%S")
        listings = list(listings)
        _photo_files(root).publish(listings, prune=False)
        return self._write(Path(root) / "ftp" / f"listings_incr_{stamp}.txt", listings, at)

    def _write(self, path: Path, listings: Iterable[dict], mtime: dt.datetime | None) -> Path:
        with atomic_file(path, mtime) as out:
            out.write(_line(COLUMNS))
            for listing in listings:
                out.write(_line(_row(listing)))
        return path

    # -- server --------------------------------------------------------------------------------

    def start(self, root: Path) -> Running:
        """pyftpdlib's threaded server on 127.0.0.1, a free port, serving ``root/ftp``."""
        from pyftpdlib.servers import ThreadedFTPServer

        _quiet(logging.getLogger("pyftpdlib"))
        directory = Path(root) / "ftp"
        directory.mkdir(parents=True, exist_ok=True)
        details: dict[str, Any] = {"username": self.username, "password": self.password, "directory": directory}
        address = ("127.0.0.1", saved_port(root, "ftp"))
        server = ThreadedFTPServer(address, self._handler(directory, Path(root), details))
        if self.max_logins is not None and self.cap_reply == "421":
            server.max_cons_per_ip = self.max_logins
        host, port = server.address[:2]
        stop = _serve_in_thread(server)
        scheme = "ftps" if self.tls else "ftp"
        return Running(f"{scheme}://{host}:{port}", stop, {**details, "host": host, "port": port})

    def _handler(self, directory: Path, root: Path, details: dict[str, Any]) -> type:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler

        authorizer = DummyAuthorizer()
        authorizer.add_user(self.username, self.password, str(directory), perm="elr")
        # A wrong password is answered after 0.2 s, not pyftpdlib's 3 s: tests try it often.
        attributes: dict[str, Any] = {"authorizer": authorizer, "banner": "Sandbox MLS FTP ready.",
                                      "auth_failed_timeout": 0.2}
        if not self.mlsd:
            attributes["proto_cmds"] = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")}
        bases: tuple[type, ...] = ()
        if self.max_logins is not None and self.cap_reply == "530":
            bases, details["logins"] = (_LoginCap,), _Logins(self.max_logins)
            attributes["logins"] = details["logins"]
        if not self.tls:
            return type("SandboxFTPHandler", (*bases, FTPHandler), attributes)
        from pyftpdlib.handlers import TLS_FTPHandler

        cert, key = self_signed_certificate(root / "tls")
        details["ca_file"] = str(cert)
        attributes.update(certfile=str(cert), keyfile=str(key), ssl_context=None,
                          tls_control_required=True, tls_data_required=True)
        return type("SandboxFTPSHandler", (*bases, TLS_FTPHandler), attributes)

    # -- how our pipeline must read it ---------------------------------------------------------

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table for this feed."""
        download = {
            "kind": "ftps" if self.tls else "ftp", "host": running.details["host"],
            "port": running.details["port"], "username": self.username, "password": self.password,
            "directory": "/", "pattern": FULL_PATTERN, "incremental_pattern": INCREMENTAL_PATTERN,
            "newest_first": True, "max_files": 1,
        }
        images = {"strategy": "ftp", "protocol": download["kind"], "host": running.details["host"],
                  "port": running.details["port"], "username": self.username, "password": self.password,
                  "directory": f"/{PHOTO_DIRECTORY}", "pattern": PHOTO_PATTERN}
        if self.tls:
            download["ca_file"] = images["ca_file"] = running.details["ca_file"]
        return {
            "id": source_id, "name": f"Sandbox FTP MLS ({source_id})", "timezone": TIMEZONE,
            "earliest_download": "02:30", "download": download,
            "parse": {"format": "delimited", "delimiter": "|", "encoding": ENCODING, "header": True,
                      "timestamp_format": TIME_FORMAT},
            "fields": {reso: column for column, reso in COLUMNS.items()},
            "values": {"StandardStatus": _inverse(STATUS_CODES), "PropertyType": _inverse(TYPE_CODES)},
            "images": images,
        }

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries, as the pipeline must store them."""
        return {reso: _expected_value(reso, text) for reso, text in zip(COLUMNS.values(), _row(listing))}

    def expected_photos(self, listing: dict) -> list[dict]:
        """The listing's photos as the pipeline must store them (``corrupt`` ones rejected)."""
        return listing_photos(listing)


def listing_photos(listing: dict) -> list[dict]:
    """``expected_photo`` of photos 1..PhotosCount of a listing, at its PhotoVersion."""
    version = listing.get("PhotoVersion", 0)
    return [expected_photo(listing["ListingKey"], n, version) for n in range(1, (listing.get("PhotosCount") or 0) + 1)]


class PhotoFiles:
    """Photo files named by a pattern in one folder, rendered by sandbox.photos.

    A manifest outside the folder (so no server lists it) remembers which listing, number and
    version each file holds, so a new ``publish`` rewrites only what changed.
    """

    def __init__(self, directory: Path, manifest: Path, pattern: str = PHOTO_PATTERN):
        self.directory, self.manifest, self.pattern = directory, manifest, pattern

    def publish(self, listings: Iterable[dict], *, prune: bool = True) -> int:
        """Write the listings' photos; with ``prune``, delete files no longer published. Returns files written."""
        before = self._load()
        after = {} if prune else dict(before)
        written = 0
        for listing in listings:
            for name, (key, n, version) in self._photos(listing):
                after[name] = [key, n, version]
                if before.get(name) != [key, n, version] or not (self.directory / name).exists():
                    with atomic_file(self.directory / name) as out:
                        out.write(photo_bytes(key, n, version))
                    written += 1
        for name in before.keys() - after.keys():
            (self.directory / name).unlink(missing_ok=True)
        self._save(after)
        return written

    def _photos(self, listing: dict) -> list[tuple[str, tuple[str, int, int]]]:
        version = listing.get("PhotoVersion", 0)
        return [(self.pattern.format_map({**listing, "n": n, "n0": n - 1}), (listing["ListingKey"], n, version))
                for n in range(1, (listing.get("PhotosCount") or 0) + 1)]

    def _load(self) -> dict[str, list]:
        try:
            return json.loads(self.manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, entries: dict[str, list]) -> None:
        with atomic_file(self.manifest) as out:
            out.write(json.dumps(entries, sort_keys=True).encode())


def _photo_files(root: Path) -> PhotoFiles:
    return PhotoFiles(Path(root) / "ftp" / PHOTO_DIRECTORY, Path(root) / ".ftp-photos.json")


def _row(listing: dict) -> list[str]:
    return [_render(reso, listing.get(reso)) for reso in COLUMNS.values()]


def _render(reso: str, value: Any) -> str:
    if value is None:
        return ""
    if reso == "StandardStatus":
        return STATUS_CODES[value]
    if reso == "PropertyType":
        return TYPE_CODES[value]
    if reso in TIMES:
        return local_text(value, TIMEZONE, TIME_FORMAT)
    return _render_number(reso, value) if reso not in TEXT else _clean(str(value))


def _render_number(reso: str, value: Any) -> str:
    if reso in ("ListPrice", "LivingArea"):
        return str(Decimal(value).quantize(Decimal(1)))
    if reso == "LotSizeAcres":
        return str(Decimal(value).quantize(Decimal("0.01")))
    if reso in ("Latitude", "Longitude"):
        return f"{value:.5f}"
    return str(int(value))


def _clean(text: str) -> str:
    """What survives the format: no delimiter, quote or line break, Latin-1 only."""
    for bad, good in (("|", "/"), ('"', "'"), ("\r", " "), ("\n", " ")):
        text = text.replace(bad, good)
    return text.encode(ENCODING, "replace").decode(ENCODING)


def _expected_value(reso: str, text: str) -> Any:
    if text == "":
        return None
    if reso == "StandardStatus":
        return _inverse(STATUS_CODES)[text]
    if reso == "PropertyType":
        return _inverse(TYPE_CODES)[text]
    if reso in TIMES:
        return from_local_text(text, TIMEZONE, TIME_FORMAT)
    if reso in TEXT:
        return text
    if reso in INTEGERS:
        return int(text)
    return float(text) if reso in ("Latitude", "Longitude") else Decimal(text)


def _line(fields: Iterable[str]) -> bytes:
    return ("|".join(fields) + "\r\n").encode(ENCODING)


def _inverse(codes: dict[str, str]) -> dict[str, str]:
    return {code: name for name, code in codes.items()}


class _Logins:
    """How many are logged in, against the cap; the most seen at once (for tests)."""

    def __init__(self, cap: int):
        self.cap, self.now, self.most, self.refused = cap, 0, 0, 0
        self.lock = threading.Lock()


class _LoginCap:
    """A pyftpdlib handler mixin: the login past ``logins.cap`` is refused as ProFTPD's
    MaxClientsPerUser refuses it, and the connection closed."""

    logins: _Logins
    counted = False

    def handle_auth_success(self, home, password, msg_login):
        with self.logins.lock:
            allowed = self.logins.now < self.logins.cap
            if allowed:
                self.logins.now += 1
                self.logins.most = max(self.logins.most, self.logins.now)
            else:
                self.logins.refused += 1
        if not allowed:
            self.respond(f"530 Sorry, the maximum number of clients ({self.logins.cap}) for this user are already "
                         "connected.")
            self.close_when_done()
            return
        self.counted = True
        super().handle_auth_success(home, password, msg_login)

    def on_disconnect(self):
        if self.counted:
            self.counted = False
            with self.logins.lock:
                self.logins.now -= 1
        super().on_disconnect()


def _quiet(logger: logging.Logger) -> None:
    """Keep pyftpdlib from configuring logging to stderr at INFO (it does when nothing is set)."""
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.WARNING)


def _serve_in_thread(server) -> Callable[[], None]:
    """Run pyftpdlib's loop in a daemon thread; return a function that stops it."""
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=loop, name="sandbox-ftp", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=10)

    return stop


FEED = FtpFeed()
