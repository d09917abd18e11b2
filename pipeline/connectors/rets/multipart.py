"""A streaming reader of multipart bodies (RFC 2046), as GetObject sends them.

RETS servers answer a GetObject for several objects with ``multipart/parallel`` (some say
``multipart/mixed``): each part has its own headers (Content-ID, Object-ID, Content-Type,
Location, Content-Description...) and the object's bytes. The reader walks the parts in order
and hands out each body as a stream, so a reply of hundreds of photos never sits in memory.

The reader, not the consumer, owns the position in the reply: whatever a consumer does with a
part's body (reads it whole, reads a few bytes, drops it, closes its iterator half way), asking
for the next part first skips what is left of this one up to the next boundary. A body read
after the reader has moved on is an error, never the next part's bytes.

Tolerated, because real servers do it: bare LF line ends instead of CRLF, no space after a
header's colon, no CRLF before the first boundary, a boundary that the Content-Type header does
not give (taken from the first ``--`` line), a part whose headers run straight into the next
boundary (no blank line, no body), no line end after the closing boundary, and repeated headers
(all kept: RETS 1.8 sends ``ObjectData`` once per value).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from email.message import Message

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


class Headers(Mapping[str, str]):
    """Header lines in the order received, looked up ignoring case; repeated names all kept.

    ``headers[name]`` and ``get`` give the first value of a name, ``get_all`` every value.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def of(cls, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> "Headers":
        """Headers from a mapping (``requests``' merged ones) or from (name, value) pairs."""
        if isinstance(headers, Headers):
            return headers
        return cls(headers.items() if isinstance(headers, Mapping) else headers)

    def add(self, name: str, value: str) -> None:
        self._items.append((name.strip(), value.strip()))

    def append_to_last(self, more: str) -> None:
        """A folded header line: more text for the header read last."""
        name, value = self._items[-1]
        self._items[-1] = (name, f"{value} {more.strip()}".strip())

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def items_all(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return values[0]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._items))

    def __len__(self) -> int:
        return len(dict.fromkeys(key.lower() for key, _ in self._items))

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Body:
    """The body of one part: read it once, whole (``read()``), in chunks, or as a file object."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)

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
    """Yields ``(Headers, Body)`` for each part of a multipart body given as byte chunks."""

    def __init__(self, chunks: Iterable[bytes], boundary: bytes | None, where: str = "multipart reply"):
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._eof = False
        self._boundary = boundary
        self._where = where
        self._closed = False
        self._part = 0            # the number of the part whose body is being read
        self._in_body = False
        self._body_start = False  # nothing of the current body has been looked at yet

    def parts(self) -> Iterator[tuple[Headers, Body]]:
        """Each part in order; stops after the closing boundary."""
        if not self._start():
            return
        while not self._closed:
            headers = self._headers()
            self._part += 1
            yield headers, Body(self._body_of(self._part))
            self._skip_body()

    # -- the body of the current part ------------------------------------------------------------

    def _body_of(self, part: int) -> Iterator[bytes]:
        while True:
            if part != self._part:
                raise RuntimeError(f"{self._where}: part {part}'s body read after the reader moved on")
            chunk = self._body_chunk()
            if chunk is None:
                return
            if chunk:
                yield chunk

    def _skip_body(self) -> None:
        while self._body_chunk() is not None:
            pass

    def _body_chunk(self) -> bytes | None:
        """The next bytes of the current body (maybe empty), or None once its boundary is reached."""
        if not self._in_body:
            return None
        if self._body_start:
            self._body_start = False
            if self._at_delimiter(0):  # an empty body with no line end before the boundary
                self._end_body(0)
                return None
        found = self._find_delimiter()
        if found is not None:
            end = found - 1 if found > 0 and self._buffer[found - 1] == 0x0D else found
            data = bytes(self._buffer[:end])
            self._end_body(found + 1)
            return data
        keep = len(self._marker()) + 4  # a delimiter may straddle what has arrived so far
        if len(self._buffer) > keep:
            data = bytes(self._buffer[:-keep])
            del self._buffer[:-keep]
            return data
        if not self._fill():
            raise SourceUnavailable(f"{self._where}: the reply ended before its closing boundary (cut transfer?)")
        return b""

    def _find_delimiter(self) -> int | None:
        """Where ``\\n--boundary`` starts a real delimiter line in the buffer (the ``\\n``), or None."""
        marker, start = self._marker(), 0
        while (found := self._buffer.find(marker, start)) >= 0:
            verdict = self._delimiter_follows(found + len(marker))
            if verdict is None:
                return None  # need more bytes to tell; the caller keeps the tail and reads on
            if verdict:
                return found
            start = found + 1
        return None

    def _at_delimiter(self, start: int) -> bool:
        prefix = b"--" + self._boundary
        while len(self._buffer) < start + len(prefix) + 2 and self._fill():
            pass
        if not self._buffer.startswith(prefix, start):
            return False
        return self._delimiter_follows(start + len(prefix)) is not False

    def _delimiter_follows(self, position: int) -> bool | None:
        """After ``--boundary``: ``--``, or spaces then a line end or the end of the reply, make a
        delimiter (RFC 2046 transport padding); anything else is body bytes. None: cannot tell yet."""
        rest = bytes(self._buffer[position:position + 2])
        if rest == b"--" or rest[:1] in (b"\r", b"\n"):
            return True
        if rest[:1] == b"-" and len(rest) == 1:
            return True if self._eof else None
        padding = bytes(self._buffer[position:]).lstrip(b" \t")
        if not padding:
            return True if self._eof else None
        return padding[:1] in (b"\r", b"\n")

    def _end_body(self, start: int) -> None:
        """Consume the delimiter line starting at ``start``; note whether it closes the body."""
        del self._buffer[:start]
        line = self._line() or b""
        self._in_body = False
        self._closed = line.strip()[2 + len(self._boundary):].startswith(b"--")

    def _marker(self) -> bytes:
        return b"\n--" + self._boundary

    # -- boundaries and headers ------------------------------------------------------------------

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

    def _headers(self) -> Headers:
        headers, size = Headers(), 0
        while (line := self._line()) is not None and line.strip():
            if line.startswith(b"--" + self._boundary):
                # Headers that run straight into the next boundary: a part with no body.
                self._closed = line.strip().endswith(b"--")
                return headers
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise FeedFormatError("a part's headers are too long", where=self._where)
            _add_header(headers, line.decode("latin-1").rstrip("\r\n"))
        if line is None:
            raise SourceUnavailable(f"{self._where}: the reply ended inside a part's headers (cut transfer?)")
        self._in_body = self._body_start = True
        return headers

    # -- buffer ---------------------------------------------------------------------------------

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


def _add_header(headers: Headers, text: str) -> None:
    if text[:1] in (" ", "\t") and len(headers):
        headers.append_to_last(text)
        return
    name, sep, value = text.partition(":")
    if sep and name.strip():
        headers.add(name, value)
