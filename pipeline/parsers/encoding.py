"""Encodings named in a parse spec: checked once, and made to work for every parser.

``codec(name)`` is the check ``mlsfeeds sources apply`` and the parsers share: a name Python
does not know is a SourceConfigError naming ``parse.encoding``. The XML parsers (``xml``,
``rets-compact``) hand the bytes to libxml2, which knows a different, smaller set of names
(it refuses ``latin-1`` and ``mac_roman``): ``xml_input`` decodes with Python's codec instead
and gives lxml UTF-8, so any encoding Python reads works there too.
"""

from __future__ import annotations

import codecs
import io
from typing import Any, BinaryIO

from pipeline.errors import FeedFormatError, SourceConfigError

EXAMPLES = '"utf-8", "cp1252", "latin-1", "mac_roman"'
CHUNK = 1 << 16


def codec(name: Any, key: str = "parse.encoding") -> str:
    """Python's canonical name of an encoding; SourceConfigError naming ``key`` if it has none."""
    if not isinstance(name, str) or not name.strip():
        raise SourceConfigError(f"{key} must be the name of an encoding ({EXAMPLES}), got {name!r}")
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise SourceConfigError(f"{key} {name!r} is not an encoding Python knows; use one such as {EXAMPLES}") from None


def xml_input(stream: BinaryIO, encoding: str | None) -> tuple[BinaryIO, str | None]:
    """What to give lxml for a document in ``encoding`` (None: what the document declares)."""
    if encoding is None:
        return stream, None
    return io.BufferedReader(Recoded(stream, codec(encoding))), "utf-8"


class Recoded(io.RawIOBase):
    """A binary stream in ``encoding``, read back as UTF-8, decoded chunk by chunk."""

    def __init__(self, stream: BinaryIO, encoding: str):
        self._stream, self._encoding = stream, encoding
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._pending, self._done = b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._done:
            self._pending = self._next()
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size

    def _next(self) -> bytes:
        data = self._stream.read(CHUNK)
        self._done = not data
        try:
            return self._decoder.decode(data, final=self._done).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedFormatError(f"cannot decode {self._encoding} ({exc.reason}); check parse.encoding") from exc
