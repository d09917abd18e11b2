"""``rets``: photos by RETS GetObject (``Type=Photo&ID=<key>:*``), streamed part by part.

The job hands a strategy only the source's ``[images]`` table, so the login settings are
repeated there (usually the same ``${VAR}`` references as in ``[download]``). Spec keys, with
their defaults:

``login_url`` (required), ``username`` (required), ``password`` ("")
``user_agent`` ("mlsfeeds/0.1"), ``user_agent_password`` (none), ``rets_version`` ("RETS/1.7.2")
``auth`` ("auto": whatever the server's 401 challenge asks; or "digest", "basic")
``timeout`` (60)
    seconds, for connecting and for each read.
``resource`` ("Property"), ``object_type`` ("Photo")
``id_field`` ("ListingKey")
    the field of the listing's mapped record whose value the server keys objects by, e.g.
    ``ListingId`` for servers that want the MLS number: the request asks ``ID=<value>:*``.
``location`` (false)
    true sends ``Location=1``: the server answers URLs, which are linked rather than fetched.
``max_bytes`` (20 MB)
    a larger object is a failed photo.

One logged-in session per worker thread: ``open`` logs in, closing logs out. A session the
server forgot (reply 20701, or HTTP 401) is logged in again once, and the request repeated.

The reply (``multipart/parallel``, or a single object) is read one part at a time; a part is held
in memory only as the bytes of its photo. Its order is its Object-ID (a reply numbered from 0 is
shifted to start at 1; a part without a number takes the next order). A part or reply saying
20403 (no such object) is skipped, so a listing without photos has none. Any other error part
is a failed photo; an error reply, a refused login or an unreachable server fails the source
(SourceUnavailable is retried later, SourceAuthError and the other permanent errors are not).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from pipeline.connectors import _spec
from pipeline.connectors.rets.multipart import Body, MultipartReader, boundary_of, is_multipart
from pipeline.connectors.rets.replies import EMPTY_RESULTS, SUCCESS, SessionExpired, error_for, parse_reply
from pipeline.connectors.rets.session import AUTH_SCHEMES, LoginSettings, RetsSession, transport_errors
from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.images import ListingPhotos, Photo

log = logging.getLogger(__name__)
CHUNK_SIZE = 64 * 1024
MAX_BYTES = 20 * 1024 * 1024
MAX_XML_PART = 1024 * 1024
KEY_FIELDS = {"ListingKey", "ListingId"}


class MissingKey(Exception):
    """This listing has no value to ask its objects by."""


@dataclass(frozen=True)
class RetsPhotoSettings:
    """A ``rets`` images spec, checked."""

    login: LoginSettings
    resource: str = "Property"
    object_type: str = "Photo"
    id_field: str = "ListingKey"
    location: bool = False
    max_bytes: int = MAX_BYTES

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "RetsPhotoSettings":
        with _images_keys():
            return cls(
                login=_login(spec),
                resource=_spec.text(spec, "resource", "Property"),
                object_type=_spec.text(spec, "object_type", "Photo"),
                id_field=_spec.text(spec, "id_field", "ListingKey"),
                location=_spec.flag(spec, "location", False),
                max_bytes=_spec.integer(spec, "max_bytes", MAX_BYTES, minimum=1),
            )


def _login(spec: dict[str, Any]) -> LoginSettings:
    url = _spec.text(spec, "login_url")
    if not url.startswith(("http://", "https://")):
        raise SourceConfigError(f"download.login_url must be the RETS Login URL (http or https), got {url!r}")
    auth = _spec.text(spec, "auth", "auto").lower()
    if auth not in AUTH_SCHEMES:
        raise SourceConfigError(f"download.auth must be one of {', '.join(AUTH_SCHEMES)}, got {auth!r}")
    return LoginSettings(
        url=url, username=_spec.text(spec, "username"), password=_spec.text(spec, "password", ""),
        user_agent=_spec.text(spec, "user_agent", "mlsfeeds/0.1"),
        user_agent_password=_spec.text(spec, "user_agent_password", None),
        rets_version=_spec.text(spec, "rets_version", "RETS/1.7.2"), auth=auth,
        timeout=_spec.number(spec, "timeout", 60.0),
    )


@contextmanager
def _images_keys() -> Iterator[None]:
    """The spec readers are the connectors'; their messages must name the ``[images]`` table."""
    try:
        yield
    except SourceConfigError as exc:
        raise SourceConfigError(str(exc).replace("download.", "images.")) from exc


def object_id(listing: ListingPhotos, id_field: str = "ListingKey") -> str:
    """The GetObject ID that asks for every object of ``listing``: ``<value of id_field>:*``.

    A field the listing records do not carry at all is a SourceConfigError; a listing with no
    value for it, or one that cannot be written in an ID (``:`` or ``,``), raises ``MissingKey``.
    """
    value = _key_value(listing, id_field)
    text = "" if value is None else str(value).strip()
    if not text or ":" in text or "," in text:
        raise MissingKey(f"{listing.listing_key}: {id_field} {text!r} cannot name its RETS objects")
    return f"{text}:*"


def _key_value(listing: ListingPhotos, id_field: str) -> Any:
    if id_field == "ListingKey":
        return listing.listing_key
    if id_field == "ListingId" and listing.listing_id:
        return listing.listing_id
    if id_field not in listing.record and id_field not in KEY_FIELDS:
        raise SourceConfigError(f"images.id_field {id_field!r} is not a field the listings carry")
    return listing.record.get(id_field)


# -- the strategy ---------------------------------------------------------------------------------

class RetsStrategy:
    name = "rets"
    stores = True  # with ``location`` the photos are URLs, which the job links instead

    @contextmanager
    def open(self, spec: dict[str, Any], environ) -> Iterator["RetsPhotos"]:
        settings = RetsPhotoSettings.from_spec(spec)
        with requests.Session() as http:
            session = RetsSession(http, settings.login, log.info)
            with session.opened():
                yield RetsPhotos(session, settings)


class RetsPhotos:
    """The PhotoSource of one worker thread: its logged-in session."""

    def __init__(self, session: RetsSession, settings: RetsPhotoSettings):
        self.session = session
        self.settings = settings

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        try:
            params = self._params(object_id(listing, self.settings.id_field))
        except MissingKey as exc:
            return [Photo(order=1, error=str(exc))]
        return self.session.with_relogin(lambda: self._get(params))

    def _params(self, ident: str) -> dict[str, str]:
        settings = self.settings
        return {"Resource": settings.resource, "Type": settings.object_type, "ID": ident,
                "Location": "1" if settings.location else "0"}

    def _get(self, params: dict[str, str]) -> list[Photo]:
        where = f"{self.session.where('GetObject')} ID={params['ID']}"
        with self.session.transaction("GetObject", params, stream=True) as response, transport_errors(where):
            return photos_in_reply(response.headers, response.iter_content(CHUNK_SIZE), self.settings, where)


def photos_in_reply(headers: Mapping[str, str], chunks: Iterable[bytes], settings: RetsPhotoSettings,
                    where: str = "GetObject reply") -> list[Photo]:
    """The Photos of one GetObject reply, from its HTTP headers and its body's chunks, in order.

    Parts are read one at a time. An error reply as a whole raises its mapped pipeline error
    (20403 gives no photos); in a multipart reply an error part is a failed photo instead.
    """
    headers = CaseInsensitiveDict(headers)
    reader = _PartReader(settings, where, whole=not is_multipart(headers.get("Content-Type", "")))
    return [photo for part_headers, body in _parts(headers, chunks, where)
            if (photo := reader.photo(part_headers, body)) is not None]


def _parts(headers: CaseInsensitiveDict, chunks: Iterable[bytes],
           where: str) -> Iterator[tuple[CaseInsensitiveDict, Body]]:
    """The parts of a reply; a reply that is not multipart is one part with the reply's headers."""
    content_type = headers.get("Content-Type", "")
    if is_multipart(content_type):
        yield from MultipartReader(chunks, boundary_of(content_type), where).parts()
    else:
        yield headers, Body(iter(chunks))


class _PartReader:
    """Turns the parts of one reply into Photos, numbering them by Object-ID."""

    def __init__(self, settings: RetsPhotoSettings, where: str, whole: bool):
        self.settings, self.where, self.whole = settings, where, whole
        self.numbering = Numbering()

    def photo(self, headers: CaseInsensitiveDict, body: Body) -> Photo | None:
        head, chunks = _peek(body.iter_bytes(), 64)
        # Some servers label an error reply image/jpeg: the body says what it is.
        if _may_be_error(headers) or _is_reply(head):
            data = _bounded(Body(chunks), self.where)
            return self._error(headers, data) if _is_reply(data) else self._object(headers, Body(iter([data])))
        return self._object(headers, Body(chunks))

    def _error(self, headers: CaseInsensitiveDict, data: bytes) -> Photo | None:
        where = self.where if self.whole else f"{self.where}, object {headers.get('Object-ID', '?')}"
        try:
            reply = parse_reply(data, where)
        except FeedFormatError as exc:
            return self._failed(headers, exc)
        if reply.code == SUCCESS or reply.code in EMPTY_RESULTS:
            return None  # 20403: no such object
        return self._failed(headers, error_for(reply.code, reply.text, where))

    def _failed(self, headers: CaseInsensitiveDict, error: Exception) -> Photo | None:
        if self.whole or isinstance(error, SessionExpired):
            raise error  # the reply as a whole is the error
        order = self.numbering.order(headers.get("Object-ID"))
        return Photo(order, error=str(error)) if order is not None else None

    def _object(self, headers: CaseInsensitiveDict, body: Body) -> Photo | None:
        order = self.numbering.order(headers.get("Object-ID"))
        if order is None:
            return None  # a second part for an order already had
        if self.settings.location:
            url = headers.get("Location")
            if not url:
                return Photo(order, error=f"{self.where}: object {order} came without a Location")
            return Photo(order, url=url, **_details(headers))
        data = _read(body, self.settings.max_bytes)
        if data is None:
            return Photo(order, error=f"{self.where}: object {order} is larger than {self.settings.max_bytes:,} bytes")
        return Photo(order, data=data, **_details(headers))


class Numbering:
    """Photo orders from Object-IDs: as sent when they start at 1, shifted by one when the reply
    starts at 0; a part without a number takes the next order; a repeated order is dropped."""

    def __init__(self) -> None:
        self.shift: int | None = None
        self.taken: set[int] = set()

    def order(self, object_id: str | None) -> int | None:
        text = (object_id or "").strip()
        if text.isdigit():
            if self.shift is None:
                self.shift = 1 if int(text) == 0 else 0
            order = int(text) + self.shift
        else:
            order = max(self.taken, default=0) + 1
        if order in self.taken:
            return None
        self.taken.add(order)
        return order


def _details(headers: CaseInsensitiveDict) -> dict[str, Any]:
    content_id, object_number = headers.get("Content-ID"), headers.get("Object-ID")
    key = f"{content_id}:{object_number}"[:128] if content_id and object_number else None
    caption = (headers.get("Content-Description") or "").strip()[:255] or None
    return {"media_key": key, "caption": caption}


def _may_be_error(headers: CaseInsensitiveDict) -> bool:
    media = headers.get("Content-Type", "").split(";")[0].strip().lower()
    return headers.get("RETS-Error", "").strip() == "1" or media in ("text/xml", "application/xml")


def _is_reply(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2:].lstrip()
    return head.startswith(b"<RETS")


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes (fewer at the end), and every chunk still to be read, those included."""
    head = b""
    while len(head) < size and (chunk := next(chunks, None)) is not None:
        head += chunk
    return head, itertools.chain([head] if head else [], chunks)


def _bounded(body: Body, where: str) -> bytes:
    data = _read(body, MAX_XML_PART)
    if data is None:
        raise FeedFormatError("an XML part of more than 1 MiB", where=where)
    return data


def _read(body: Body, limit: int) -> bytes | None:
    """The part's bytes, or None (the rest skipped) when there are more than ``limit``."""
    data = bytearray()
    for chunk in body.iter_bytes():
        data += chunk
        if len(data) > limit:
            body.drain()
            return None
    return bytes(data)


STRATEGY = RetsStrategy()
