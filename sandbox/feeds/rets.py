"""A local RETS 1.7.2 server playing an MLS with a Matrix-like dialect.

It speaks the protocol as production servers do, quirks included: HTTP Digest (or Basic)
authentication on every request, a ``RETS-Session-ID`` cookie, capability URLs in the login
reply (relative ones), COMPACT and COMPACT-DECODED search replies with ``Limit``/``Offset`` paging,
``<MAXROWS/>`` and ``Count``, COMPACT metadata, GetObject ``multipart/parallel`` replies (a single
object when only one is asked for or found) with each part's ``Content-ID``, ``Object-ID`` and
``Content-Description``, a 20403 part (or reply) for a listing without photos, ``Location=1``
URLs, and Logout. The photos are sandbox.photos' (JPEGs, some PNGs, a few corrupt ones, all sent
as the listing's photos are), rendered on request at the listing's ``PhotoVersion``.

The dialect: the ``Property`` resource, class ``RES``, key field ``matrix_unique_id``; field names
of its own (``MLSNumber``, ``Status``, ``ZipCode``, ``Beds``, ``SqFtTotal``, ``LastChangeTimestamp``
...), lookup codes (Status ``A`` = Active), timestamps in the server's local time
(America/New_York) without a zone.

Switches, on ``Controls`` (``running.details["controls"]``, changeable while it runs):
``auth`` ("digest" or "basic"), ``ua_password`` (check RETS-UA-Authorization),
``fail_status`` (answer every request with this HTTP status), ``search_reply`` (answer every
Search with this RETS reply code), ``reject_after_login`` (HTTP 401 to every transaction after
login), and the quirks below. ``stats`` counts what was asked (``challenged`` and
``challenged <transaction>``: the 401 challenges sent).

Quirks, the habits of real servers (``QUIRKS``), are Controls fields too, and can also be set in
``root/rets/quirks.json`` (``sandbox.feeds._common.write_quirks``; the file wins), which the
running server re-reads: a server in another process (``mlsfeeds sandbox serve``) takes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import os
import re
import secrets
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit
from urllib.request import parse_http_list, parse_keqv_list
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from sandbox import photos
from sandbox.feeds import Running
from sandbox.feeds._common import Quirks, write_quirks, saved_port

SERVER_TIMEZONE = "America/New_York"
USERNAME = "sandbox"
PASSWORD = "sandbox-rets-password"
USER_AGENT = "mlsfeeds-sandbox/1.0"
UA_PASSWORD = "sandbox-ua-secret"
REALM = "sandbox-rets@127.0.0.1"
RESOURCE, CLASS, KEY_FIELD = "Property", "RES", "matrix_unique_id"
DATASET = Path("rets") / "listings.json"
LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"
PHOTO_VERSION = "_photo_version"  # kept in a published row beside the fields; never sent


@dataclass(frozen=True)
class Field:
    """One field of the dialect: its RETS system name, the RESO name it carries, its type."""

    name: str
    reso: str
    data_type: str = "Character"
    lookup: str | None = None


FIELDS = (
    Field("matrix_unique_id", "ListingKey"),
    Field("MLSNumber", "ListingId"),
    Field("Status", "StandardStatus", lookup="Status"),
    Field("PropertyType", "PropertyType", lookup="PropertyType"),
    Field("PropertySubType", "PropertySubType"),
    Field("ListPrice", "ListPrice", "Decimal"),
    Field("Beds", "BedroomsTotal", "Int"),
    Field("BathsFull", "BathroomsTotalInteger", "Int"),
    Field("SqFtTotal", "LivingArea", "Decimal"),
    Field("Acres", "LotSizeAcres", "Decimal"),
    Field("YearBuilt", "YearBuilt", "Int"),
    Field("StreetNumber", "StreetNumber"),
    Field("StreetName", "StreetName"),
    Field("UnitNumber", "UnitNumber"),
    Field("City", "City"),
    Field("State", "StateOrProvince"),
    Field("ZipCode", "PostalCode"),
    Field("County", "CountyOrParish"),
    Field("Latitude", "Latitude", "Decimal"),
    Field("Longitude", "Longitude", "Decimal"),
    Field("Remarks", "PublicRemarks"),
    Field("ListAgentName", "ListAgentFullName"),
    Field("ListOfficeName", "ListOfficeName"),
    Field("PhotoCount", "PhotosCount", "Int"),
    Field("PhotoModificationTimestamp", "PhotosChangeTimestamp", "DateTime"),
    Field("LastChangeTimestamp", "ModificationTimestamp", "DateTime"),
)
BY_NAME = {f.name: f for f in FIELDS}
LOOKUPS = {
    "Status": {"A": "Active", "P": "Pending", "U": "Active Under Contract", "S": "Closed", "C": "Coming Soon",
               "W": "Withdrawn", "X": "Expired", "K": "Canceled", "H": "Hold"},
    "PropertyType": {"RES": "Residential", "RNT": "Residential Lease", "LND": "Land", "COM": "Commercial Sale",
                     "RIN": "Residential Income", "FRM": "Farm", "MAN": "Manufactured In Park"},
}
CODES = {lookup: {long: code for code, long in values.items()} for lookup, values in LOOKUPS.items()}


QUIRKS = {
    "refuse_offset": 'None, "error" (reply 20203 to Offset) or "ignore" (send the first page again)',
    "expire_after": "a session ends after this many transactions (reply 20701)",
    "max_rows": "the server's own cap on rows per Search reply",
    "delay": "seconds to wait before answering a Search",
    "end_feed_after": "a Search gives no more than this many rows in all: a page is cut there (MAXROWS still "
                      "said, COUNT still true) and any Offset past it answers 20201, as a recorded server did",
    "location_bytes": "with Location=1, each part still carries the photo's bytes",
    "duplicate_object_ids": "every multipart reply repeats its first part's Object-ID on a part of other bytes",
    "xml_links": 'with Location=1, each part is an XML <RETS ReplyCode="0"/> body with the Location header',
    "caption_header": 'the header that carries a photo\'s caption ("Content-Description", or "Description")',
    "object_data": "each part carries two ObjectData headers (RETS 1.8)",
    "error_content_type": "the Content-Type of a whole GetObject error reply (e.g. image/jpeg)",
    "error_chunk_size": "send whole GetObject error replies chunked (Transfer-Encoding) in chunks of this size",
    "metadata_format": '"COMPACT" or "STANDARD-XML": what GetMetadata answers, whatever was asked',
    "info_lines": "the login reply carries this many Info= lines (RETS 1.8)",
}


@dataclass
class Controls:
    """How the server behaves; tests change these while it runs (the quirks: see ``QUIRKS``)."""

    auth: str = "digest"
    username: str = USERNAME
    password: str = PASSWORD
    ua_password: str | None = UA_PASSWORD
    refuse_offset: str | None = None
    expire_after: int | None = None
    max_rows: int = 10_000
    fail_status: int | None = None
    search_reply: int | None = None
    reject_after_login: bool = False
    delay: float = 0.0
    end_feed_after: int | None = None
    location_bytes: bool = False
    duplicate_object_ids: bool = False
    xml_links: bool = False
    caption_header: str = "Content-Description"
    object_data: bool = False
    error_content_type: str = "text/xml"
    error_chunk_size: int | None = None
    metadata_format: str = "COMPACT"
    info_lines: int = 0
    stats: Counter = field(default_factory=Counter)


# -- the data set -------------------------------------------------------------------------------

def publish(listings, root: Path) -> Path:
    """Write the listings, in this server's dialect, where the running server reads them."""
    path = Path(root) / DATASET
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [_dialect_row(listing) for listing in listings]
    scratch = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    scratch.write_text(json.dumps({"rows": rows}), encoding="utf-8")
    os.replace(scratch, path)
    return path


def _dialect_row(listing: dict) -> dict[str, str]:
    row = {PHOTO_VERSION: str(listing.get("PhotoVersion", 0))}
    for f in FIELDS:
        value = listing.get(f.reso)
        row[f.name] = CODES[f.lookup][value] if f.lookup and value is not None else _text(f, value)
    return row


def _text(f: Field, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(ZoneInfo(SERVER_TIMEZONE)).strftime(LOCAL_FORMAT)
    if f.name == "ListPrice":
        return f"{Decimal(value):.2f}"
    return str(value)


class _Dataset:
    """The published rows, re-read whenever the file changes (so a running server sees updates)."""

    def __init__(self, root: Path):
        self.path = Path(root) / DATASET
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._rows: list[dict[str, str]] = []

    def rows(self) -> list[dict[str, str]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        with self._lock:
            if self._seen != (stat.st_mtime_ns, stat.st_size, stat.st_ino):
                self._rows = json.loads(self.path.read_text(encoding="utf-8"))["rows"]
                self._rows.sort(key=lambda row: row[KEY_FIELD])
                self._seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            return self._rows

    def by_key(self, key: str) -> dict[str, str] | None:
        return next((row for row in self.rows() if row[KEY_FIELD] == key), None)


# -- DMQL2 ----------------------------------------------------------------------------------------

class DmqlError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


Predicate = Callable[[dict[str, str]], bool]
_DATE = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?Z?"
_NUMBER = r"-?\d+(?:\.\d+)?"


def parse_dmql(query: str) -> Predicate:
    """A predicate over rows for a DMQL2 query: ``(F=v)``, ``(F=v+)``, ``(F=v-)``, ``(F=a-b)``,
    ``(F=|A,B)``, ``(F=~A,B)``, ``(F=x*)``, value lists, ``,``/AND, ``|``/OR, ``~``/NOT, nesting."""
    parser = _DmqlParser(query.strip())
    predicate = parser.disjunction()
    if parser.pos != len(parser.text):
        raise DmqlError(20206, f"Invalid Query Syntax near {parser.text[parser.pos:][:20]!r}")
    return predicate


class _DmqlParser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self._take("|") or self._take(" OR "):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda row: any(t(row) for t in terms))

    def conjunction(self) -> Predicate:
        terms = [self.element()]
        while self._take(",") or self._take(" AND "):
            terms.append(self.element())
        return terms[0] if len(terms) == 1 else (lambda row: all(t(row) for t in terms))

    def element(self) -> Predicate:
        if self._take("~") or self._take("NOT "):
            inner = self.element()
            return lambda row: not inner(row)
        if not self._take("("):
            raise DmqlError(20206, f"Invalid Query Syntax: expected '(' at {self.pos}")
        if self.text[self.pos:self.pos + 1] in ("(", "~"):
            predicate = self.disjunction()
        else:
            predicate = self._criterion()
        if not self._take(")"):
            raise DmqlError(20206, f"Invalid Query Syntax: expected ')' at {self.pos}")
        return predicate

    def _criterion(self) -> Predicate:
        end = self.text.find(")", self.pos)
        name, sep, values = self.text[self.pos:end if end >= 0 else len(self.text)].partition("=")
        if not sep or end < 0:
            raise DmqlError(20206, f"Invalid Query Syntax: no field=value at {self.pos}")
        self.pos = end
        if name.strip() not in BY_NAME:
            raise DmqlError(20200, f"Unknown Query Field {name.strip()}")
        return _criterion(BY_NAME[name.strip()], values.strip())

    def _take(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False


def _criterion(f: Field, values: str) -> Predicate:
    if values[:1] in ("|", "~") and f.lookup:
        codes = set(values[1:].split(","))
        return (lambda row: row[f.name] in codes) if values[0] == "|" else (lambda row: row[f.name] not in codes)
    tests = [_item(f, item.strip()) for item in values.split(",") if item.strip()]
    if not tests:
        raise DmqlError(20206, f"Invalid Query Syntax: no value for {f.name}")
    return lambda row: any(test(row) for test in tests)


def _item(f: Field, item: str) -> Predicate:
    convert = _converter(f)
    if item == ".EMPTY.":
        return lambda row: row[f.name] == ""
    if item == ".ANY.":
        return lambda row: row[f.name] != ""
    if f.data_type == "Character" and "*" in item:
        return lambda row: fnmatch.fnmatchcase(row[f.name].lower(), item.lower())
    pattern = _DATE if f.data_type == "DateTime" else _NUMBER if f.data_type in ("Int", "Decimal") else r"[^,]+?"
    if match := re.fullmatch(f"({pattern})([+-])", item):
        bound, above = convert(match[1]), match[2] == "+"
        return lambda row: _compare(convert, row[f.name], lambda v: v >= bound if above else v <= bound)
    if f.data_type != "Character" and (match := re.fullmatch(f"({pattern})-({pattern})", item)):
        low, high = convert(match[1]), convert(match[2])
        return lambda row: _compare(convert, row[f.name], lambda v: low <= v <= high)
    wanted = convert(item)
    return lambda row: _compare(convert, row[f.name], lambda v: v == wanted)


def _compare(convert, text: str, test) -> bool:
    return text != "" and test(convert(text))


def _converter(f: Field) -> Callable[[str], Any]:
    if f.data_type == "DateTime":
        return _local_time
    if f.data_type in ("Int", "Decimal"):
        return _decimal
    return str


def _local_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DmqlError(20206, f"Invalid Query Syntax: bad date {text!r}") from None
    if moment.tzinfo:
        moment = moment.astimezone(ZoneInfo(SERVER_TIMEZONE)).replace(tzinfo=None)
    return moment


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise DmqlError(20206, f"Invalid Query Syntax: bad number {text!r}") from None


# -- replies ---------------------------------------------------------------------------------------

def rets_reply(code: int, text: str, inner: str = "") -> bytes:
    return f'<?xml version="1.0" ?>\n<RETS ReplyCode="{code}" ReplyText={quoteattr(text)}>\n{inner}</RETS>\n'.encode()


def compact_lines(columns: list[str], rows: list[list[str]]) -> str:
    def line(values) -> str:
        return escape("\t" + "\t".join(str(v).replace("\t", " ") for v in values) + "\t")
    return f"<COLUMNS>{line(columns)}</COLUMNS>\n" + "".join(f"<DATA>{line(r)}</DATA>\n" for r in rows)


def search_body(columns: list[str], rows: list[list[str]], count: int | None, maxrows: bool) -> bytes:
    inner = (f'<COUNT Records="{count}" />\n' if count is not None else "") + '<DELIMITER value="09" />\n'
    inner += compact_lines(columns, rows) + ("<MAXROWS />\n" if maxrows else "")
    return rets_reply(0, "Operation Success.", inner)


def metadata_element(kind: str, attributes: dict[str, str], columns: list[str], rows: list[list[str]]) -> str:
    stamp = {"Version": "1.00.00001", "Date": "2026-01-01T00:00:00Z"}
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in {**attributes, **stamp}.items())
    return f"<{kind} {attrs}>\n{compact_lines(columns, rows)}</{kind}>\n"


def metadata_body(kind: str, attributes: dict[str, str], columns: list[str], rows: list[list[str]]) -> bytes:
    return rets_reply(0, "Operation Success.", metadata_element(kind, attributes, columns, rows))


STANDARD_ROWS = {"METADATA-SYSTEM": "System", "METADATA-RESOURCE": "Resource", "METADATA-CLASS": "Class",
                 "METADATA-TABLE": "Field", "METADATA-LOOKUP_TYPE": "LookupType", "METADATA-OBJECT": "Object"}


def standard_xml(compact: bytes) -> bytes:
    """A COMPACT metadata reply as STANDARD-XML says it: ``<METADATA>``, then per table one
    element per row and one child element per column (errors pass through unchanged)."""
    root = ElementTree.fromstring(compact)
    if root.get("ReplyCode") != "0":
        return compact
    tables = "".join(_standard_table(table) for table in root)
    return rets_reply(0, "Operation Success.", f"<METADATA>\n{tables}</METADATA>\n")


def _standard_table(table: ElementTree.Element) -> str:
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in table.attrib.items())
    rows = _compact_rows(table) if table.find("COLUMNS") is not None else [_system_row(table)]
    element = STANDARD_ROWS[table.tag]
    body = "".join(f"<{element}>" + "".join(f"<{name}>{escape(value)}</{name}>" for name, value in row.items())
                   + f"</{element}>\n" for row in rows)
    return f"<{table.tag} {attrs}>\n{body}</{table.tag}>\n"


def _compact_rows(table: ElementTree.Element) -> list[dict[str, str]]:
    columns = table.findtext("COLUMNS")[1:-1].split("\t")
    return [dict(zip(columns, data.text[1:-1].split("\t"))) for data in table.iter("DATA")]


def _system_row(table: ElementTree.Element) -> dict[str, str]:
    system = table.find("SYSTEM")
    return {"SystemID": system.get("SystemID", ""), "SystemDescription": system.get("SystemDescription", ""),
            "Comments": table.findtext("COMMENTS") or ""}


def info_line(number: int) -> str:
    """One ``Info=`` line of a RETS 1.8 login reply: ``Info=<name>;<type>;<value>``."""
    return f"Info=SANDBOX_INFO_{number};Character;value {number}"


# -- photos ----------------------------------------------------------------------------------------

def listing_photo(row: dict[str, str], number: int) -> tuple[str, bytes]:
    """(content type, bytes) of photo ``number`` of a published row, at the row's photo version."""
    key, version = row[KEY_FIELD], int(row.get(PHOTO_VERSION) or 0)
    content_type = "image/png" if photos.kind(key, number, version) == "png" else "image/jpeg"
    return content_type, photos.photo_bytes(key, number, version)


def expected_photos(listing: dict) -> list[dict]:
    """The listing's photos as a correct pipeline stores them (``corrupt`` ones rejected)."""
    version = listing.get("PhotoVersion", 0)
    return [photos.expected_photo(listing["ListingKey"], n, version)
            for n in range(1, (listing.get("PhotosCount") or 0) + 1)]


def photo_jpeg(key: str, number: int) -> bytes:
    """A small real JPEG (solid colour, 32-56 x 24-40 pixels) unique to a listing and photo number.

    GetObject no longer serves these (it serves sandbox.photos); kept for tests that want a tiny valid JPEG.
    """
    digest = hashlib.sha256(f"{key}:{number}".encode()).digest()
    width, height = 32 + 8 * (digest[3] % 4), 24 + 8 * (digest[4] % 3)
    return tiny_jpeg(width, height, (digest[0], digest[1], digest[2]), f"{key}/{number}".encode())


def photo_count(row: dict[str, str]) -> int:
    return int(row.get("PhotoCount") or 0)


# Standard luminance DC table (ITU T.81, Annex K.3); the AC table codes only EOB (a flat block).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0,)


def tiny_jpeg(width: int, height: int, rgb: tuple[int, int, int], comment: bytes = b"") -> bytes:
    """A valid baseline JPEG of one flat colour: every 8x8 block carries only its DC value."""
    dc = [round(8 * (min(255.0, max(0.0, c)) - 128)) for c in _ycbcr(*rgb)]  # quantizer 1: DC = 8 x level
    dc_codes, eob = _huffman(_DC_BITS, _DC_VALUES), _huffman(_AC_BITS, _AC_VALUES)[0]
    bits = _BitWriter()
    for index in range(((width + 7) // 8) * ((height + 7) // 8)):
        for component in range(3):
            diff = dc[component] if index == 0 else 0
            size = abs(diff).bit_length()
            bits.put(*dc_codes[size])
            if size:
                bits.put(diff if diff > 0 else diff + (1 << size) - 1, size)
            bits.put(*eob)
    return _jpeg_header(width, height, comment) + bits.flush() + b"\xff\xd9"


def _ycbcr(r: int, g: int, b: int) -> tuple[float, float, float]:
    return (0.299 * r + 0.587 * g + 0.114 * b,
            128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
            128 + 0.5 * r - 0.418688 * g - 0.081312 * b)


def _jpeg_header(width: int, height: int, comment: bytes) -> bytes:
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    return b"".join([
        b"\xff\xd8",
        segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        segment(0xFE, comment) if comment else b"",
        segment(0xDB, b"\x00" + b"\x01" * 64),
        segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"),
        segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES)),
        segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)),
        segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"),
    ])


def _huffman(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, 1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


class _BitWriter:
    def __init__(self):
        self.out, self.acc, self.count = bytearray(), 0, 0

    def put(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.acc, self.count = (self.acc << 1) | ((value >> shift) & 1), self.count + 1
            if self.count == 8:
                self.out += b"\xff\x00" if self.acc == 0xFF else bytes([self.acc])  # byte stuffing
                self.acc, self.count = 0, 0

    def flush(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)
        return bytes(self.out)


# -- the HTTP server ------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, controls: Controls):
        super().__init__(("127.0.0.1", saved_port(root, "rets")), _Handler)
        self.dataset = _Dataset(root)
        self.controls = controls
        self.quirks = Quirks(root, "rets")
        self.sessions: dict[str, int] = {}
        self.nonces: set[str] = set()
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def switch(self, name: str) -> Any:
        """A quirk's value: ``quirks.json`` when it names it, else the Controls field."""
        quirks = self.quirks.get()
        return quirks[name] if name in quirks else getattr(self.controls, name)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    ROUTES = {"/rets/login": "Login", "/rets/search": "Search", "/rets/getmetadata": "GetMetadata",
              "/rets/getobject": "GetObject", "/rets/logout": "Logout", "/rets/action": "Action"}

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        pass

    def do_GET(self) -> None:
        self._dispatch(parse_qs(urlsplit(self.path).query))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        self._dispatch({**parse_qs(urlsplit(self.path).query), **parse_qs(body)})

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch(self, query: dict[str, list[str]]) -> None:
        params = {k: v[-1] for k, v in query.items()}
        path = urlsplit(self.path).path
        controls = self.server.controls
        controls.stats["requests"] += 1
        if path.startswith("/photos/"):
            return self._photo(path)
        if controls.fail_status:
            return self._send(controls.fail_status, b"Service Unavailable\n", "text/plain", {"Retry-After": "1"})
        transaction = self.ROUTES.get(path.lower())
        if transaction is None:
            return self._send(404, b"Not Found\n", "text/plain")
        if not self._authenticated():
            controls.stats["challenged"] += 1
            controls.stats[f"challenged {transaction}"] += 1
            return self._challenge()
        controls.stats[transaction] += 1
        if transaction == "Login":
            return self._login()
        if controls.reject_after_login:
            return self._challenge()
        if not self._in_session():
            return self._xml(rets_reply(20701, "Not logged in"))
        if not self._ua_ok(self._session_id()):
            controls.stats["ua_refused"] += 1
            return self._xml(rets_reply(20037, "Client authentication failed"))
        getattr(self, f"_{transaction.lower()}")(params)

    def _authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if self.server.controls.auth == "basic" and scheme.lower() == "basic":
            return self._basic_ok(credentials)
        if self.server.controls.auth == "digest" and scheme.lower() == "digest":
            return self._digest_ok(parse_keqv_list(parse_http_list(credentials)))
        return False

    def _basic_ok(self, credentials: str) -> bool:
        try:
            user, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        controls = self.server.controls
        return secrets.compare_digest(f"{user}:{password}", f"{controls.username}:{controls.password}")

    def _digest_ok(self, fields: dict[str, str]) -> bool:
        controls = self.server.controls
        if fields.get("username") != controls.username or fields.get("nonce") not in self.server.nonces:
            return False
        if fields.get("uri") != self.path:
            return False
        ha1 = _md5(f"{controls.username}:{REALM}:{controls.password}")
        ha2 = _md5(f"{self.command}:{fields['uri']}")
        if fields.get("qop"):
            expected = _md5(f"{ha1}:{fields['nonce']}:{fields.get('nc')}:{fields.get('cnonce')}:{fields['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))

    def _challenge(self) -> None:
        if self.server.controls.auth == "basic":
            challenge = f'Basic realm="{REALM}"'
        else:
            nonce = secrets.token_hex(16)
            with self.server.lock:
                self.server.nonces.add(nonce)
            challenge = f'Digest realm="{REALM}", nonce="{nonce}", opaque="{secrets.token_hex(8)}", qop="auth"'
        self._send(401, b"Unauthorized\n", "text/plain", {"WWW-Authenticate": challenge})

    def _ua_ok(self, session_id: str) -> bool:
        password = self.server.controls.ua_password
        if not password:
            return True
        version = self.headers.get("RETS-Version", "")
        a1 = _md5(f"{self.headers.get('User-Agent', '')}:{password}")
        expected = "Digest " + _md5(f"{a1}:{self.headers.get('RETS-Request-ID', '')}:{session_id}:{version}")
        return self.headers.get("RETS-UA-Authorization", "") == expected

    def _session_id(self) -> str:
        cookies = self.headers.get("Cookie", "")
        found = re.search(r"(?:^|;\s*)RETS-Session-ID=([^;]+)", cookies)
        return found[1] if found else ""

    def _in_session(self) -> bool:
        session_id = self._session_id()
        controls = self.server.controls
        with self.server.lock:
            if session_id not in self.server.sessions:
                controls.stats["not_logged_in"] += 1
                return False
            self.server.sessions[session_id] += 1
            expire_after = self.server.switch("expire_after")
            if expire_after is not None and self.server.sessions[session_id] > expire_after:
                del self.server.sessions[session_id]
                controls.stats["expired"] += 1
                return False
        return True

    # -- transactions ------------------------------------------------------------------------

    def _login(self) -> None:
        if not self._ua_ok(""):
            self.server.controls.stats["ua_refused"] += 1
            return self._xml(rets_reply(20037, "Client authentication failed"))
        session_id = secrets.token_hex(12)
        with self.server.lock:
            self.server.sessions[session_id] = 0
        lines = ["MemberName=Sandbox User", f"User={USERNAME},1,Agent,{USERNAME}", "Broker=SBX",
                 "MetadataVersion=1.00.00001", "MetadataTimestamp=2026-01-01T00:00:00Z",
                 "Search=/rets/search", "GetMetadata=/rets/getmetadata", "GetObject=/rets/getobject",
                 f"Logout={self.server.base}/rets/logout", "Action=/rets/action", "TimeoutSeconds=1800"]
        lines += [info_line(n) for n in range(1, self.server.switch("info_lines") + 1)]
        body = rets_reply(0, "Operation Success.", "<RETS-RESPONSE>\n" + "\n".join(lines) + "\n</RETS-RESPONSE>\n")
        cookies = [f"RETS-Session-ID={session_id}; Path=/", "sandbox-node=a; Path=/; HttpOnly"]
        self._xml(body, cookies=cookies)

    def _logout(self, params: dict[str, str]) -> None:
        with self.server.lock:
            self.server.sessions.pop(self._session_id(), None)
        self._xml(rets_reply(0, "Operation Success.", "<RETS-RESPONSE>\nConnectTime=1\nSignOffMessage=Goodbye\n"
                                                      "</RETS-RESPONSE>\n"))

    def _action(self, params: dict[str, str]) -> None:
        self._send(200, b"Welcome to the sandbox MLS.\n", "text/plain")

    def _search(self, params: dict[str, str]) -> None:
        controls = self.server.controls
        if self.server.switch("delay"):
            time.sleep(self.server.switch("delay"))
        if controls.search_reply:
            return self._xml(rets_reply(controls.search_reply, "Search refused by the sandbox switch"))
        try:
            self._xml(self._search_body(params))
        except DmqlError as exc:
            self._xml(rets_reply(exc.code, exc.text))

    def _search_body(self, params: dict[str, str]) -> bytes:
        _require(params.get("SearchType") == RESOURCE, 20203, f"Unknown resource {params.get('SearchType')}")
        _require(params.get("Class") == CLASS, 20203, f"Unknown class {params.get('Class')}")
        _require(params.get("QueryType", "DMQL2") in ("DMQL2", "DMQL"), 20203, "Only DMQL2 queries")
        _require(params.get("Format", "COMPACT") in ("COMPACT", "COMPACT-DECODED"), 20203, "Unsupported Format")
        predicate = parse_dmql(params.get("Query") or "")
        columns = _selected(params.get("Select"))
        matched = [row for row in self.server.dataset.rows() if predicate(row)]
        if params.get("Count") == "2":
            return search_body(columns, [], len(matched), False) if matched else rets_reply(20201, "No Records Found")
        start, limit = self._page(params)
        page = matched[start:start + limit]
        if (end := self.server.switch("end_feed_after")) is not None:
            page = matched[start:min(start + limit, end)]  # the feed ends early; COUNT still says all
        if not page:
            return rets_reply(20201, "No Records Found")
        decoded = params.get("Format") == "COMPACT-DECODED"
        values = [[_value(row, name, decoded) for name in columns] for row in page]
        count = len(matched) if params.get("Count") == "1" else None
        self.server.controls.stats["rows"] += len(page)
        return search_body(columns, values, count, start + len(page) < len(matched))

    def _page(self, params: dict[str, str]) -> tuple[int, int]:
        controls = self.server.controls
        offset = params.get("Offset", "1")
        _require(offset.isdigit() and int(offset) >= 1, 20203, f"Bad Offset {offset}")
        refuse_offset, max_rows = self.server.switch("refuse_offset"), self.server.switch("max_rows")
        if refuse_offset == "error" and int(offset) > 1:
            raise DmqlError(20203, "Miscellaneous Search Error: Offset is not supported")
        if refuse_offset == "ignore":
            offset = "1"
        limit = params.get("Limit", "NONE")
        limit_rows = int(limit) if limit.isdigit() else max_rows
        return int(offset) - 1, min(limit_rows, max_rows)

    def _getmetadata(self, params: dict[str, str]) -> None:
        answered = self.server.switch("metadata_format")  # what many servers send, whatever was asked
        if answered == "COMPACT" and params.get("Format", "COMPACT") != "COMPACT":
            return self._xml(rets_reply(20506, "Unsupported MIME type: only COMPACT metadata"))
        kind, ident = params.get("Type", ""), params.get("ID", "0")
        builder = _METADATA.get(kind)
        if builder is None:
            return self._xml(rets_reply(20501, f"Invalid Type {kind}"))
        body = builder(ident)
        self._xml(standard_xml(body) if answered == "STANDARD-XML" else body)

    def _getobject(self, params: dict[str, str]) -> None:
        if params.get("Resource") != RESOURCE:
            return self._object_error(20400, f"Invalid Resource {params.get('Resource')}")
        if params.get("Type") != "Photo":
            return self._object_error(20401, f"Invalid Type {params.get('Type')}")
        location = params.get("Location") == "1"
        parts = [part for item in (params.get("ID") or "").split(",") if item for part in self._objects(item, location)]
        if self.server.switch("duplicate_object_ids") and len(parts) > 1:
            headers, body = parts[0]
            parts.insert(1, (headers, body[: len(body) // 2] + b"tail of a part repeated"))
        if len(parts) == 1:
            headers, body = parts[0]
            if _header(headers, "RETS-Error"):
                return self._object_error(20403, "No Object Found")
            rest = [(name, value) for name, value in headers if name != "Content-Type"]
            return self._send(200, body, _header(headers, "Content-Type"), rest)
        boundary = secrets.token_hex(16)
        self._send(200, _multipart(parts, boundary), f'multipart/parallel; boundary="{boundary}"', {})

    def _object_error(self, code: int, text: str) -> None:
        """A whole GetObject reply that is an error, labelled and chunked as the quirks say."""
        body, content_type = rets_reply(code, text), self.server.switch("error_content_type")
        if size := self.server.switch("error_chunk_size"):
            return self._send_chunked(body, content_type, size)
        self._send(200, body, content_type)

    def _objects(self, item: str, location: bool) -> list[tuple[list[tuple[str, str]], bytes]]:
        key, _, wanted = item.partition(":")
        row = self.server.dataset.by_key(key)
        available = photo_count(row) if row else 0
        numbers = range(1, available + 1) if wanted in ("*", "") else [
            1 if n == "0" else int(n) for n in wanted.split(":") if n.isdigit()]
        found = [n for n in numbers if 1 <= n <= available]
        if not found:
            return [([("RETS-Error", "1"), ("Content-Type", "text/xml"), ("Content-ID", key),
                      ("Object-ID", wanted or "*")], rets_reply(20403, "No Object Found"))]
        return [self._object(row, n, location) for n in found]

    def _object(self, row: dict[str, str], number: int, location: bool) -> tuple[list[tuple[str, str]], bytes]:
        key, switch = row[KEY_FIELD], self.server.switch
        content_type, body = listing_photo(row, number)
        headers = [("Content-Type", content_type), ("Content-ID", key), ("Object-ID", str(number)),
                   (switch("caption_header"), f"Photo {number} of {key}"), ("Preferred", "1" if number == 1 else "0")]
        if switch("object_data"):
            headers += [("ObjectData", f"PhotoNumber={number}"), ("ObjectData", f"ListingKey={key}")]
        self.server.controls.stats["objects"] += 1
        if not location:
            return headers, body
        headers.append(("Location", f"{self.server.base}/photos/{key}/{number}.jpg"))
        if switch("xml_links"):
            headers[0] = ("Content-Type", "text/xml")
            return headers, rets_reply(0, "Operation Successful")
        return headers, body if switch("location_bytes") else b""

    def _photo(self, path: str) -> None:
        match = re.fullmatch(r"/photos/([^/]+)/(\d+)\.jpg", path)
        row = self.server.dataset.by_key(match[1]) if match else None
        if not row or not 1 <= int(match[2]) <= photo_count(row):
            return self._send(404, b"Not Found\n", "text/plain")
        content_type, body = listing_photo(row, int(match[2]))
        self._send(200, body, content_type)

    # -- writing ---------------------------------------------------------------------------

    def _xml(self, body: bytes, cookies: list[str] | None = None) -> None:
        self._send(200, body, "text/xml; charset=utf-8", {}, cookies)

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | list[tuple[str, str]] | None = None, cookies: list[str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("RETS-Version", "RETS/1.7.2")
        self.send_header("Date", formatdate(usegmt=True))
        for name, value in (headers.items() if isinstance(headers, dict) else headers or []):
            self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, body: bytes, content_type: str, size: int) -> None:
        """HTTP/1.1 chunked transfer, ``size`` bytes a chunk, each its own write: the client sees them apart."""
        self.send_response(200)
        for name, value in (("Content-Type", content_type), ("Transfer-Encoding", "chunked"),
                            ("RETS-Version", "RETS/1.7.2"), ("Date", formatdate(usegmt=True))):
            self.send_header(name, value)
        self.end_headers()
        for start in range(0, len(body), size):
            piece = body[start:start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


def _require(condition: bool, code: int, text: str) -> None:
    if not condition:
        raise DmqlError(code, text)


def _selected(select: str | None) -> list[str]:
    if not select:
        return [f.name for f in FIELDS]
    names = [name.strip() for name in select.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    _require(not unknown, 20202, f"Invalid Select: {', '.join(unknown)}")
    return names


def _value(row: dict[str, str], name: str, decoded: bool) -> str:
    lookup = BY_NAME[name].lookup
    value = row.get(name, "")
    return LOOKUPS[lookup].get(value, value) if decoded and lookup else value


def _header(headers: list[tuple[str, str]], wanted: str) -> str | None:
    return next((value for name, value in headers if name == wanted), None)


def _multipart(parts: list[tuple[list[tuple[str, str]], bytes]], boundary: str) -> bytes:
    chunks = []
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


# -- metadata --------------------------------------------------------------------------------------

def _metadata_system(ident: str) -> bytes:
    inner = ('<METADATA-SYSTEM Version="1.00.00001" Date="2026-01-01T00:00:00Z">\n'
             '<SYSTEM SystemID="SANDBOX" SystemDescription="mlsfeeds sandbox RETS" />\n'
             "<COMMENTS>A Matrix-like dialect</COMMENTS>\n</METADATA-SYSTEM>\n")
    return rets_reply(0, "Operation Success.", inner)


def _metadata_resource(ident: str) -> bytes:
    columns = ["ResourceID", "StandardName", "VisibleName", "KeyField", "ClassCount"]
    rows = [["Agent", "Agent", "Agent", "matrix_unique_id", "1"], [RESOURCE, "Property", "Listing", KEY_FIELD, "1"]]
    return metadata_body("METADATA-RESOURCE", {}, columns, rows)


def _metadata_class(ident: str) -> bytes:
    if ident not in (RESOURCE, "*"):
        return rets_reply(20502, f"Invalid Identifier {ident}")
    columns = ["ClassName", "StandardName", "VisibleName", "Description"]
    return metadata_body("METADATA-CLASS", {"Resource": RESOURCE}, columns,
                         [[CLASS, "ResidentialProperty", "Residential", "All listings"]])


def _metadata_table(ident: str) -> bytes:
    if ident not in (f"{RESOURCE}:{CLASS}", f"{RESOURCE}:*"):
        return rets_reply(20502, f"Invalid Identifier {ident}")
    columns = ["SystemName", "StandardName", "LongName", "DataType", "Interpretation", "LookupName", "Searchable"]
    rows = [[f.name, "", f.reso, f.data_type, "Lookup" if f.lookup else "", f.lookup or "", "1"] for f in FIELDS]
    return metadata_body("METADATA-TABLE", {"Resource": RESOURCE, "Class": CLASS}, columns, rows)


def _metadata_lookup_type(ident: str) -> bytes:
    resource, _, name = ident.partition(":")
    names = list(LOOKUPS) if name == "*" else [name]
    if resource != RESOURCE or not all(n in LOOKUPS for n in names):
        return rets_reply(20502, f"Invalid Identifier {ident}")
    columns = ["LongValue", "ShortValue", "Value"]
    inner = "".join(
        metadata_element("METADATA-LOOKUP_TYPE", {"Resource": RESOURCE, "Lookup": lookup}, columns,
                         [[long, code, code] for code, long in LOOKUPS[lookup].items()])
        for lookup in names
    )
    return rets_reply(0, "Operation Success.", inner)


def _metadata_object(ident: str) -> bytes:
    columns = ["ObjectType", "MIMEType", "VisibleName", "Description", "ObjectCount"]
    return metadata_body("METADATA-OBJECT", {"Resource": RESOURCE}, columns,
                         [["Photo", "image/jpeg", "Photo", "Listing photos", "PhotoCount"]])


_METADATA = {
    "METADATA-SYSTEM": _metadata_system,
    "METADATA-RESOURCE": _metadata_resource,
    "METADATA-CLASS": _metadata_class,
    "METADATA-TABLE": _metadata_table,
    "METADATA-LOOKUP_TYPE": _metadata_lookup_type,
    "METADATA-OBJECT": _metadata_object,
}


# -- the feed ---------------------------------------------------------------------------------------

def start(root: Path, **switches: Any) -> Running:
    """Serve ``root`` on 127.0.0.1, a free port; ``switches`` set ``Controls`` fields."""
    controls = Controls(**switches)
    server = _Server(Path(root), controls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-rets",
                              daemon=True)
    thread.start()

    def stop() -> None:
        if not thread.is_alive():
            return
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    details = {"controls": controls, "root": Path(root), "port": server.server_address[1], "base": server.base,
               "username": controls.username, "password": controls.password,
               "user_agent": USER_AGENT, "user_agent_password": controls.ua_password}
    return Running(url=f"{server.base}/rets/login", stop=stop, details=details)


def source(running: Running, source_id: str) -> dict:
    """The ``[[source]]`` table that reads this server: COMPACT codes, translated by ``values``."""
    details = running.details
    download = {
        "kind": "rets", "url": running.url, "username": details["username"], "password": details["password"],
        "user_agent": details["user_agent"], "class": CLASS, "resource": RESOURCE, "format": "COMPACT",
        "page_size": 500, "modification_field": "LastChangeTimestamp", "server_timezone": SERVER_TIMEZONE,
        "timeout": 30,
    }
    if details.get("user_agent_password"):
        download["user_agent_password"] = details["user_agent_password"]
    return {
        "id": source_id,
        "name": f"Sandbox RETS ({source_id})",
        "timezone": SERVER_TIMEZONE,
        "download": download,
        "parse": {"format": "rets-compact"},
        "fields": {f.reso: f.name for f in FIELDS},
        "values": {"StandardStatus": dict(LOOKUPS["Status"]), "PropertyType": dict(LOOKUPS["PropertyType"])},
        "images": {"strategy": "rets", "login_url": running.url, "resource": RESOURCE, "object_type": "Photo",
                   **{key: download[key] for key in ("username", "password", "user_agent", "user_agent_password",
                                                      "timeout") if key in download}},
    }


def expected(listing: dict) -> dict:
    """The RESO fields this dialect carries, as a correct pipeline stores them.

    Timestamps travel as server-local wall time, so they come back through that zone (whole
    seconds; an hour that repeats when clocks fall back reads as its first occurrence).
    """
    return {f.reso: _expected_value(f, listing.get(f.reso)) for f in FIELDS}


def _expected_value(f: Field, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        zone = ZoneInfo(SERVER_TIMEZONE)
        local = value.astimezone(zone).replace(tzinfo=None, microsecond=0)
        return local.replace(tzinfo=zone).astimezone(dt.timezone.utc)
    return value


@dataclass(frozen=True)
class RetsFeed:
    """The sandbox feed of kind ``rets`` (see sandbox.feeds)."""

    kind: str = "rets"

    def publish(self, listings, root: Path) -> Path:
        return publish(listings, root)

    def start(self, root: Path, **switches: Any) -> Running:
        return start(root, **switches)

    def source(self, running: Running, source_id: str) -> dict:
        return source(running, source_id)

    def expected(self, listing: dict) -> dict:
        return expected(listing)

    def expected_photos(self, listing: dict) -> list[dict]:
        return expected_photos(listing)


FEED = RetsFeed()
