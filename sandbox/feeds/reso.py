"""A simulated RESO Web API server (OData v4, JSON), on http.server.

- ``GET /odata/Property``: listings with standard RESO Data Dictionary names, sorted by
  ListingKey. Query options: ``$filter`` (comparisons ``eq ne gt ge lt le`` of a field with a
  string, number, boolean, null or ISO 8601 timestamp literal, joined by ``and``/``or``/``not``
  and parentheses), ``$select``, ``$expand=Media`` (a ``Media`` array per listing: MediaKey,
  ResourceRecordKey, Order, MediaURL, MediaCategory), ``$top`` (the page size, as RESO servers
  treat it: at most 1000, default 100), ``$skip`` and ``$count=true``. A page that is not the
  last carries ``@odata.nextLink`` (an absolute URL with ``$skip`` advanced).
- ``POST /token``: OAuth2 client credentials (form fields or HTTP Basic) -> a bearer token.
- Every other request needs ``Authorization: Bearer <token>``: the static token, or one that
  ``/token`` issued and that has not expired (``details["expire_tokens"]()`` expires them all).
- ``GET /media/{ListingKey}/{n}.jpg`` (public, as an MLS's photo CDN is): photo n of 1..PhotosCount,
  rendered on request by sandbox.photos at the listing's ``PhotoVersion`` as last published
  (``root/reso/photos.json`` says which).

Quirks (``QUIRKS``; ``root/reso/quirks.json``, re-read while the server runs):
``end_feed_after`` N ends every result after N records: the page that reaches N is cut there and
carries no ``@odata.nextLink``, while ``@odata.count`` still says how many match.

Media URLs are the listing's own (``listing["Media"]``) by default; ``ResoFeed(host_media=True)``
points them at ``/media/...`` on this server instead: published as paths (the port is not known
when the file is written) and sent as absolute URLs on whatever address the server listens.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import operator
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from sandbox.feeds import Running
from sandbox.feeds._common import Quirks, atomic_file, saved_port
from sandbox.photos import photo_bytes

SERVICE_ROOT = "/odata"
RESOURCE = "Property"
MAX_TOP, DEFAULT_TOP = 1000, 100
CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-client-secret"
MEDIA_TEMPLATE = "/media/{ListingKey}/{n}.jpg"
MEDIA_PATH = re.compile(r"/media/([^/]+)/(\d+)\.jpg")
QUIRKS = {"end_feed_after": "results end after this many records: that page is cut and has no @odata.nextLink"}


# -- data -----------------------------------------------------------------------------------------

def _record(listing: dict, host_media: bool) -> dict:
    """A listing as the RESO Web API sends it (JSON-ready), with its Media."""
    record = {name: _json_value(listing.get(name)) for name in FIELDS}
    record["Media"] = [
        {"MediaKey": f"{listing['ListingKey']}-{order}", "ResourceRecordKey": listing["ListingKey"],
         "Order": order, "MediaURL": url, "MediaCategory": "Photo"}
        for order, url in _media(listing, host_media)
    ]
    return record


def _media(listing: dict, host_media: bool) -> list[tuple[int, str]]:
    """(Order, MediaURL) of the listing's photos: its own URLs, or paths on this server."""
    if not host_media:
        return [(m["Order"], m["MediaURL"]) for m in listing.get("Media", [])]
    return [(n, MEDIA_TEMPLATE.format(ListingKey=listing["ListingKey"], n=n))
            for n in range(1, (listing.get("PhotosCount") or 0) + 1)]


def _json_value(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class _Store:
    """The published records, re-read whenever ``publish`` has replaced the file."""

    def __init__(self, path: Path):
        self._path = path
        self._cached: tuple[tuple[int, int], list[dict]] | None = None

    def records(self) -> list[dict]:
        stat = self._path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is None or cached[0] != signature:
            cached = (signature, json.loads(self._path.read_bytes()))
            self._cached = cached
        return cached[1]


class _PhotoIndex:
    """Each listing's photos as last published, ``{ListingKey: [count, version]}``, re-read
    whenever ``publish`` has replaced the file."""

    def __init__(self, path: Path):
        self._path = path
        self._cached: tuple[tuple[int, int], dict[str, list[int]]] | None = None

    def photo(self, key: str, n: int) -> bytes | None:
        """Photo ``n`` of the listing as published, or None when there is no such photo."""
        count, version = self._entries().get(key, (0, 0))
        return photo_bytes(key, n, version) if 1 <= n <= count else None

    def _entries(self) -> dict[str, list[int]]:
        stat = self._path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is None or cached[0] != signature:
            cached = (signature, json.loads(self._path.read_bytes()))
            self._cached = cached
        return cached[1]


# -- $filter --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<string>'(?:[^']|'')*')"
    r"|(?P<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d))"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w/]*))"
)
_OPERATORS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
              "lt": operator.lt, "le": operator.le}
Predicate = Callable[[dict], bool]


class FilterError(ValueError):
    pass


def compile_filter(text: str) -> Predicate:
    """A ``$filter`` expression as a predicate on records; FilterError if it is not supported."""
    tokens = _tokenize(text)
    predicate = _or(tokens)
    if tokens:
        raise FilterError(f"unexpected {tokens[0][1]!r} in $filter")
    return predicate


def _tokenize(text: str) -> deque:
    tokens, position = deque(), 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise FilterError(f"cannot read $filter at {text[position:position + 20]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


def _or(tokens: deque) -> Predicate:
    left = _and(tokens)
    while _take(tokens, "word", "or"):
        left = (lambda a, b: lambda r: a(r) or b(r))(left, _and(tokens))
    return left


def _and(tokens: deque) -> Predicate:
    left = _unary(tokens)
    while _take(tokens, "word", "and"):
        left = (lambda a, b: lambda r: a(r) and b(r))(left, _unary(tokens))
    return left


def _unary(tokens: deque) -> Predicate:
    if _take(tokens, "word", "not"):
        inner = _unary(tokens)
        return lambda r: not inner(r)
    if _take(tokens, "open"):
        inner = _or(tokens)
        if not _take(tokens, "close"):
            raise FilterError("missing ) in $filter")
        return inner
    return _comparison(tokens)


def _comparison(tokens: deque) -> Predicate:
    if len(tokens) < 3 or tokens[0][0] != "word" or tokens[1][1] not in _OPERATORS:
        raise FilterError(f"expected 'Field op value' in $filter near {' '.join(t[1] for t in list(tokens)[:3])!r}")
    field, op, literal = tokens.popleft()[1], _OPERATORS[tokens.popleft()[1]], _literal(tokens.popleft())
    return lambda record: _compare(record.get(field), op, literal)


def _take(tokens: deque, kind: str, value: str | None = None) -> bool:
    if tokens and tokens[0][0] == kind and (value is None or tokens[0][1].lower() == value):
        tokens.popleft()
        return True
    return False


def _literal(token: tuple[str, str]):
    kind, text = token
    if kind == "string":
        return text[1:-1].replace("''", "'")
    if kind == "timestamp":
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if kind == "number":
        return Decimal(text)
    if kind == "word" and text in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text]
    raise FilterError(f"{text!r} is not a literal")


def _compare(value, op, literal) -> bool:
    if value is None or literal is None:
        return op(value, literal) if op in (operator.eq, operator.ne) else False
    if isinstance(literal, dt.datetime):
        value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    elif isinstance(literal, Decimal):
        value = Decimal(str(value))
    return op(value, literal)


# -- tokens ---------------------------------------------------------------------------------------

class _Tokens:
    """Bearer tokens: one static token, and client-credentials tokens with a lifetime."""

    def __init__(self, static: str, client_id: str, client_secret: str, lifetime: float):
        self.static, self._client = static, (client_id, client_secret)
        self._lifetime = lifetime
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, client_id: str, client_secret: str) -> str | None:
        if not all(hmac.compare_digest(given, ours) for given, ours in zip((client_id, client_secret), self._client)):
            return None
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._issued[token] = time.monotonic() + self._lifetime
        return token

    def valid(self, token: str) -> bool:
        if hmac.compare_digest(token, self.static):
            return True
        with self._lock:
            return self._issued.get(token, 0) > time.monotonic()

    def expire_all(self) -> None:
        with self._lock:
            self._issued.clear()


# -- HTTP -----------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: _Store, tokens: _Tokens, photos: _PhotoIndex, quirks: Quirks, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.store, self.tokens, self.photos, self.quirks = store, tokens, photos, quirks
        self.failures: list[int] = []  # HTTP statuses to answer the next resource requests with
        self.base = f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        if urlsplit(self.path).path != "/token":
            return self._error(404, "NotFound", "no such endpoint")
        if form.get("grant_type") != ["client_credentials"]:
            return self._json(400, {"error": "unsupported_grant_type"})
        token = self.server.tokens.issue(*self._client_credentials(form))
        if token is None:
            return self._json(401, {"error": "invalid_client"})
        return self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _client_credentials(self, form: dict) -> tuple[str, str]:
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(encoded).decode().partition(":")
            return user, password
        return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]

    def do_GET(self):
        url = urlsplit(self.path)
        if photo := MEDIA_PATH.fullmatch(url.path):
            return self._photo(photo)  # public, before any injected failure or token check
        if self.server.failures:
            status = self.server.failures.pop(0)
            return self._error(status, "Injected", "injected failure", {"Retry-After": "1"})
        if not self._authorized():
            return self._error(401, "Unauthorized", "a valid bearer token is required",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if url.path.rstrip("/") == SERVICE_ROOT:
            return self._json(200, {"value": [{"name": RESOURCE, "kind": "EntitySet", "url": RESOURCE}]})
        if url.path != f"{SERVICE_ROOT}/{RESOURCE}":
            return self._error(404, "NotFound", f"no resource at {url.path}")
        try:
            return self._json(200, self._page(parse_qs(url.query, keep_blank_values=True)))
        except (FilterError, ValueError) as exc:
            return self._error(400, "BadRequest", str(exc))

    def _photo(self, match: re.Match):
        data = self.server.photos.photo(match[1], int(match[2]))
        if data is None:
            return self._error(404, "NotFound", "no such photo")
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if data.startswith(b"\x89PNG") else "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and self.server.tokens.valid(token.strip())

    def _page(self, query: dict[str, list[str]]) -> dict:
        option = {name: values[0] for name, values in query.items()}
        top = min(int(option.get("$top", DEFAULT_TOP)), MAX_TOP)
        skip = int(option.get("$skip", 0))
        records = self.server.store.records()
        if option.get("$filter"):
            records = list(filter(compile_filter(option["$filter"]), records))
        end = min(len(records), self.server.quirks.get().get("end_feed_after", len(records)))
        page = [_shape(r, option.get("$select"), option.get("$expand"), self.server.base)
                for r in records[skip: min(skip + top, end)]]
        body = {"@odata.context": f"{self.server.base}{SERVICE_ROOT}/$metadata#{RESOURCE}", "value": page}
        if option.get("$count") == "true":
            body["@odata.count"] = len(records)
        if skip + top < end:
            body["@odata.nextLink"] = self._next_link(query, skip + top)
        return body

    def _next_link(self, query: dict[str, list[str]], skip: int) -> str:
        pairs = [(k, v[0]) for k, v in query.items() if k != "$skip"] + [("$skip", str(skip))]
        return f"{self.server.base}{SERVICE_ROOT}/{RESOURCE}?{urlencode(pairs, quote_via=quote, safe='$,()')}"

    def _json(self, status: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None):
        return self._json(status, {"error": {"code": code, "message": message}}, headers)


def _shape(record: dict, select: str | None, expand: str | None, base: str) -> dict:
    names = [n.strip() for n in select.split(",")] if select else [n for n in record if n != "Media"]
    shaped = {name: record.get(name) for name in names if name != "Media"}
    if expand and "Media" in [e.strip() for e in expand.split(",")]:
        shaped["Media"] = [_absolute(media, base) for media in record["Media"]]
    return shaped


def _absolute(media: dict, base: str) -> dict:
    """A Media record whose MediaURL, if published as a path on this server, is made absolute."""
    url = media["MediaURL"]
    return {**media, "MediaURL": base + url} if url.startswith("/") else media


# -- the feed -------------------------------------------------------------------------------------

class ResoFeed:
    """The RESO Web API MLS: ``publish`` writes ``root/reso/Property.json``; ``start`` serves it."""

    kind = "reso"

    def __init__(self, host_media: bool = False):
        self.host_media = host_media

    def publish(self, listings: Iterable[dict], root: Path) -> None:
        """Replace what the server serves (atomically: a running server never reads half a file)."""
        listings = list(listings)
        records = sorted((_record(listing, self.host_media) for listing in listings), key=lambda r: r["ListingKey"])
        photos = {x["ListingKey"]: [x.get("PhotosCount") or 0, x.get("PhotoVersion", 0)] for x in listings}
        with atomic_file(Path(root) / "reso" / "photos.json") as out:
            out.write(json.dumps(photos, separators=(",", ":")).encode())
        with atomic_file(Path(root) / "reso" / f"{RESOURCE}.json") as out:
            out.write(json.dumps(records, separators=(",", ":")).encode())

    def start(self, root: Path, token_lifetime: float = 3600) -> Running:
        """Serve on 127.0.0.1, a free port. ``details``: token, client_id, client_secret,
        token_url, base (http://127.0.0.1:PORT), ``expire_tokens()``, and ``fail(status, count=1)`` to answer the next
        ``count`` resource requests with that HTTP status."""
        tokens = _Tokens(secrets.token_urlsafe(24), CLIENT_ID, CLIENT_SECRET, token_lifetime)
        server = _Server(_Store(Path(root) / "reso" / f"{RESOURCE}.json"), tokens,
                         _PhotoIndex(Path(root) / "reso" / "photos.json"), Quirks(root, "reso"),
                         saved_port(root, "reso"))
        thread = threading.Thread(target=server.serve_forever, name="sandbox-reso", daemon=True)
        thread.start()
        details = {
            "token": tokens.static, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "token_url": f"{server.base}/token", "expire_tokens": tokens.expire_all, "base": server.base,
            "fail": lambda status, count=1: server.failures.extend([status] * count),
        }
        return Running(url=server.base + SERVICE_ROOT, stop=lambda: _stop(server, thread), details=details)

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table that reads this feed with OAuth2 client credentials."""
        details = running.details
        return {
            "id": source_id,
            "name": f"Sandbox RESO Web API {source_id}",
            "timezone": "UTC",
            "download": {
                "kind": "reso", "url": running.url, "resource": RESOURCE, "expand": "Media", "page_size": 200,
                "client_id": details["client_id"], "client_secret": details["client_secret"],
                "token_url": details["token_url"],
            },
            "parse": {"format": "odata"},
            "fields": {**{name: name for name in FIELDS}, "Media": "Media"},
            "values": {},
            "images": {"strategy": "mls_urls"},
        }

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries (all of a listing's), as the pipeline must store them.

        Media is carried too (``listing["Media"]``: Order and MediaURL) but stored apart, so not here.
        """
        return {name: listing[name] for name in FIELDS if listing.get(name) is not None}

    def expected_photos(self, listing: dict, running: Running | None = None) -> list[dict]:
        """The listing's photos as the pipeline must link them, ``{"order": n, "url": ...}`` in
        Media order (renumbered 1..n, as mls_urls does). Hosted media are absolute URLs on
        ``running``'s server, or their paths when none is given."""
        base = running.details["base"] if running else ""
        media = sorted(_media(listing, self.host_media))
        return [{"order": n, "url": base + url if url.startswith("/") else url}
                for n, (_, url) in enumerate(media, 1)]


FIELDS = (
    "ListingKey", "ListingId", "StandardStatus", "PropertyType", "PropertySubType", "ListPrice",
    "BedroomsTotal", "BathroomsTotalInteger", "LivingArea", "LotSizeAcres", "YearBuilt", "UnparsedAddress",
    "StreetNumber", "StreetName", "UnitNumber", "City", "StateOrProvince", "PostalCode", "CountyOrParish",
    "Latitude", "Longitude", "PublicRemarks", "ListAgentFullName", "ListOfficeName", "PhotosCount",
    "PhotosChangeTimestamp", "ModificationTimestamp",
)


def _stop(server: _Server, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


FEED = ResoFeed(host_media=True)  # the Media URLs point at this server, which serves the photos
