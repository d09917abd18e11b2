"""Where a migration puts the files: an S3 bucket (under a prefix), or a folder.

``open_destination("s3://bucket/prefix", endpoint_url)`` stores through the fast uploader
(:mod:`core.s3fast`: one signed PUT with Content-MD5 per file, ETag checked) and lists through
boto3; ``open_destination("/path")`` (or ``file://``) writes files atomically through
``LocalObjectStore``.

``existing(keys)`` answers "which of these keys are there already, with what size and ETag"
for a batch at once: on S3 with one ``list_objects_v2`` over the batch's key range (a batch's
keys are neighbours, because the archive is listed in order), falling back to HEAD requests
only when the range holds too many other objects. That is how a resumed migration checks the
files that were in flight, without a request per file.

Files above ``IN_MEMORY_LIMIT`` are spooled to a temporary file and uploaded by boto3
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

from core.s3fast import FastS3Client, boto3_credentials
from core.storage import LocalObjectStore, ObjectInfo, S3ObjectStore, StorageError, s3_client
from pipeline.errors import SourceConfigError

IN_MEMORY_LIMIT = 16 * 1024 * 1024
MAX_LIST_PAGES = 2
BOTO3_PART_SIZE = 8 * 1024 * 1024   # s3transfer's default multipart_chunksize
BOTO3_MAX_PARTS = 10_000


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
    """The ETag boto3's multipart upload of ``payload`` gets: MD5 of the parts' MD5s, '-', count."""
    part = BOTO3_PART_SIZE
    while payload.size / part > BOTO3_MAX_PARTS:
        part *= 2
    digests = [hashlib.md5(chunk).digest() for chunk in payload.chunks(part)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def same_content(found: ObjectInfo, payload: Payload) -> bool:
    """True when ``found`` (size and ETag at the destination) holds exactly ``payload``."""
    if found.size != payload.size or not found.etag:
        return False
    if "-" in found.etag:
        return found.etag == multipart_etag(payload)
    return found.etag == payload.md5


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
    """Objects in ``bucket`` under ``prefix``: PUT through the fast client, the rest through boto3."""

    def __init__(self, client, fast: FastS3Client, bucket: str, prefix: str, url: str):
        self.client, self.fast, self.bucket = client, fast, bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.store = S3ObjectStore(client, bucket, prefix)
        self.url = url

    @classmethod
    def build(cls, bucket: str, prefix: str, endpoint_url: str | None, connections: int) -> "S3Destination":
        provider, region = boto3_credentials()
        endpoint = endpoint_url or f"https://s3.{region}.amazonaws.com"
        url = f"s3://{bucket}/{prefix}".rstrip("/") + (f"?endpoint={endpoint_url}" if endpoint_url else "")
        fast = FastS3Client(endpoint, provider, region)
        pool = max(connections, 10) + 4  # s3transfer runs 10 threads for one multipart upload
        return cls(s3_client(endpoint_url, pool), fast, bucket, prefix, url)

    def is_empty(self) -> bool:
        """True when nothing is stored under the prefix (one LIST of at most one key)."""
        reply = self._list_page({"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": 1}, None)
        return not reply.get("Contents")

    def existing(self, keys: Sequence[str]) -> dict[str, ObjectInfo]:
        if not keys:
            return {}
        wanted = sorted(self.prefix + key for key in keys)
        found, listed_to = self._list_range(wanted)
        for full in wanted:
            if full > listed_to and full not in found:  # beyond what the listing reached
                info = self.store.head(full[len(self.prefix):])
                if info is not None:
                    found[full] = info
        return {full[len(self.prefix):]: info for full, info in found.items()}

    def _list_range(self, wanted: list[str]) -> tuple[dict[str, ObjectInfo], str]:
        """Objects among ``wanted`` (sorted full keys) found by listing their range, and the
        last key the listing reached (everything up to it is known)."""
        want, found, token = set(wanted), {}, None
        request = {"Bucket": self.bucket, "Prefix": os.path.commonprefix(wanted), "StartAfter": wanted[0][:-1]}
        for _ in range(MAX_LIST_PAGES):
            reply = self._list_page(request, token)
            for item in reply.get("Contents", []):
                if item["Key"] in want:
                    found[item["Key"]] = ObjectInfo(item["Key"], item["Size"], item.get("ETag", "").strip('"'))
            last = reply["Contents"][-1]["Key"] if reply.get("Contents") else wanted[-1]
            if not reply.get("IsTruncated") or last >= wanted[-1]:
                return found, wanted[-1]
            token = reply["NextContinuationToken"]
        return found, last

    def _list_page(self, request: dict, token: str | None) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if token:
                return self.client.list_objects_v2(**request, ContinuationToken=token)
            return self.client.list_objects_v2(**request)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not list s3://{self.bucket}/{request['Prefix']}: {exc}") from exc

    def put(self, key: str, payload: Payload) -> None:
        data = payload.data
        if data is not None:
            self.fast.put_object(self.bucket, self.prefix + key, data, md5=payload.digest,
                                 content_type=content_type(key))  # the ETag is checked there
            return
        self.store.put_file(key, payload.path, content_type(key))
        found = self.store.head(key)
        if found is None or not same_content(found, payload):
            raise VerifyFailed(f"after upload the object is {found} (expected {payload.size} bytes, MD5 {payload.md5})")

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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot reach bucket {self.bucket!r}: {exc}") from exc

    def close(self) -> None:
        self.fast.close()
