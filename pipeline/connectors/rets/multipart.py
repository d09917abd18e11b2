"""A streaming reader of multipart bodies (RFC 2046), as GetObject sends them.

RETS servers answer a GetObject for several objects with ``multipart/parallel`` (some say
``multipart/mixed``): each part has its own headers (Content-ID, Object-ID, Content-Type,
Location, Content-Description...) and the object's bytes. The reader walks the parts in order
and hands out each body as a stream, so a reply of hundreds of photos never sits in memory;
a part's body must be consumed before the next part is asked for (it is skipped otherwise).

Tolerated, because real servers do it: bare LF line ends instead of CRLF, no space after a
header's colon, no CRLF before the first boundary, a boundary that the Content-Type header does
not give (taken from the first ``--`` line), and no line end after the closing boundary.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from email.message import Message

from requests.structures import CaseInsensitiveDict

from pipeline.errors import FeedFormatError, SourceUnavailable

MAX_HEADER_BYTES = 64 * 1024


def boundary_of(content_type: str) -> bytes | None:
    """The boundary parameter of a multipart Content-Type header, or None."""
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    return str(boundary).encode("latin-1") if boundary else None


def is_multipart(content_type: str) -> bool:
    """True for a multipart/* Content-Type (parallel, mixed...)."""
    return content_type.strip().lower().startswith("multipart/")


class Body:
    """The body of one part: read it once, whole (``read()``), in chunks, or as a file object."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's bytes, in chunks as they arrive."""
        yield from self._chunks

    def read(self) -> bytes:
        """The whole body (one object: fine in memory; the reply as a whole never is)."""
        return b"".join(self._chunks)

    def as_file(self) -> io.BufferedReader:
        """A read-only binary file object over the body, for copyfileobj or an upload."""
        return io.BufferedReader(_ChunkFile(self._chunks))

    def drain(self) -> None:
        """Skip whatever of the body is left unread."""
        for _ in self._chunks:
            pass


class _ChunkFile(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


class MultipartReader:
    """Yields ``(headers, Body)`` for each part of a multipart body given as byte chunks."""

    def __init__(self, chunks: Iterable[bytes], boundary: bytes | None, where: str = "multipart reply"):
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._eof = False
        self._boundary = boundary
        self._where = where
        self._closed = False

    def parts(self) -> Iterator[tuple[CaseInsensitiveDict, Body]]:
        """Each part in order; stops after the closing boundary."""
        if not self._start():
            return
        while not self._closed:
            headers = self._headers()
            body = Body(self._body())
            yield headers, body
            body.drain()

    # -- boundaries ------------------------------------------------------------------------------

    def _start(self) -> bool:
        """Skip the preamble up to the first boundary line; False for an empty body."""
        while True:
            line = self._line()
            if line is None:
                if self._boundary is None:
                    return False
                raise FeedFormatError(f"no boundary {self._boundary!r} in the body", where=self._where)
            text = line.strip()
            if self._boundary is None and text.startswith(b"--") and len(text) > 2:
                self._boundary = text[2:]
            if self._boundary is not None and text.startswith(b"--" + self._boundary):
                self._closed = text == b"--" + self._boundary + b"--"
                return True

    def _headers(self) -> CaseInsensitiveDict:
        headers: CaseInsensitiveDict = CaseInsensitiveDict()
        size, last = 0, None
        while (line := self._line()) is not None and line.strip():
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise FeedFormatError("a part's headers are too long", where=self._where)
            last = self._header(headers, line.decode("latin-1").rstrip("\r\n"), last)
        if line is None:
            raise SourceUnavailable(f"{self._where}: the reply ended inside a part's headers (cut transfer?)")
        return headers

    @staticmethod
    def _header(headers: CaseInsensitiveDict, text: str, last: str | None) -> str | None:
        if text[:1] in (" ", "\t") and last:
            headers[last] = f"{headers[last]} {text.strip()}"
            return last
        name, sep, value = text.partition(":")
        if not sep:
            return last
        headers[name.strip()] = value.strip()
        return name.strip()

    def _body(self) -> Iterator[bytes]:
        marker = b"\n--" + self._boundary
        if self._buffer_starts_with(b"--" + self._boundary):
            self._finish_delimiter(0)  # an empty body with no line end before the boundary
            return
        while True:
            found = self._buffer.find(marker)
            if found >= 0:
                end = found - 1 if found > 0 and self._buffer[found - 1] == 0x0D else found
                if end:
                    yield bytes(self._buffer[:end])
                self._finish_delimiter(found + 1)
                return
            keep = len(marker)
            if len(self._buffer) > keep:
                chunk = bytes(self._buffer[:-keep])
                del self._buffer[:-keep]
                yield chunk
            if not self._fill():
                raise SourceUnavailable(f"{self._where}: the reply ended before its closing boundary (cut transfer?)")

    def _finish_delimiter(self, start: int) -> None:
        """Consume the boundary line starting at ``start``; note whether it closes the body."""
        del self._buffer[:start]
        line = self._line() or b""
        rest = line.strip()[2 + len(self._boundary):]
        self._closed = rest.startswith(b"--")

    # -- buffer ---------------------------------------------------------------------------------

    def _buffer_starts_with(self, prefix: bytes) -> bool:
        while len(self._buffer) < len(prefix) and self._fill():
            pass
        return self._buffer.startswith(prefix)

    def _line(self) -> bytes | None:
        """The next line with its line end, or the rest at the end; None when nothing is left."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES and self._boundary is not None:
                end = len(self._buffer) - 1
                break
            if not self._fill():
                if not self._buffer:
                    return None
                end = len(self._buffer) - 1
                break
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = next(self._chunks, None)
        while chunk is not None and not chunk:
            chunk = next(self._chunks, None)
        if chunk is None:
            self._eof = True
            return False
        self._buffer += chunk
        return True
