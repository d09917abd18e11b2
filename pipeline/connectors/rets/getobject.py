"""GetObject (RETS 1.7.2 section 5): photos and other objects, streamed part by part.

``objects_in_reply`` is the one reader of GetObject replies: the connector's ``get_objects``
and the ``rets`` image strategy both see replies through it, so a reply means the same to both.
A ``multipart/parallel`` (or ``multipart/mixed``) reply is walked part by part; a reply that is
not multipart is one object whose headers are the HTTP response's. Each object, in order:

- an object with bytes (its body, read before asking for the next object);
- a **linked** object: with ``Location=1`` servers send a URL in the ``Location`` header, and
  some send it as an XML part ``<RETS ReplyCode="0"/>`` with a ``Location`` header: that is a
  linked object too (``linked`` is True), never an error or a missing photo;
- an **error** part (``error`` is set): a part flagged ``RETS-Error: 1``, or whose body is a
  RETS reply with an error code. A reply as a whole that is an error raises it instead.

Parts saying "no such object" (20403, and the other empty results) are skipped, as is a whole
reply of 20403. Whether a part is a RETS reply is decided from its headers and its first bytes,
however the transfer chunks them (``<RETS``, after an optional BOM, whitespace and ``<?xml ...?>``
declaration), so an error reply labelled ``image/jpeg`` is still an error.

Captions come from ``Content-Description`` or ``Description``; repeated headers are all kept
(``headers.get_all``), and RETS 1.8 ``ObjectData: name=value`` headers are read into
``object_data``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import requests

from pipeline.connectors.rets.multipart import Body, Headers, MultipartReader, boundary_of, is_multipart
from pipeline.connectors.rets.replies import EMPTY_RESULTS, SUCCESS, Reply, SessionExpired, error_for, parse_reply
from pipeline.connectors.rets.session import RetsSession, transport_errors
from pipeline.errors import FeedFormatError, PipelineError

CHUNK_SIZE = 64 * 1024
MAX_XML_PART = 1024 * 1024
SNIFF_BYTES = 512  # enough to see past a BOM, whitespace and an XML declaration to <RETS


@dataclass
class RetsObject:
    """One object of a GetObject reply: its headers and its body (read it before the next one)."""

    headers: Headers
    body: Body
    linked: bool = False                       # a RETS reply part naming the object by Location
    error: PipelineError | None = field(default=None)

    @property
    def content_id(self) -> str | None:
        """The resource key the object belongs to (the ID's key part)."""
        return self.headers.get("Content-ID")

    @property
    def object_id(self) -> str | None:
        """The object's number within its resource key ("1", "2"...; "0" is often the preferred one)."""
        return self.headers.get("Object-ID")

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def location(self) -> str | None:
        """The object's URL (Location=1 requests, and linked objects)."""
        return (self.headers.get("Location") or "").strip() or None

    @property
    def description(self) -> str | None:
        """The caption: ``Content-Description``, else ``Description``."""
        for name in ("Content-Description", "Description"):
            text = (self.headers.get(name) or "").strip()
            if text:
                return text
        return None

    @property
    def preferred(self) -> bool:
        return (self.headers.get("Preferred") or "").strip() == "1"

    @property
    def object_data(self) -> dict[str, str]:
        """RETS 1.8 ``ObjectData: name=value`` headers, every one of them."""
        pairs = (value.partition("=") for value in self.headers.get_all("ObjectData"))
        return {name.strip(): value.strip() for name, sep, value in pairs if sep and name.strip()}

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def get_objects(session: RetsSession, resource: str, object_type: str, ids: Sequence[str] | str, *,
                location: bool = False, chunk_size: int = CHUNK_SIZE) -> Iterator[RetsObject]:
    """Stream the objects of ``ids`` (resource keys, or full ``key:n`` ids) from a GetObject.

    An error part raises its mapped pipeline error when it is reached.
    """
    ids = [ids] if isinstance(ids, str) else list(ids)
    params = {
        "Resource": resource, "Type": object_type, "Location": "1" if location else "0",
        "ID": ",".join(i if ":" in i else f"{i}:*" for i in ids),
    }
    with request_objects(session, params) as reply:
        for found in reply.objects(chunk_size):
            found.raise_for_error()
            yield found


class GetObjectReply:
    """An open GetObject response; ``objects()`` reads it (once), closing it ends the transfer."""

    def __init__(self, response: requests.Response, where: str, body: bytes | None = None):
        self.response, self.where, self._body = response, where, body
        raw = getattr(response.raw, "headers", None)  # urllib3 keeps repeated headers apart
        self.headers = Headers.of(raw.items() if raw is not None else response.headers)

    def objects(self, chunk_size: int = CHUNK_SIZE) -> Iterator[RetsObject]:
        chunks = [self._body] if self._body is not None else self.response.iter_content(chunk_size)
        with transport_errors(self.where):
            yield from objects_in_reply(self.headers, chunks, self.where)

    def __enter__(self) -> "GetObjectReply":
        return self

    def __exit__(self, *exc) -> None:
        self.response.close()


def request_objects(session: RetsSession, params: dict[str, str]) -> GetObjectReply:
    """Send a GetObject, logging in again once if the server forgot the session.

    A reply labelled XML is read at once: an error code raises here (20701 as SessionExpired,
    hence the new login); anything else (20403, a linked object, an XML object) is left for
    ``objects()`` to interpret like any other reply.
    """
    where = f"{session.where('GetObject')} ID={params.get('ID', '')}"
    return session.with_relogin(lambda: _open(session, params, where))


def _open(session: RetsSession, params: dict[str, str], where: str) -> GetObjectReply:
    response = session.transaction("GetObject", params, stream=True)
    if not _is_xml(response.headers.get("Content-Type", "")):
        return GetObjectReply(response, where)
    with transport_errors(where):
        body = response.content
    if looks_like_reply(body[:SNIFF_BYTES]):
        try:
            reply = parse_reply(body, where)
        except FeedFormatError:
            reply = None  # left to objects(), which knows what a broken part is
        if reply is not None and reply.code not in EMPTY_RESULTS and reply.code != SUCCESS:
            response.close()
            raise error_for(reply.code, reply.text, where)
    return GetObjectReply(response, where, body)


def objects_in_reply(headers: Mapping[str, str] | Headers, chunks: Iterable[bytes],
                     where: str = "GetObject reply") -> Iterator[RetsObject]:
    """The objects of a GetObject reply given its HTTP headers and body chunks (module docstring)."""
    headers = Headers.of(headers)
    content_type = headers.get("Content-Type", "")
    if not is_multipart(content_type):
        found = _object(headers, Body(chunks), where)
        if found is not None:
            found.raise_for_error()  # the reply as a whole is the error
            yield found
        return
    for part_headers, body in MultipartReader(chunks, boundary_of(content_type), where).parts():
        found = _object(part_headers, body, f"{where}, object {part_headers.get('Content-ID')}:"
                                                f"{part_headers.get('Object-ID')}")
        if found is not None:
            yield found


def _object(headers: Headers, body: Body, where: str) -> RetsObject | None:
    """One part as an object, a linked object or an error; None for "no such object"."""
    head, chunks = _peek(body.iter_bytes(), SNIFF_BYTES)
    flagged = (headers.get("RETS-Error") or "").strip() == "1"
    if not (flagged or looks_like_reply(head)):
        return RetsObject(headers, Body(chunks))
    data = _bounded(chunks, where)
    try:
        reply = parse_reply(data, where)
    except FeedFormatError as exc:
        if flagged:
            return RetsObject(headers, Body([]), error=exc)
        return RetsObject(headers, Body([data]))  # an XML object that is not a RETS reply
    return _from_reply(headers, reply, where)


def _from_reply(headers: Headers, reply: Reply, where: str) -> RetsObject | None:
    if reply.code in EMPTY_RESULTS:
        return None
    if reply.code == SUCCESS:
        if (headers.get("Location") or "").strip():
            return RetsObject(headers, Body([]), linked=True)
        return RetsObject(headers, Body([]), error=FeedFormatError(
            "a RETS reply (code 0) where an object was expected, with no Location", where=where))
    error = error_for(reply.code, reply.text, where)
    if isinstance(error, SessionExpired):
        raise error  # the session, not this object: a new login is the cure
    return RetsObject(headers, Body([]), error=error)


def looks_like_reply(head: bytes) -> bool:
    """True when bytes begin a ``<RETS`` document (after a BOM, whitespace, an XML declaration)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<?xml"):
        end = text.find(b"?>")
        text = text[end + 2:].lstrip() if end >= 0 else b""
    return text.startswith(b"<RETS")


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes (fewer at the end), and every chunk still to be read, those included."""
    head = b""
    while len(head) < size and (chunk := next(chunks, None)) is not None:
        head += chunk
    return head, itertools.chain([head] if head else [], chunks)


def _bounded(chunks: Iterable[bytes], where: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > MAX_XML_PART:
            raise FeedFormatError("an XML part of more than 1 MiB", where=where)
    return bytes(data)


def _is_xml(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in ("text/xml", "application/xml")
