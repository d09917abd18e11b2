"""An MLS with a JSON export behind HTTP, with ETag, Last-Modified and 304s.

The dialect, as a web-era vendor writes it: one document ``{"generatedAt": ..., "listings":
[...]}``, nested objects, lower-case status and type words, whole-dollar prices, numbers as
JSON numbers, times in UTC with a ``Z``::

    {"id": "482910375518", "mlsNumber": "DEN010000007", "status": "under_contract",
     "type": "residential", "subType": "Condominium", "price": {"amount": 389000, "currency": "USD"},
     "address": {"number": "1204", "street": "Palm Ct", "unit": null, "city": "Denver", ...},
     "geo": {"lat": 39.7392, "lon": -104.9903}, "details": {"beds": 2, ...}, ...}

Served at ``/listings.json`` (any file under ``root/http`` but hidden ones) to a Bearer token (or
HTTP Basic with ``auth="basic"``). ``running.details["faults"]`` makes the next answers fail on
purpose.

Photos: a record's ``photos.urls`` lists ``/photos/{id}/{n}.jpg`` for n in 1..count, paths on this
same server (its port is not known when the document is written). The server renders each photo
on request with sandbox.photos, at the listing's ``PhotoVersion`` as last published (an index
``.photos.json`` beside the document says which); ``running.details["stats"]["photos"]`` counts
the photos served.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hmac
import json
import os
import re
import shutil
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sandbox.feeds import Running
from sandbox.feeds._common import atomic_file, saved_port
from sandbox.photos import expected_photo, kind, photo_bytes

TIMEZONE = "America/Denver"
DOCUMENT = "listings.json"
PHOTO_INDEX = ".photos.json"
PHOTO_CACHE = ".photo-cache"  # rendered photos, {ListingKey}/{n}-v{version}.jpg: served like a static host
PHOTO_PATH = re.compile(r"/photos/([^/]+)/(\d+)\.jpg")
CONTENT_TYPES = {"png": "image/png"}  # corrupt photos still claim to be JPEGs

STATUS_WORDS = {
    "Active": "active", "Active Under Contract": "under_contract", "Pending": "pending", "Closed": "closed",
    "Coming Soon": "coming_soon", "Withdrawn": "withdrawn", "Expired": "expired", "Canceled": "canceled",
    "Hold": "hold",
}
TYPE_WORDS = {
    "Residential": "residential", "Residential Lease": "lease", "Land": "land", "Commercial Sale": "commercial",
    "Residential Income": "income", "Farm": "farm", "Manufactured In Park": "manufactured",
}
# RESO name -> dot path in a record
FIELDS = {
    "ListingKey": "id", "ListingId": "mlsNumber", "StandardStatus": "status", "PropertyType": "type",
    "PropertySubType": "subType", "ListPrice": "price.amount", "StreetNumber": "address.number",
    "StreetName": "address.street", "UnitNumber": "address.unit", "City": "address.city",
    "StateOrProvince": "address.state", "PostalCode": "address.zip", "CountyOrParish": "address.county",
    "Latitude": "geo.lat", "Longitude": "geo.lon", "BedroomsTotal": "details.beds",
    "BathroomsTotalInteger": "details.baths", "LivingArea": "details.livingArea",
    "LotSizeAcres": "details.lotAcres", "YearBuilt": "details.yearBuilt", "ListAgentFullName": "agent.name",
    "ListOfficeName": "office.name", "PublicRemarks": "remarks", "PhotosCount": "photos.count",
    "PhotosChangeTimestamp": "photos.updatedAt", "ModificationTimestamp": "updatedAt",
}
DECIMALS = {"ListPrice", "LivingArea", "LotSizeAcres"}
TIMES = {"PhotosChangeTimestamp", "ModificationTimestamp"}


class HttpFeed:
    """The HTTP MLS. ``auth`` is "bearer" (``token``) or "basic" (``username``/``password``)."""

    kind = "http"

    def __init__(self, *, auth: str = "bearer", token: str = "http-token-3", username: str = "mlsapi",
                 password: str = "http-secret-3"):
        if auth not in ("bearer", "basic"):
            raise ValueError(f"auth must be bearer or basic, not {auth!r}")
        self.auth, self.token, self.username, self.password = auth, token, username, password

    def publish(self, listings: Iterable[dict], root: Path, *, mtime: dt.datetime | None = None) -> Path:
        """Rewrite ``root/http/listings.json``, one listing at a time (never all in memory)."""
        path = Path(root) / "http" / DOCUMENT
        generated = dt.datetime.now(dt.timezone.utc)
        index: dict[str, list[int]] = {}
        with atomic_file(path, mtime) as out:
            out.write(f'{{"generatedAt": "{_utc(generated)}", "listings": ['.encode())
            for n, listing in enumerate(listings):
                out.write((",\n" if n else "\n").encode() + json.dumps(_record(listing)).encode())
                index[listing["ListingKey"]] = [listing.get("PhotosCount") or 0, listing.get("PhotoVersion", 0)]
            out.write(b"\n]}\n")
        with atomic_file(path.parent / PHOTO_INDEX) as out:
            out.write(json.dumps(index).encode())
        return path

    def start(self, root: Path) -> Running:
        """A threading HTTP server on 127.0.0.1, a free port, serving ``root/http``."""
        directory = Path(root) / "http"
        directory.mkdir(parents=True, exist_ok=True)
        faults, stats = Faults(), Counter()
        handler = type("SandboxHTTPHandler", (_Handler,), {
            "directory": directory, "faults": faults, "authorized": self._authorized,
            "photos": _PhotoIndex(directory / PHOTO_INDEX, directory / PHOTO_CACHE), "stats": stats,
        })
        server = ThreadingHTTPServer(("127.0.0.1", saved_port(root, "http")), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="sandbox-http", daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        details = {"host": host, "port": port, "faults": faults, "stats": stats, "token": self.token,
                   "username": self.username, "password": self.password, "directory": directory}
        return Running(f"http://{host}:{port}", _stopper(server, thread), details)

    def _authorized(self, header: str | None) -> bool:
        if self.auth == "bearer":
            expected = f"Bearer {self.token}"
        else:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table for this feed."""
        credentials = ({"token": self.token} if self.auth == "bearer"
                       else {"username": self.username, "password": self.password})
        return {
            "id": source_id, "name": f"Sandbox HTTP MLS ({source_id})", "timezone": TIMEZONE,
            "earliest_download": "01:45",
            "download": {"kind": "http", "url": f"{running.url}/{DOCUMENT}", **credentials},
            "parse": {"format": "json", "record_path": "listings"},
            "fields": dict(FIELDS),
            "values": {"StandardStatus": _inverse(STATUS_WORDS), "PropertyType": _inverse(TYPE_WORDS)},
            "images": {"strategy": "http", "template": f"{running.url}/photos/{{ListingKey}}/{{n}}.jpg", **credentials},
        }

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries, as the pipeline must store them.

        Decimal fields sent as JSON numbers are expected as ``Decimal(str(number))``.
        """
        record = _record(listing)
        return {reso: _expected_value(reso, _at(record, path)) for reso, path in FIELDS.items()}

    def expected_photos(self, listing: dict) -> list[dict]:
        """The listing's photos as the pipeline must store them (``corrupt`` ones rejected)."""
        version = listing.get("PhotoVersion", 0)
        count = listing.get("PhotosCount") or 0
        return [expected_photo(listing["ListingKey"], n, version) for n in range(1, count + 1)]


class Faults:
    """Answers to give instead of the real ones, to the next requests (for retry and error tests)."""

    def __init__(self) -> None:
        self._queue: deque[tuple[int, dict[str, str]]] = deque()
        self._lock = threading.Lock()

    def fail_next(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``headers``), before any auth."""
        with self._lock:
            self._queue.extend([(status, dict(headers or {}))] * times)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None


class _PhotoIndex:
    """Each listing's photo count and version as last published, re-read when the file changes."""

    def __init__(self, path: Path, cache: Path):
        self.path, self.cache = path, cache
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._entries: dict[str, list[int]] = {}

    def photo(self, key: str, n: int) -> bytes | None:
        """Photo ``n`` of listing ``key`` as published, or None when it has no such photo.

        Rendered once, then read from the cache folder: later requests cost what a static
        photo host's do, not a JPEG encoding."""
        count, version = self._read().get(key, (0, 0))
        if not 1 <= n <= count:
            return None
        cached = self.cache / key / f"{n}-v{version}.jpg"
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            data = photo_bytes(key, n, version)
        with atomic_file(cached) as out:
            out.write(data)
        return data

    def content_type(self, key: str, n: int) -> str:
        _, version = self._read().get(key, (0, 0))
        return CONTENT_TYPES.get(kind(key, n, version), "image/jpeg")

    def _read(self) -> dict[str, list[int]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        with self._lock:
            if self._seen != (stat.st_mtime_ns, stat.st_size, stat.st_ino):
                self._entries = json.loads(self.path.read_text(encoding="utf-8"))
                self._seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            return self._entries


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    directory: Path
    faults: Faults
    authorized: Callable[[str | None], bool]
    photos: _PhotoIndex
    stats: Counter

    def do_HEAD(self) -> None:  # noqa: N802 (the stdlib's name)
        """Photos only (what rclone asks before it copies a file); the same headers as GET."""
        if not type(self).authorized(self.headers.get("Authorization")):
            return self._empty(401)
        if match := PHOTO_PATH.fullmatch(unquote(self.path.split("?", 1)[0])):
            return self._send_photo(match[1], int(match[2]), head=True)
        self._empty(404)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        fault = self.faults.take()
        if fault:
            return self._empty(*fault)
        if not type(self).authorized(self.headers.get("Authorization")):
            return self._empty(401, {"WWW-Authenticate": 'Bearer realm="mls", Basic realm="mls"'})
        if match := PHOTO_PATH.fullmatch(unquote(self.path.split("?", 1)[0])):
            return self._send_photo(match[1], int(match[2]))
        path = self._file()
        if path is None:
            return self._empty(404)
        self._send_file(path)

    def _file(self) -> Path | None:
        relative = unquote(self.path.split("?", 1)[0]).lstrip("/")
        path = (self.directory / relative).resolve()
        inside = path.is_relative_to(self.directory.resolve())
        hidden = any(part.startswith(".") for part in Path(relative).parts)
        return path if inside and not hidden and path.is_file() else None

    def _send_photo(self, key: str, n: int, head: bool = False) -> None:
        body = self.photos.photo(key, n)
        if body is None:
            return self._empty(404)
        self.stats["photos"] += not head
        self.send_response(200)
        self.send_header("Content-Type", self.photos.content_type(key, n))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, path: Path) -> None:
        with open(path, "rb") as source:
            info = os.fstat(source.fileno())
            etag, modified = f'"{info.st_size:x}-{info.st_mtime_ns:x}"', int(info.st_mtime)
            validators = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True)}
            if self._not_modified(etag, modified):
                return self._empty(304, validators)
            self.send_response(200)
            for name, value in {**validators, "Content-Type": _content_type(path),
                                "Content-Length": str(info.st_size)}.items():
                self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(source, self.wfile, 1 << 16)

    def _not_modified(self, etag: str, modified: int) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
            return etag in tags or "*" in tags
        since = _http_date(self.headers.get("If-Modified-Since"))
        return since is not None and modified <= since

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests read the answers, not the access log


def _record(listing: dict) -> dict:
    get = listing.get
    return {
        "id": get("ListingKey"), "mlsNumber": get("ListingId"), "status": STATUS_WORDS[get("StandardStatus")],
        "type": TYPE_WORDS[get("PropertyType")], "subType": get("PropertySubType"),
        "price": {"amount": _whole(get("ListPrice")), "currency": "USD"},
        "address": {"number": get("StreetNumber"), "street": get("StreetName"), "unit": get("UnitNumber"),
                    "city": get("City"), "state": get("StateOrProvince"), "zip": get("PostalCode"),
                    "county": get("CountyOrParish")},
        "geo": {"lat": get("Latitude"), "lon": get("Longitude")},
        "details": {"beds": get("BedroomsTotal"), "baths": get("BathroomsTotalInteger"),
                    "livingArea": _whole(get("LivingArea")), "lotAcres": _float(get("LotSizeAcres")),
                    "yearBuilt": get("YearBuilt")},
        "agent": {"name": get("ListAgentFullName")}, "office": {"name": get("ListOfficeName")},
        "remarks": get("PublicRemarks"),
        "photos": {"count": get("PhotosCount"), "updatedAt": _utc(get("PhotosChangeTimestamp")),
                   "urls": [f"/photos/{get('ListingKey')}/{n}.jpg" for n in range(1, (get("PhotosCount") or 0) + 1)]},
        "updatedAt": _utc(get("ModificationTimestamp")),
    }


def _whole(value: Any) -> int | None:
    return None if value is None else int(Decimal(value).quantize(Decimal(1)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _utc(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(record: dict, path: str) -> Any:
    for part in path.split("."):
        record = record.get(part) if isinstance(record, dict) else None
    return record


def _expected_value(reso: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if reso == "StandardStatus":
        return _inverse(STATUS_WORDS)[value]
    if reso == "PropertyType":
        return _inverse(TYPE_WORDS)[value]
    if reso in TIMES:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return Decimal(str(value)) if reso in DECIMALS else value


def _inverse(words: dict[str, str]) -> dict[str, str]:
    return {word: name for name, word in words.items()}


def _content_type(path: Path) -> str:
    return {".json": "application/json", ".gz": "application/gzip"}.get(path.suffix, "application/octet-stream")


def _http_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None


def _stopper(server: ThreadingHTTPServer, thread: threading.Thread) -> Callable[[], None]:
    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return stop


FEED = HttpFeed()
