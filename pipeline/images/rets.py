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

One logged-in session for the whole photo job: ``open`` logs in once, closing logs out; the
job's threads share it, one GetObject at a time. A session the server forgot (reply 20701, or
HTTP 401) is logged in again once, and the request repeated.

The reply is read by :mod:`pipeline.connectors.rets.getobject`, the one GetObject reader,
one part at a time; a part is held in memory only as the bytes of its photo. Its order is its
Object-ID (a reply numbered from 0 is shifted to start at 1; a part without a number takes the
next order; a second part with the same Object-ID is skipped, its bytes with it). A part or
reply saying 20403 (no such object) is skipped, so a listing without photos has none. A linked
object (a ``Location``, with or without bytes, or an XML ``<RETS ReplyCode="0">`` part with a
``Location``) is linked by its URL; the caption is ``Content-Description`` or ``Description``.
Any other error part is a failed photo (the photo already stored for that position stays); an
error reply, a refused login or an unreachable server fails the source (SourceUnavailable is
retried later, SourceAuthError and the other permanent errors are not).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from pipeline.connectors import _spec
from pipeline.connectors.rets.getobject import CHUNK_SIZE, RetsObject, objects_in_reply, request_objects
from pipeline.connectors.rets.multipart import Body
from pipeline.connectors.rets.session import AUTH_SCHEMES, LoginSettings, RetsSession
from pipeline.errors import SourceConfigError
from pipeline.images import ListingPhotos, Photo

log = logging.getLogger(__name__)
MAX_BYTES = 20 * 1024 * 1024
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
    shared = True  # one logged-in session for the whole job, whatever the number of threads

    @contextmanager
    def open(self, spec: dict[str, Any], environ) -> Iterator["RetsPhotos"]:
        settings = RetsPhotoSettings.from_spec(spec)
        with requests.Session() as http:
            session = RetsSession(http, settings.login, log.info)
            with session.opened():
                yield RetsPhotos(session, settings)


class RetsPhotos:
    """The PhotoSource of a job: its one logged-in session, shared by the job's threads.

    Requests on the session go one at a time (many servers refuse concurrent requests in one
    session); sniffing, hashing and uploading what arrived stay parallel in the job.
    """

    def __init__(self, session: RetsSession, settings: RetsPhotoSettings):
        self.session = session
        self.settings = settings
        self._turn = threading.Lock()

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        try:
            params = self._params(object_id(listing, self.settings.id_field))
        except MissingKey as exc:
            return [Photo(order=1, error=str(exc))]
        with self._turn:
            return self.session.with_relogin(lambda: self._get(params))

    def _params(self, ident: str) -> dict[str, str]:
        settings = self.settings
        return {"Resource": settings.resource, "Type": settings.object_type, "ID": ident,
                "Location": "1" if settings.location else "0"}

    def _get(self, params: dict[str, str]) -> list[Photo]:
        with request_objects(self.session, params) as reply:
            return photos_of(reply.objects(CHUNK_SIZE), self.settings, reply.where)


def photos_in_reply(headers: Mapping[str, str], chunks: Iterable[bytes], settings: RetsPhotoSettings,
                    where: str = "GetObject reply") -> list[Photo]:
    """The Photos of one GetObject reply, from its HTTP headers and its body's chunks, in order.

    An error reply as a whole raises its mapped pipeline error (20403 gives no photos); in a
    multipart reply an error part is a failed photo instead.
    """
    return photos_of(objects_in_reply(headers, chunks, where), settings, where)


def photos_of(objects: Iterable[RetsObject], settings: RetsPhotoSettings, where: str) -> list[Photo]:
    """Photos from the objects of one reply (``getobject.objects_in_reply``), numbered by Object-ID."""
    numbering = Numbering()
    photos = []
    for found in objects:
        order = numbering.order(found.object_id)
        if order is not None:  # None: a second part for an order already had (its bytes skipped)
            photos.append(_photo(found, order, settings, where))
    return photos


def _photo(found: RetsObject, order: int, settings: RetsPhotoSettings, where: str) -> Photo:
    if found.error is not None:
        return Photo(order, error=str(found.error))
    if settings.location or found.linked:
        if not found.location:
            return Photo(order, error=f"{where}: object {order} came without a Location")
        return Photo(order, url=found.location, **_details(found))
    data = _read(found.body, settings.max_bytes)
    if data is None:
        return Photo(order, error=f"{where}: object {order} is larger than {settings.max_bytes:,} bytes")
    if not data and found.location:  # a server that answers a URL where bytes were asked
        return Photo(order, url=found.location, **_details(found))
    return Photo(order, data=data, **_details(found))


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


def _details(found: RetsObject) -> dict[str, Any]:
    content_id, object_number = found.content_id, found.object_id
    key = f"{content_id}:{object_number}"[:128] if content_id and object_number else None
    caption = (found.description or "")[:255] or None
    return {"media_key": key, "caption": caption}


def _read(body: Body, limit: int) -> bytes | None:
    """The part's bytes, or None (the rest skipped) when there are more than ``limit``."""
    data = bytearray()
    for chunk in body.iter_bytes():
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


STRATEGY = RetsStrategy()
