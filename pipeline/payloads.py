"""Raw payloads: read back from the object store, decompressed by what the bytes say they are."""

from __future__ import annotations

import gzip
import io
import zipfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from core.storage import ObjectStore

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


@contextmanager
def open_payload(store: ObjectStore, key: str) -> Iterator[BinaryIO]:
    """A readable stream of the payload's content: gzip and zip (first member) are opened."""
    raw = store.open(key)
    try:
        head = raw.read(4)
        stream = _Prefixed(head, raw)
        if head.startswith(GZIP_MAGIC):
            yield gzip.GzipFile(fileobj=io.BufferedReader(stream, 1 << 16))
        elif head.startswith(ZIP_MAGIC):
            yield _first_member(io.BufferedReader(stream))
        else:
            yield io.BufferedReader(stream, 1 << 16)
    finally:
        raw.close()


class _Prefixed(io.RawIOBase):
    """``prefix`` then the rest of ``stream``: lets us sniff a stream that cannot seek."""

    def __init__(self, prefix: bytes, stream):
        self._prefix, self._stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n], self._prefix = self._prefix[:n], self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _first_member(stream: BinaryIO) -> BinaryIO:
    # zip needs to seek; a local file seeks, an S3 body does not, so spool that one.
    if not stream.seekable():
        import tempfile

        spool = tempfile.TemporaryFile()
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            spool.write(chunk)
        spool.seek(0)
        stream = spool
    archive = zipfile.ZipFile(stream)
    names = [n for n in archive.namelist() if not n.endswith("/")]
    return archive.open(names[0])
