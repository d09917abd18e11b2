"""The object store: raw payloads and photos. One small interface, two implementations.

``LocalObjectStore`` keeps objects as files under a folder (the embedded default);
``S3ObjectStore`` talks to any S3-compatible endpoint through a boto3 client it is given.
Keys are always ``/``-separated and relative (``raw/naples/2026-11-30/17/page-0001.xml``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from core.errors import ConfigError, CoreError


class StorageError(CoreError):
    """The object store failed or refused; the message names the key."""


class ObjectMissing(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None  # MD5 hex for single-part uploads


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo: ...
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...
    def open(self, key: str) -> BinaryIO: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def delete(self, keys: Iterable[str]) -> int: ...
    def presigned_url(self, key: str, expires: int) -> str: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise StorageError(f"invalid object key {key!r}")
    return key


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalObjectStore:
    """Objects as files under ``root``; writes are atomic (temp file, then rename)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        with open(path, "rb") as src:
            return self._write(key, src)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        import io

        return self._write(key, io.BytesIO(data))

    def _write(self, key: str, src: BinaryIO) -> ObjectInfo:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.md5(), 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ObjectInfo(key, size, digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r}") from None

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return ObjectInfo(key, path.stat().st_size, md5_file(path))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a string prefix, as S3 matches it)."""
        start = self.root / prefix if prefix.endswith("/") or not prefix else (self.root / prefix).parent
        if not start.exists():
            return
        for path in sorted(start.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith(".tmp-"):
                yield ObjectInfo(key, path.stat().st_size)

    def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        for key in keys:
            try:
                self._path(key).unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def presigned_url(self, key: str, expires: int) -> str:
        return self._path(key).as_uri()

    def remove_tree(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)


class S3ObjectStore:
    """Objects in ``bucket`` under ``prefix``, through the boto3 S3 client it is handed."""

    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        size = Path(path).stat().st_size
        if size <= 64 * 1024 * 1024:
            return self.put_bytes(key, Path(path).read_bytes(), content_type)
        extra = {"ContentType": content_type} if content_type else {}
        self._call(self.client.upload_file, str(path), self.bucket, self._key(key), ExtraArgs=extra, key=key)
        return ObjectInfo(key, size)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        md5 = hashlib.md5(data)
        args = {"Bucket": self.bucket, "Key": self._key(key), "Body": data,
                "ContentMD5": base64.b64encode(md5.digest()).decode()}
        if content_type:
            args["ContentType"] = content_type
        self._call(self.client.put_object, key=key, **args)
        return ObjectInfo(key, len(data), md5.hexdigest())

    def open(self, key: str) -> BinaryIO:
        reply = self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key), key=key)
        return reply["Body"]

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"head {key!r}: {exc}") from exc
        return ObjectInfo(key, reply["ContentLength"], reply.get("ETag", "").strip('"') or None)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                yield ObjectInfo(key, item["Size"], item.get("ETag", "").strip('"') or None)

    def delete(self, keys: Iterable[str]) -> int:
        removed, batch = 0, []
        for key in keys:
            batch.append({"Key": self._key(key)})
            if len(batch) == 1000:
                removed += self._delete_batch(batch)
                batch = []
        if batch:
            removed += self._delete_batch(batch)
        return removed

    def _delete_batch(self, batch: list[dict]) -> int:
        reply = self._call(self.client.delete_objects, Bucket=self.bucket,
                           Delete={"Objects": batch, "Quiet": True}, key=batch[0]["Key"])
        if errors := reply.get("Errors"):
            raise StorageError(f"could not delete {len(errors)} objects, e.g. {errors[0]}")
        return len(batch)

    def presigned_url(self, key: str, expires: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires
        )

    def _call(self, method, *args, key: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise ObjectMissing(f"no object {key!r}") from exc
            raise StorageError(f"S3 {code} for {key!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc


def s3_client(endpoint_url: str | None, max_connections: int = 16):
    """A boto3 S3 client configured to work with AWS and S3-compatible servers alike."""
    import boto3
    from botocore.config import Config

    config = Config(
        request_checksum_calculation="when_required",   # boto3 >= 1.36 defaults break SeaweedFS/MinIO
        response_checksum_validation="when_required",
        signature_version="s3v4",                       # presigned URLs must not come out as SigV2
        s3={"addressing_style": "path"},
        max_pool_connections=max_connections,
        retries={"mode": "standard", "max_attempts": 5},  # throttling and 5xx are retried
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def open_store(storage_url: str, s3_endpoint_url: str | None = None) -> ObjectStore:
    """``file://PATH`` → LocalObjectStore; ``s3://bucket/prefix`` → S3ObjectStore."""
    parsed = urlparse(storage_url)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3" and parsed.netloc:
        return S3ObjectStore(s3_client(s3_endpoint_url), parsed.netloc, parsed.path)
    raise ConfigError(f"MLSFEEDS_STORAGE_URL must be file://PATH or s3://BUCKET[/PREFIX], got {storage_url!r}")
