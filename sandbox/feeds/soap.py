"""A simulated MLS SOAP service with its own dialect, built with spyne.

Dialect (namespace ``urn:example-mls:listings``, SOAP 1.1 document/literal wrapped; WSDL at
``{url}?wsdl``, public):

- ``GetListings(ModifiedSince?, Page?, PageSize?) -> {Page, TotalPages, TotalCount, Listings}``:
  page numbers from 1, PageSize at most 1000 (more is a ``Client.InvalidArgument`` fault);
- ``GetListingsAt(ModifiedSince?, Offset?, Limit?) -> {TotalCount, Listings}``: offset paging;
- ``GetListingChanges(ModifiedSince?, ResumeToken?, MaxRows?) -> {ResumeToken, Listings}``: token
  paging; the last page carries no ResumeToken.

``Listings`` holds ``Listing`` elements sorted by SysId, each with the attribute ``SysId`` (the
listing key) and the children MlsId, Status, Type, Price, StreetAddress, Town, State, Zip,
BedCount, BathCount (absent for land), Sqft, Lat, Lon, PhotoCount, Agent/Name, Agent/Office and
LastModified (xsd:dateTime in UTC). ``ModifiedSince`` selects LastModified at or after it.

Quirks (``QUIRKS``; ``root/soap/quirks.json``, re-read while the server runs):
``end_feed_after`` N serves no record past the N-th of a result (pages beyond are short or
empty, no ResumeToken after it) while TotalCount and TotalPages still count them all.

Every call needs credentials: HTTP Basic (a bad or missing one gets a bare ``401``, as from the
web server in front), or a WS-Security UsernameToken, PasswordText or PasswordDigest (a bad one
gets the fault ``wsse:FailedAuthentication``).

Photos are public, as on an MLS's photo host: ``GET /photos/{MlsId}/{n}.jpg`` for n in
1..PhotoCount, rendered on request by sandbox.photos at the listing's ``PhotoVersion`` as last
published (``root/soap/photos.json`` says which); the source links them with ``url_template``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import re
import threading
from collections.abc import Iterable
from decimal import Decimal as D
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lxml import etree
from spyne import (
    Application, Array, ComplexModel, DateTime, Decimal, Double, Fault, Integer32, ServiceBase, Unicode,
    XmlAttribute, rpc,
)
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from sandbox.feeds import Running
from sandbox.feeds._common import Quirks, atomic_file, saved_port
from sandbox.photos import photo_bytes

NS = "urn:example-mls:listings"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
MAX_PAGE_SIZE = 1000
PATH = "/soap"
PHOTO_TEMPLATE = "/photos/{ListingId}/{n}.jpg"  # on this server, public
PHOTO_PATH = re.compile(r"/photos/([^/]+)/(\d+)\.jpg")
USERNAME, PASSWORD = "mls-user", "mls-secret"
QUIRKS = {"end_feed_after": "no record past this many is served, while TotalCount and TotalPages count them all"}

STATUS = {
    "Active": "Active", "Active Under Contract": "Contingent", "Pending": "Pending", "Closed": "Sold",
    "Coming Soon": "ComingSoon", "Withdrawn": "Withdrawn", "Expired": "Expired", "Canceled": "Cancelled",
    "Hold": "TempOff",
}
TYPE = {
    "Residential": "RES", "Residential Lease": "RNT", "Land": "LND", "Commercial Sale": "COM",
    "Residential Income": "MUL", "Farm": "FRM", "Manufactured In Park": "MOB",
}
FIELDS = {  # RESO name -> field of this dialect (slash path below Listing, "@" for attributes)
    "ListingKey": "@SysId", "ListingId": "MlsId", "StandardStatus": "Status", "PropertyType": "Type",
    "ListPrice": "Price", "UnparsedAddress": "StreetAddress", "City": "Town", "StateOrProvince": "State",
    "PostalCode": "Zip", "BedroomsTotal": "BedCount", "BathroomsTotalInteger": "BathCount",
    "LivingArea": "Sqft", "Latitude": "Lat", "Longitude": "Lon", "PhotosCount": "PhotoCount",
    "ListAgentFullName": "Agent/Name", "ListOfficeName": "Agent/Office", "ModificationTimestamp": "LastModified",
}


class Agent(ComplexModel):
    __namespace__ = NS
    _type_info = [("Name", Unicode), ("Office", Unicode)]


class Listing(ComplexModel):
    __namespace__ = NS
    _type_info = [
        ("SysId", XmlAttribute(Unicode)), ("MlsId", Unicode), ("Status", Unicode), ("Type", Unicode),
        ("Price", Decimal), ("StreetAddress", Unicode), ("Town", Unicode), ("State", Unicode), ("Zip", Unicode),
        ("BedCount", Integer32), ("BathCount", Integer32), ("Sqft", Integer32), ("Lat", Double), ("Lon", Double),
        ("PhotoCount", Integer32), ("Agent", Agent), ("LastModified", DateTime),
    ]


class ListingPage(ComplexModel):
    __namespace__ = NS
    _type_info = [("Page", Integer32), ("TotalPages", Integer32), ("TotalCount", Integer32),
                  ("Listings", Array(Listing))]


class ListingSlice(ComplexModel):
    __namespace__ = NS
    _type_info = [("TotalCount", Integer32), ("Listings", Array(Listing))]


class ListingChanges(ComplexModel):
    __namespace__ = NS
    _type_info = [("ResumeToken", Unicode), ("Listings", Array(Listing))]


class ListingsService(ServiceBase):
    @rpc(DateTime, Integer32, Integer32, _returns=ListingPage)
    def GetListings(ctx, ModifiedSince, Page, PageSize):
        page, size = Page or 1, _page_size(PageSize)
        if page < 1:
            raise Fault("Client.InvalidArgument", "Page starts at 1")
        rows = _store(ctx).since(ModifiedSince)
        total_pages = max(1, -(-len(rows) // size))
        chunk = _served(ctx, rows)[(page - 1) * size: page * size]
        return ListingPage(Page=page, TotalPages=total_pages, TotalCount=len(rows), Listings=chunk)

    @rpc(DateTime, Integer32, Integer32, _returns=ListingSlice)
    def GetListingsAt(ctx, ModifiedSince, Offset, Limit):
        rows = _store(ctx).since(ModifiedSince)
        start = max(Offset or 0, 0)
        return ListingSlice(TotalCount=len(rows), Listings=_served(ctx, rows)[start: start + _page_size(Limit)])

    @rpc(DateTime, Unicode, Integer32, _returns=ListingChanges)
    def GetListingChanges(ctx, ModifiedSince, ResumeToken, MaxRows):
        rows = _served(ctx, _store(ctx).since(ModifiedSince))
        start, size = _offset_of(ResumeToken), _page_size(MaxRows)
        token = _token_for(start + size) if start + size < len(rows) else None
        return ListingChanges(ResumeToken=token, Listings=rows[start: start + size])


def _page_size(value: int | None) -> int:
    if value is not None and not 1 <= value <= MAX_PAGE_SIZE:
        raise Fault("Client.InvalidArgument", f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return value or 100


def _token_for(offset: int) -> str:
    return base64.urlsafe_b64encode(f"resume:{offset}".encode()).decode()


def _offset_of(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("resume:"))
    except ValueError as exc:
        raise Fault("Client.InvalidArgument", "ResumeToken is not one this service issued") from exc


def _store(ctx) -> _Store:
    return ctx.transport.req_env["sandbox.store"]


def _served(ctx, rows: list) -> list:
    """The rows a call may serve: all of them, or the first ``end_feed_after`` (a quirk)."""
    end = ctx.transport.req_env["sandbox.quirks"].get().get("end_feed_after")
    return rows if end is None else rows[:end]


class _Store:
    """The published listings, re-read whenever ``publish`` has replaced the file."""

    def __init__(self, path: Path):
        self._path = path
        self._cached: tuple[tuple[int, int], list[Listing]] | None = None

    def since(self, since: dt.datetime | None) -> list[Listing]:
        rows = self._rows()
        if since is None:
            return rows
        since = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
        return [row for row in rows if row.LastModified >= since]

    def _rows(self) -> list[Listing]:
        stat = self._path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is None or cached[0] != signature:
            cached = (signature, [_listing(r) for r in json.loads(self._path.read_bytes())])
            self._cached = cached
        return cached[1]


def _listing(record: dict) -> Listing:
    values = dict(record, Agent=Agent(**record["Agent"]), Price=D(record["Price"]),
                  LastModified=dt.datetime.fromisoformat(record["LastModified"]))
    return Listing(**values)


# -- photos ---------------------------------------------------------------------------------------

class _PhotoIndex:
    """Each listing's photos as last published, ``{MlsId: [ListingKey, count, version]}``,
    re-read whenever ``publish`` has replaced the file."""

    def __init__(self, path: Path):
        self._path = path
        self._cached: tuple[tuple[int, int], dict[str, list]] | None = None

    def photo(self, listing_id: str, n: int) -> bytes | None:
        """Photo ``n`` of the listing as published, or None when there is no such photo."""
        key, count, version = self._entries().get(listing_id, ("", 0, 0))
        return photo_bytes(key, n, version) if 1 <= n <= count else None

    def _entries(self) -> dict[str, list]:
        stat = self._path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is None or cached[0] != signature:
            cached = (signature, json.loads(self._path.read_bytes()))
            self._cached = cached
        return cached[1]


class _PhotoHost:
    """WSGI middleware: ``GET /photos/{MlsId}/{n}.jpg`` answered from the index, the rest passed on."""

    def __init__(self, app, index: _PhotoIndex):
        self._app, self._index = app, index

    def __call__(self, environ, start_response):
        match = PHOTO_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ["REQUEST_METHOD"] != "GET":
            return self._app(environ, start_response)
        data = self._index.photo(match[1], int(match[2]))
        if data is None:
            return _plain(start_response, "404 Not Found", b"no such photo\n")
        return _plain(start_response, "200 OK", data, "image/png" if data.startswith(b"\x89PNG") else "image/jpeg")


def _photo_entry(listing: dict) -> list:
    return [listing["ListingKey"], listing.get("PhotosCount") or 0, listing.get("PhotoVersion", 0)]


# -- authentication -------------------------------------------------------------------------------

class _Gate:
    """WSGI middleware: HTTP Basic or a WS-Security UsernameToken, and injected failures."""

    def __init__(self, app, store: _Store, username: str, password: str, quirks: Quirks):
        self._app, self._store, self._quirks = app, store, quirks
        self._username, self._password = username, password
        self.failures: list[int] = []  # HTTP statuses to answer the next POSTs with

    def __call__(self, environ, start_response):
        environ["sandbox.store"], environ["sandbox.quirks"] = self._store, self._quirks
        if environ.get("PATH_INFO", "").rstrip("/") != PATH:
            return _plain(start_response, "404 Not Found", b"not found\n")
        if environ["REQUEST_METHOD"] != "POST":
            return self._app(environ, start_response)
        if self.failures:
            status = HTTPStatus(self.failures.pop(0))
            return _plain(start_response, f"{status.value} {status.phrase}", b"injected failure\n",
                          extra=[("Retry-After", "30")])
        if environ.get("HTTP_AUTHORIZATION"):
            return self._basic(environ, start_response)
        return self._wsse(environ, start_response)

    def _basic(self, environ, start_response):
        scheme, _, encoded = environ["HTTP_AUTHORIZATION"].partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme.lower() == "basic" and self._matches(user, password):
            return self._app(environ, start_response)
        return _unauthorized(start_response)

    def _wsse(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        token = _username_token(body)
        if token is None:
            return _unauthorized(start_response)
        if not self._token_is_valid(token):
            return _plain(start_response, "500 Internal Server Error", _FAILED_AUTHENTICATION, "text/xml")
        return self._app(environ, start_response)

    def _token_is_valid(self, token: dict) -> bool:
        if not token["type"].endswith("#PasswordDigest"):
            return self._matches(token["username"], token["password"])
        nonce = base64.b64decode(token["nonce"] or "")
        digest = hashlib.sha1(nonce + token["created"].encode() + self._password.encode()).digest()
        return self._matches(token["username"], self._password) and hmac.compare_digest(
            base64.b64encode(digest).decode(), token["password"])

    def _matches(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user, self._username) and hmac.compare_digest(password, self._password)


def _username_token(body: bytes) -> dict | None:
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    token = root.find(f".//{{{WSSE}}}UsernameToken")
    if token is None:
        return None
    password = token.find(f"{{{WSSE}}}Password")
    return {
        "username": token.findtext(f"{{{WSSE}}}Username") or "",
        "password": (password.text if password is not None else "") or "",
        "type": (password.get("Type") if password is not None else "") or "#PasswordText",
        "nonce": token.findtext(f"{{{WSSE}}}Nonce"),
        "created": token.findtext(f"{{{WSU}}}Created") or "",
    }


_FAILED_AUTHENTICATION = (
    f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    f' xmlns:wsse="{WSSE}"><soap:Body><soap:Fault><faultcode>wsse:FailedAuthentication</faultcode>'
    f"<faultstring>The security token could not be authenticated or authorized</faultstring>"
    f"</soap:Fault></soap:Body></soap:Envelope>"
).encode()


def _unauthorized(start_response):
    return _plain(start_response, "401 Unauthorized", b"401 Unauthorized\n",
                  extra=[("WWW-Authenticate", 'Basic realm="MLS listings"')])


def _plain(start_response, status: str, body: bytes, content_type: str = "text/plain", extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


# -- the feed -------------------------------------------------------------------------------------

class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class SoapFeed:
    """The SOAP MLS: ``publish`` writes ``root/soap/listings.json``; ``start`` serves it."""

    kind = "soap"

    def publish(self, listings: Iterable[dict], root: Path) -> None:
        """Replace what the service serves (atomically: a running server never reads half a file)."""
        listings = list(listings)
        records = sorted((_dialect(listing) for listing in listings), key=lambda r: r["SysId"])
        photos = {listing["ListingId"]: _photo_entry(listing) for listing in listings}
        with atomic_file(Path(root) / "soap" / "photos.json") as out:
            out.write(json.dumps(photos, separators=(",", ":")).encode())
        with atomic_file(Path(root) / "soap" / "listings.json") as out:
            out.write(json.dumps(records, separators=(",", ":")).encode())

    def start(self, root: Path, username: str = USERNAME, password: str = PASSWORD) -> Running:
        """Serve on 127.0.0.1, a free port. ``details``: wsdl, username, password, photo_template
        (the absolute URL pattern of the photos), and ``fail(status, count=1)`` to answer the next
        ``count`` calls with that HTTP status."""
        logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)  # client faults are expected
        store = _Store(Path(root) / "soap" / "listings.json")
        soap = WsgiApplication(Application([ListingsService], tns=NS, name="MlsListings",
                                           in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()))
        gate = _Gate(soap, store, username, password, Quirks(root, "soap"))
        app = _PhotoHost(gate, _PhotoIndex(Path(root) / "soap" / "photos.json"))
        server = make_server("127.0.0.1", saved_port(root, "soap"), app, server_class=_ThreadingWSGIServer,
                             handler_class=_QuietHandler)
        base = f"http://127.0.0.1:{server.server_port}"
        url = base + PATH
        soap.doc.wsdl11.build_interface_document(url)  # spyne would take it from the first Host header
        thread = threading.Thread(target=server.serve_forever, name="sandbox-soap", daemon=True)
        thread.start()
        details = {"wsdl": url + "?wsdl", "username": username, "password": password,
                   "photo_template": base + PHOTO_TEMPLATE,
                   "fail": lambda status, count=1: gate.failures.extend([status] * count)}
        return Running(url=url, stop=lambda: _stop(server, thread), details=details)

    def source(self, running: Running, source_id: str) -> dict:
        """The ``[[source]]`` table that reads this feed with page paging and HTTP Basic."""
        details = running.details
        return {
            "id": source_id,
            "name": f"Sandbox SOAP MLS {source_id}",
            "timezone": "UTC",
            "download": {
                "kind": "soap", "wsdl": details["wsdl"], "operation": "GetListings",
                "username": details["username"], "password": details["password"],
                "since_arg": "ModifiedSince",
                "paging": {"style": "page", "page_arg": "Page", "size_arg": "PageSize", "page_size": 250,
                           "records_path": "Listings/Listing", "total_pages_path": "TotalPages",
                           "total_path": "TotalCount"},
            },
            "parse": {"format": "xml", "record": "Listing"},
            "fields": dict(FIELDS),
            "values": {"StandardStatus": _inverse(STATUS), "PropertyType": _inverse(TYPE)},
            "images": {"strategy": "url_template", "template": details["photo_template"]},
        }

    def expected(self, listing: dict) -> dict:
        """The RESO fields this dialect carries, as the pipeline must store them."""
        record = _dialect(listing)
        stored = {
            "ListingKey": record["SysId"], "ListingId": record["MlsId"],
            "StandardStatus": _inverse(STATUS)[record["Status"]], "PropertyType": _inverse(TYPE)[record["Type"]],
            "ListPrice": D(record["Price"]), "UnparsedAddress": record["StreetAddress"], "City": record["Town"],
            "StateOrProvince": record["State"], "PostalCode": record["Zip"], "BedroomsTotal": record["BedCount"],
            "BathroomsTotalInteger": record["BathCount"], "LivingArea": _decimal_or_none(record["Sqft"]),
            "Latitude": record["Lat"], "Longitude": record["Lon"], "PhotosCount": record["PhotoCount"],
            "ListAgentFullName": record["Agent"]["Name"], "ListOfficeName": record["Agent"]["Office"],
            "ModificationTimestamp": dt.datetime.fromisoformat(record["LastModified"]),
        }
        return {name: value for name, value in stored.items() if value is not None}

    def expected_photos(self, listing: dict, running: Running | None = None) -> list[dict]:
        """The listing's photos as the pipeline must link them, ``{"order": n, "url": ...}`` for
        1..PhotosCount: absolute URLs on ``running``'s server, or their paths when none is given."""
        template = running.details["photo_template"] if running else PHOTO_TEMPLATE
        return [{"order": n, "url": template.format(ListingId=listing["ListingId"], n=n)}
                for n in range(1, (listing.get("PhotosCount") or 0) + 1)]


def _dialect(listing: dict) -> dict:
    """A RESO-named listing in this service's words (JSON-ready)."""
    living_area = listing.get("LivingArea")
    return {
        "SysId": listing["ListingKey"], "MlsId": listing["ListingId"], "Status": STATUS[listing["StandardStatus"]],
        "Type": TYPE[listing["PropertyType"]], "Price": str(listing["ListPrice"]),
        "StreetAddress": listing["UnparsedAddress"].split(",")[0], "Town": listing["City"],
        "State": listing["StateOrProvince"], "Zip": listing["PostalCode"],
        "BedCount": listing.get("BedroomsTotal"), "BathCount": listing.get("BathroomsTotalInteger"),
        "Sqft": int(living_area) if living_area is not None else None,
        "Lat": listing["Latitude"], "Lon": listing["Longitude"], "PhotoCount": listing["PhotosCount"],
        "Agent": {"Name": listing["ListAgentFullName"], "Office": listing["ListOfficeName"]},
        "LastModified": listing["ModificationTimestamp"].astimezone(dt.timezone.utc).isoformat(),
    }


def _decimal_or_none(value: int | None) -> D | None:
    return None if value is None else D(value)


def _inverse(mapping: dict[str, str]) -> dict[str, str]:
    return {theirs: ours for ours, theirs in mapping.items()}


def _stop(server, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


FEED = SoapFeed()
