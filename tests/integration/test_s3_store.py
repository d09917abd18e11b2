"""The object store against a real SeaweedFS S3 server, and the local folder doing the same.

Every behaviour of the ``ObjectStore`` protocol runs on both implementations (``store`` is
parametrized), so the folder used by the embedded mode and S3 in production cannot drift.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.storage import (
    EtagMismatch,
    LocalObjectStore,
    ObjectMissing,
    S3ObjectStore,
    StorageError,
    file_chunks,
    multipart_etag,
    part_size,
    s3_store,
)


MULTIPART_SIZE = 64 * 1024 * 1024 + 1  # S3ObjectStore.put_file goes multipart above 64 MiB


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    server = request.getfixturevalue("s3_server")
    return server.store(server.new_bucket(), prefix="archive")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fetch(url: str) -> bytes:
    """GET a presigned URL: http(s) for S3, file:// for the folder (urllib speaks both)."""
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


def put_many(store, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put_bytes(key, key.encode()), keys))


# -- single objects ---------------------------------------------------------------------------

def test_put_bytes_then_read_head_and_list_agree(store):
    data = os.urandom(20_000)
    info = store.put_bytes("photos/naples/A1/1.jpg", data, "image/jpeg")
    assert (info.key, info.size, info.etag) == ("photos/naples/A1/1.jpg", len(data), md5(data))
    with store.open("photos/naples/A1/1.jpg") as body:
        assert body.read() == data
    head = store.head("photos/naples/A1/1.jpg")
    assert (head.size, head.etag) == (len(data), md5(data))
    assert [(o.key, o.size) for o in store.list("photos/")] == [("photos/naples/A1/1.jpg", len(data))]


def test_put_file_stores_the_file_bytes(store, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8" + os.urandom(5000))
    info = store.put_file("p/photo.jpg", path, "image/jpeg")
    assert (info.size, info.etag) == (path.stat().st_size, md5(path.read_bytes()))
    with store.open("p/photo.jpg") as body:
        assert body.read() == path.read_bytes()


def test_single_part_etag_is_the_md5_in_head_and_listing(store):
    data = b"etag is md5" * 100
    store.put_bytes("e/one", data)
    assert store.head("e/one").etag == md5(data)
    listed = list(store.list("e/"))
    if isinstance(store, S3ObjectStore):  # the folder's listing carries no checksum, by design
        assert listed[0].etag == md5(data)


def test_missing_objects_head_none_and_open_raises(store):
    assert store.head("nope/missing.jpg") is None
    with pytest.raises(ObjectMissing):
        store.open("nope/missing.jpg")


@pytest.mark.parametrize("key", ["a b/ç+d~(1).jpg", "deep/" * 10 + "x.jpg", "100%/a&b=c.jpg"])
def test_unusual_keys_round_trip(store, key):
    store.put_bytes(key, b"x")
    assert [o.key for o in store.list(key.split("/")[0])] == [key]
    with store.open(key) as body:
        assert body.read() == b"x"


@pytest.mark.parametrize("key", ["../escape.jpg", "/absolute.jpg", "a/../../b", ""])
def test_keys_that_escape_are_refused(store, key):
    with pytest.raises(StorageError):
        store.put_bytes(key, b"x")


def test_overwrite_replaces_the_object(store):
    store.put_bytes("o/k", b"first version")
    store.put_bytes("o/k", b"second")
    assert store.head("o/k").size == len(b"second")
    with store.open("o/k") as body:
        assert body.read() == b"second"


# -- many objects -----------------------------------------------------------------------------

def test_listing_and_deleting_more_than_one_page(store):
    keys = [f"bulk/{n // 100:03d}/{n:05d}.jpg" for n in range(2_345)]
    put_many(store, keys)
    store.put_bytes("other/keep.jpg", b"kept")

    listed = list(store.list("bulk/"))
    assert sorted(o.key for o in listed) == keys  # S3 pages by 1,000: three pages here
    assert all(o.size == len(o.key) for o in listed)

    assert store.delete(iter(keys)) == len(keys)  # S3: three delete_objects batches
    assert list(store.list("bulk/")) == []
    assert [o.key for o in store.list("other/")] == ["other/keep.jpg"]


def test_listing_by_folder_prefix_does_not_leak_neighbours(store):
    put_many(store, ["p/a/1", "p/a/2", "p/ab/3", "p/b/4", "q/5"])
    assert sorted(o.key for o in store.list("p/a/")) == ["p/a/1", "p/a/2"]
    assert sorted(o.key for o in store.list("")) == ["p/a/1", "p/a/2", "p/ab/3", "p/b/4", "q/5"]


def test_listing_by_partial_prefix_matches_like_s3(store):
    put_many(store, ["p/a/1", "p/a/2", "p/ab/3", "p/b/4"])
    assert sorted(o.key for o in store.list("p/a")) == ["p/a/1", "p/a/2", "p/ab/3"]


def test_listing_from_after_a_key(store):
    # AWS and the folder list in byte order ("k/a.jpg" < "k/a/1"), SeaweedFS folder by folder
    # ("k/a/1" < "k/a.jpg"): what follows a key depends on the server, never what precedes it.
    put_many(store, ["k/b/1", "k/a/2", "k/a/1", "k/c", "k/a.jpg", "l/1"])
    assert sorted(o.key for o in store.list("k/")) == ["k/a.jpg", "k/a/1", "k/a/2", "k/b/1", "k/c"]
    after = [o.key for o in store.list("k/", start_after="k/a/1")]
    assert {"k/a/2", "k/b/1", "k/c"} <= set(after) and "k/a/1" not in after
    assert sorted(o.key for o in store.list("k/a.")) == ["k/a.jpg"]  # a prefix that sorts after its folder


# -- URLs -------------------------------------------------------------------------------------

def test_presigned_url_returns_the_bytes(store):
    data = os.urandom(3000)
    store.put_bytes("shared/photo.jpg", data, "image/jpeg")
    assert fetch(store.presigned_url("shared/photo.jpg", 300)) == data


def test_tampered_presigned_url_is_refused(s3_server, s3_bucket):
    store = s3_server.store(s3_bucket)
    store.put_bytes("secret.jpg", b"private")
    url = store.presigned_url("secret.jpg", 300)
    assert "X-Amz-Signature=" in url  # SigV4, not SigV2
    assert "X-Amz-Expires=300&" in url
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(url.replace("X-Amz-Expires=300&", "X-Amz-Expires=30000&"))  # a longer life than signed for
    assert refused.value.code == 403


# -- large files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_file(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("large") / "video.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = MULTIPART_SIZE
        while remaining:
            chunk = os.urandom(min(remaining, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return path, digest.hexdigest()


def test_large_file_round_trips(store, large_file):
    path, sha256 = large_file
    info = store.put_file("big/video.bin", path)
    assert info.size == MULTIPART_SIZE
    assert store.head("big/video.bin").size == MULTIPART_SIZE
    digest = hashlib.sha256()
    with store.open("big/video.bin") as body:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == sha256


def test_large_file_goes_up_in_parts(s3_server, s3_bucket, large_file):
    path, _ = large_file
    store = s3_server.store(s3_bucket)
    store.put_file("big/video.bin", path)
    etag = store.head("big/video.bin").etag
    assert etag.endswith("-9")  # 8 MiB parts: 64 MiB + 1 byte is nine parts, not an MD5
    assert etag == multipart_etag(file_chunks(path, part_size(MULTIPART_SIZE)))  # what put_file checked


# -- requests: signing checked by a real server, faults from misbehaving ones -----------------

QUICK = {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=10),
         "backoff": {"init_backoff": dt.timedelta(milliseconds=10), "max_backoff": dt.timedelta(milliseconds=50)}}


def store_at(url: str, bucket: str = "b", access: str = "AK", secret: str = "SK", **options) -> S3ObjectStore:
    import boto3

    session = boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret, region_name="us-east-1")
    return S3ObjectStore(s3_store(bucket, url, session=session, retry=QUICK), bucket, **options)


def test_a_wrong_secret_is_refused_and_nothing_is_stored(s3_server, s3_bucket):
    store = store_at(s3_server.endpoint_url, s3_bucket, s3_server.access_key, "not-the-secret")
    with pytest.raises(StorageError, match="403|Forbidden|SignatureDoesNotMatch"):
        store.put_bytes("x.jpg", b"data")
    assert s3_server.store(s3_bucket).head("x.jpg") is None


@pytest.mark.parametrize("key", ["a b/c+d=e&f.jpg", "ünï/çødé/ƒ.jpg", "x/~tilde_(1)*!'.jpg", "100%.jpg"])
def test_keys_needing_encoding_are_signed_and_stored_verbatim(s3_server, s3_bucket, key):
    store = s3_server.store(s3_bucket)
    store.put_bytes(key, b"k")
    assert [o.key for o in store.list("")] == [key]
    assert fetch(store.presigned_url(key, 60)) == b"k"


class _Flaky(BaseHTTPRequestHandler):
    """Answers PUTs per ``server.script``: a list of actions consumed one per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_PUT(self) -> None:  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(self.headers.get("Authorization", ""))
        action = self.server.script.pop(0) if self.server.script else "ok"
        if action == "cut":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, etag = {"ok": (200, md5(body)), "lie": (200, "0" * 32), "503": (503, None),
                        "500": (500, None), "403": (403, None)}[action]
        code = {503: "SlowDown", 500: "InternalError", 403: "AccessDenied"}.get(status, "")
        payload = f"<Error><Code>{code}</Code><Message>scripted</Message></Error>".encode() if code else b""
        self.send_response(status)
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def flaky_server(*script: str):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.script, server.seen = list(script), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_slow_down_and_server_errors_are_retried():
    with flaky_server("503", "500", "ok") as (server, url):
        assert store_at(url).put_bytes("k", b"data").etag == md5(b"data")
    assert len(server.seen) == 3


def test_a_cut_connection_is_retried():
    with flaky_server("cut", "ok") as (server, url):
        store_at(url).put_bytes("k", b"data")
    assert len(server.seen) == 2


def test_retries_give_up_with_an_error_that_says_why():
    with flaky_server(*["503"] * 10) as (server, url):
        with pytest.raises(StorageError, match="'k'"):
            store_at(url).put_bytes("k", b"data")
    assert len(server.seen) == 1 + QUICK["max_retries"]


def test_refusals_are_not_retried():
    with flaky_server("403", "ok") as (server, url):
        with pytest.raises(StorageError):
            store_at(url).put_bytes("k", b"data")
    assert len(server.seen) == 1


def test_an_etag_that_is_not_the_md5_is_an_error():
    with flaky_server("lie") as (_, url):
        with pytest.raises(EtagMismatch):
            store_at(url).put_bytes("k", b"data")
    with flaky_server("lie") as (_, url):  # SSE-KMS buckets: ETags are not MD5s, by design
        assert store_at(url, verify_etag=False).put_bytes("k", b"data").size == 4


def test_nothing_listening_is_a_storage_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match="'k'"):
        store_at(f"http://127.0.0.1:{port}").put_bytes("k", b"data")
