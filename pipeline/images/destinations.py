"""Where a migration puts the files: an S3 bucket (under a prefix), or a folder.

``open_destination("s3://bucket/prefix", endpoint_url)`` stores through the one S3 object
store (``core.storage.S3ObjectStore``: obstore, the ETag of every upload checked against the
MD5); ``open_destination("/path")`` (or ``file://``) writes files atomically through
``LocalObjectStore``.

``existing(keys)`` answers "which of these keys are there already, with what size and ETag"
for a batch at once: on S3 with one listing over the batch's key range (a batch's keys are
neighbours, because the archive is listed in order), falling back to HEAD requests only when
the range holds too many other objects. That is how a resumed migration checks the files that
were in flight, without a request per file.

Files above ``IN_MEMORY_LIMIT`` are spooled to a temporary file and uploaded from it
(multipart above 64 MiB); their ETag is then the multipart ETag, which ``multipart_etag``
computes from the spooled bytes, so they are verified too.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from core import storage
from core.storage import LocalObjectStore, ObjectInfo, S3ObjectStore, StorageError
from pipeline.errors import SourceConfigError

IN_MEMORY_LIMIT = 16 * 1024 * 1024
MAX_LISTED = 2000  # objects a range probe reads before it falls back to HEAD requests


class VerifyFailed(StorageError):
    """What the destination holds after an upload is not what was read from the archive."""


class Payload:
    """One file's bytes as read from the archive, with their size and MD5.

    Kept in memory up to ``limit`` bytes, then in a temporary file. Use as a context manager.
    """

    def __init__(self, limit: int = IN_MEMORY_LIMIT):
        self.limit, self.size = limit, 0
        self._md5 = hashlib.md5()
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._file = None

    def write(self, chunk: bytes) -> int:
        self._md5.update(chunk)
        self.size += len(chunk)
        if self._buffer is not None and self.size > self.limit:
            self._spill()
        (self._buffer or self._file).write(chunk)
        return len(chunk)

    def _spill(self) -> None:
        self._file = tempfile.NamedTemporaryFile(prefix="mlsfeeds-migrate-", delete=False)
        self._file.write(self._buffer.getvalue())
        self._buffer = None

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def digest(self) -> bytes:
        return self._md5.digest()

    @property
    def data(self) -> bytes | None:
        """The bytes, when they are in memory."""
        return self._buffer.getvalue() if self._buffer is not None else None

    @property
    def path(self) -> Path | None:
        """The temporary file holding the bytes, when they are not in memory."""
        if self._file is None:
            return None
        self._file.flush()
        return Path(self._file.name)

    def chunks(self, size: int):
        """The bytes again, ``size`` at a time."""
        source = io.BytesIO(self.data) if self._file is None else open(self.path, "rb")
        with source:
            yield from iter(lambda: source.read(size), b"")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
        self._buffer = self._file = None

    def __enter__(self) -> "Payload":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def multipart_etag(payload: Payload) -> str:
    """The ETag ``S3ObjectStore.put_file`` gives ``payload`` when it goes up in parts."""
    return storage.multipart_etag(payload.chunks(storage.part_size(payload.size)))


def same_content(found: ObjectInfo, payload: Payload) -> bool:
    """True when ``found`` (size and ETag at the destination) holds exactly ``payload``."""
    if found.size != payload.size or not found.etag:
        return False
    if "-" in found.etag:
        return found.etag == multipart_etag(payload)
    return found.etag == payload.md5


def _folders(key: str) -> list[str]:
    return key.split("/")


def _covered(key: str, last: str) -> bool:
    """Whether a listing that reached ``last`` has passed ``key``, whichever order it lists in."""
    return key <= last and _folders(key) <= _folders(last)


def content_type(key: str) -> str | None:
    return mimetypes.guess_type(key)[0]


class Destination(Protocol):
    url: str  # what the manifest records

    def is_empty(self) -> bool: ...
    def existing(self, keys: Sequence[str]) -> dict[str, ObjectInfo]: ...
    def put(self, key: str, payload: Payload) -> None: ...
    def content_md5(self, key: str) -> str | None: ...
    def check(self) -> None: ...
    def close(self) -> None: ...


def open_destination(url: str, endpoint_url: str | None = None, connections: int = 16) -> Destination:
    """``s3://bucket[/prefix]`` (at ``endpoint_url``, AWS when None), or a folder / ``file://``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SourceConfigError(f"no bucket in {url!r}: use s3://BUCKET[/PREFIX]")
        return S3Destination.build(parts.netloc, parts.path.strip("/"), endpoint_url, connections)
    if parts.scheme in ("", "file"):
        path = unquote(parts.netloc + parts.path) if parts.scheme == "file" else url
        return FolderDestination(Path(path))
    raise SourceConfigError(f"cannot migrate to {parts.scheme}:// (use s3://BUCKET[/PREFIX] or a folder)")


class FolderDestination:
    """Files under a folder, written atomically; sizes and MD5s read back from the files.

    The folder is created at the first write, so a dry run leaves no trace.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        self._store: LocalObjectStore | None = None

    @property
    def store(self) -> LocalObjectStore:
        if self._store is None:
            self._store = LocalObjectStore(self.root)
        return self._store

    def is_empty(self) -> bool:
        """True when no file is under the folder (stops at the first one found)."""
        return not any(files for _, _, files in os.walk(self.root))

    def existing(self, keys: Sequence[str]) -> dict[str, ObjectInfo]:
        found = {}
        if not self.root.is_dir():
            return found
        for key in keys:
            info = self.store.head(key)
            if info is not None:
                found[key] = info
        return found

    def put(self, key: str, payload: Payload) -> None:
        data = payload.data
        info = self.store.put_bytes(key, data) if data is not None else self.store.put_file(key, payload.path)
        if (info.size, info.etag) != (payload.size, payload.md5):
            raise VerifyFailed(f"wrote {info.size} bytes with MD5 {info.etag}, read {payload.size} with {payload.md5}")

    def content_md5(self, key: str) -> str | None:
        info = self.store.head(key)
        return info.etag if info else None

    def check(self) -> None:
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            raise StorageError(f"cannot write to {self.root}")

    def close(self) -> None:
        pass


class S3Destination:
    """Objects in a bucket under a prefix, through the application's S3 object store."""

    def __init__(self, store: S3ObjectStore, url: str):
        self.store, self.url = store, url

    @classmethod
    def build(cls, bucket: str, prefix: str, endpoint_url: str | None, connections: int) -> "S3Destination":
        store = S3ObjectStore(storage.s3_store(bucket, endpoint_url, connections), bucket, prefix)
        url = f"s3://{bucket}/{prefix}".rstrip("/") + (f"?endpoint={endpoint_url}" if endpoint_url else "")
        return cls(store, url)

    def is_empty(self) -> bool:
        """True when nothing is stored under the prefix (lists at most one page)."""
        return next(iter(self.store.list("")), None) is None

    def existing(self, keys: Sequence[str]) -> dict[str, ObjectInfo]:
        if not keys:
            return {}
        wanted = sorted(keys)
        found, last = self._list_range(wanted)
        for key in wanted:
            if last is not None and key not in found and not _covered(key, last):
                info = self.store.head(key)  # beyond what the listing reached
                if info is not None:
                    found[key] = info
        return found

    def _list_range(self, wanted: list[str]) -> tuple[dict[str, ObjectInfo], str | None]:
        """Objects among ``wanted`` (sorted keys) found by listing their range, and the last key
        the listing reached when it stopped short (None: every wanted key was covered).

        AWS lists in byte order, SeaweedFS folder by folder: the listing has covered a key once
        it went past it in both orders."""
        want, found, last = set(wanted), {}, None
        top, top_in_folders = wanted[-1], max(wanted, key=_folders)
        for count, info in enumerate(self.store.list(os.path.commonprefix(wanted), start_after=wanted[0][:-1]), 1):
            if info.key in want:
                found[info.key] = info
            last = info.key
            if _covered(top, last) and _covered(top_in_folders, last):
                return found, None
            if count >= MAX_LISTED:
                return found, last
        return found, None

    def put(self, key: str, payload: Payload) -> None:
        data = payload.data  # the store checks the ETag the server answers against the MD5
        self.store.put_bytes(key, data, content_type(key)) if data is not None else \
            self.store.put_file(key, payload.path, content_type(key))

    def content_md5(self, key: str) -> str | None:
        """The MD5 of the object's bytes, read back (for multipart objects, whose ETag is not one)."""
        digest = hashlib.md5()
        try:
            with self.store.open(key) as body:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    digest.update(chunk)
        except StorageError:
            return None
        return digest.hexdigest()

    def check(self) -> None:
        try:
            next(iter(self.store.list("")), None)
        except StorageError as exc:
            raise StorageError(f"cannot reach bucket {self.store.bucket!r}: {exc}") from exc

    def close(self) -> None:
        pass
