"""GetObject (RETS 1.7.2 section 5): photos and other objects, streamed part by part.

``get_objects(session, "Property", "Photo", ["3091:*"])`` yields one ``RetsObject`` per object
the server sends, in order, without holding the reply in memory: a ``multipart/parallel`` (or
``multipart/mixed``) reply is walked part by part; a single-object reply is one object whose
headers are the HTTP response's. With ``location=True`` the server sends URLs (``Location``
header) instead of bytes.

Parts that say "no such object" (a ``RETS-Error: 1`` part, or an XML part, with reply 20403) are
skipped, as is a whole reply of 20403; other reply codes raise the mapped pipeline error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import requests
from requests.structures import CaseInsensitiveDict

from pipeline.connectors.rets.multipart import Body, MultipartReader, boundary_of, is_multipart
from pipeline.connectors.rets.replies import EMPTY_RESULTS, Reply, error_for, parse_reply
from pipeline.connectors.rets.session import RetsSession, transport_errors
from pipeline.errors import FeedFormatError

CHUNK_SIZE = 64 * 1024
MAX_XML_PART = 1024 * 1024


@dataclass
class RetsObject:
    """One object of a GetObject reply: its headers and its body (read it before the next one)."""

    headers: CaseInsensitiveDict
    body: Body

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
        """The object's URL, for Location=1 requests."""
        return self.headers.get("Location") or None

    @property
    def description(self) -> str | None:
        return self.headers.get("Content-Description") or None

    @property
    def preferred(self) -> bool:
        return self.headers.get("Preferred", "").strip() == "1"


def get_objects(session: RetsSession, resource: str, object_type: str, ids: Sequence[str] | str, *,
                location: bool = False, chunk_size: int = CHUNK_SIZE) -> Iterator[RetsObject]:
    """Stream the objects of ``ids`` (resource keys, or full ``key:n`` ids) from a GetObject."""
    ids = [ids] if isinstance(ids, str) else list(ids)
    params = {
        "Resource": resource, "Type": object_type, "Location": "1" if location else "0",
        "ID": ",".join(i if ":" in i else f"{i}:*" for i in ids),
    }
    where = session.where("GetObject")
    response, reply = session.with_relogin(lambda: _open(session, params, where))
    with response:
        if reply is not None:
            return
        with transport_errors(where):
            yield from objects_in_reply(response.headers, response.iter_content(chunk_size), where)


def objects_in_reply(headers: Mapping[str, str], chunks: Iterable[bytes], where: str = "GetObject reply"
                     ) -> Iterator[RetsObject]:
    """The objects of a GetObject reply given its HTTP headers and body chunks."""
    headers = CaseInsensitiveDict(headers)
    content_type = headers.get("Content-Type", "")
    if not is_multipart(content_type):
        yield from _single(headers, iter(chunks), where)
        return
    reader = MultipartReader(chunks, boundary_of(content_type), where)
    for part_headers, body in reader.parts():
        found = _part(part_headers, body, where)
        if found is not None:
            yield found


def _open(session: RetsSession, params: dict[str, str], where: str) -> tuple[requests.Response, Reply | None]:
    """Send the request; a whole-reply RETS envelope (20403, or an error) is read at once."""
    response = session.transaction("GetObject", params, stream=True)
    if not _is_xml(response.headers.get("Content-Type", "")):
        return response, None
    with response, transport_errors(where):
        body = response.content
    reply = parse_reply(body, where)
    if reply.code not in EMPTY_RESULTS and reply.code != 0:
        raise error_for(reply.code, reply.text, where)
    return response, reply


def _single(headers: CaseInsensitiveDict, chunks: Iterator[bytes], where: str) -> Iterator[RetsObject]:
    first = next(chunks, b"")
    if first.lstrip().startswith(b"<RETS"):
        _raise_unless_empty(parse_reply(first + b"".join(chunks), where), where)
        return
    yield RetsObject(headers, Body(_prepend(first, chunks)))


def _part(headers: CaseInsensitiveDict, body: Body, where: str) -> RetsObject | None:
    flagged = headers.get("RETS-Error", "").strip() == "1"
    if not flagged and not _is_xml(headers.get("Content-Type", "")):
        return RetsObject(headers, body)
    data = _bounded(body, where)
    try:
        reply = parse_reply(data, where)
    except FeedFormatError:
        if flagged:
            raise
        return RetsObject(headers, Body(iter([data])))  # an XML object, not an error
    _raise_unless_empty(reply, f"{where}, object {headers.get('Content-ID')}:{headers.get('Object-ID')}")
    return None


def _raise_unless_empty(reply: Reply, where: str) -> None:
    if reply.code not in EMPTY_RESULTS and reply.code != 0:
        raise error_for(reply.code, reply.text, where)


def _bounded(body: Body, where: str) -> bytes:
    data = bytearray()
    for chunk in body.iter_bytes():
        data += chunk
        if len(data) > MAX_XML_PART:
            raise FeedFormatError("an XML part of more than 1 MiB", where=where)
    return bytes(data)


def _is_xml(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media in ("text/xml", "application/xml")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
