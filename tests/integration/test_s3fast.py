"""The fast uploader (core.s3fast) against SeaweedFS configured with an identities file.

SeaweedFS checks every signature here (``-s3.config``), so a request signed wrongly is
refused: these tests prove the signer right against a real server, not only against vectors.
Faults (503 SlowDown, cut connections, a lying ETag) come from small real servers on
127.0.0.1, never from patching.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.s3fast import (
    Credentials,
    EtagMismatch,
    FastS3Client,
    RetryPolicy,
    S3RequestFailed,
    S3Unreachable,
    Upload,
    boto3_credentials,
    upload_many,
)


QUICK = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)


def client_for(server, secret: str | None = None, access: str | None = None, **options) -> FastS3Client:
    credentials = Credentials(access or server.access_key, secret or server.secret_key)
    return FastS3Client(server.endpoint_url, lambda: credentials, server.region, **options)


def read_back(server, bucket: str, key: str) -> bytes:
    with server.store(bucket).open(key) as body:
        return body.read()


# -- signing against a server that checks -----------------------------------------------------

@pytest.mark.parametrize("sign_payload", [False, True], ids=["unsigned-payload", "signed-payload"])
def test_put_is_accepted_and_stores_the_bytes(s3_server, s3_bucket, sign_payload):
    data = os.urandom(30_000)
    result = client_for(s3_server, sign_payload=sign_payload).put_object(s3_bucket, "photos/a/1.jpg", data,
                                                                         content_type="image/jpeg")
    assert (result.size, result.md5, result.attempts) == (len(data), hashlib.md5(data).hexdigest(), 1)
    assert read_back(s3_server, s3_bucket, "photos/a/1.jpg") == data
    assert s3_server.client().head_object(Bucket=s3_bucket, Key="photos/a/1.jpg")["ContentType"] == "image/jpeg"


def test_wrong_secret_is_refused_and_not_retried(s3_server, s3_bucket):
    with pytest.raises(S3RequestFailed) as refused:
        client_for(s3_server, secret="not-the-secret", retry=QUICK).put_object(s3_bucket, "x.jpg", b"data")
    assert (refused.value.status, refused.value.code, refused.value.retryable) == (403, "SignatureDoesNotMatch", False)
    assert s3_server.store(s3_bucket).head("x.jpg") is None


def test_unknown_access_key_is_refused(s3_server, s3_bucket):
    with pytest.raises(S3RequestFailed) as refused:
        client_for(s3_server, access="AKIDUNKNOWN").put_object(s3_bucket, "x.jpg", b"data")
    assert refused.value.status == 403 and refused.value.code == "InvalidAccessKeyId"


def test_bytes_that_do_not_match_content_md5_are_refused(s3_server, s3_bucket):
    with pytest.raises(S3RequestFailed) as refused:
        client_for(s3_server).put_object(s3_bucket, "x.jpg", b"data", md5=hashlib.md5(b"other").digest())
    assert refused.value.code == "BadDigest"


@pytest.mark.parametrize("key", ["a b/c+d=e&f.jpg", "ünï/çødé/ƒ.jpg", "x/~tilde_(1)*!'.jpg", "100%.jpg"])
def test_keys_needing_encoding_are_signed_and_stored_verbatim(s3_server, s3_bucket, key):
    client_for(s3_server).put_object(s3_bucket, key, b"k")
    assert [o.key for o in s3_server.store(s3_bucket).list("")] == [key]


def test_head_object(s3_server, s3_bucket):
    client = client_for(s3_server)
    client.put_object(s3_bucket, "h.jpg", b"12345")
    assert client.head_object(s3_bucket, "h.jpg") == (5, hashlib.md5(b"12345").hexdigest())
    assert client.head_object(s3_bucket, "missing.jpg") is None


def test_credentials_come_from_the_boto3_chain(s3_server, s3_bucket):
    provider, region = boto3_credentials()
    client = FastS3Client(s3_server.endpoint_url, provider, region)
    assert client.put_object(s3_bucket, "chain.jpg", b"c").attempts == 1


def test_connections_are_reused(s3_server, s3_bucket):
    client = client_for(s3_server)
    for n in range(20):
        client.put_object(s3_bucket, f"k{n}", b"x")
    assert len(client._all) == 1  # one thread, one keep-alive connection
    client.close()
    client.put_object(s3_bucket, "after-close", b"x")  # reconnects


# -- many uploads -----------------------------------------------------------------------------

def test_upload_many_stores_every_file_with_its_md5(s3_server, s3_bucket, tmp_path):
    files = {}
    for n in range(600):
        data = os.urandom(1_000 + n)
        (tmp_path / f"{n}.jpg").write_bytes(data)
        files[f"batch/{n:04d}.jpg"] = hashlib.md5(data).hexdigest()
    uploads = (Upload(f"batch/{n:04d}.jpg", path=tmp_path / f"{n}.jpg") for n in range(600))

    outcomes = list(upload_many(client_for(s3_server), s3_bucket, uploads, workers=16))

    assert [o.error for o in outcomes if o.error] == []
    assert {o.upload.key: o.result.md5 for o in outcomes} == files
    assert {o.key: o.etag for o in s3_server.store(s3_bucket).list("batch/")} == files


def test_upload_many_reports_failures_without_stopping(s3_server, s3_bucket, tmp_path):
    uploads = [Upload("ok/1.jpg", data=b"1"), Upload("gone.jpg", path=tmp_path / "missing.jpg"),
               Upload("ok/2.jpg", data=b"2")]
    outcomes = {o.upload.key: o for o in upload_many(client_for(s3_server), s3_bucket, uploads, workers=2)}
    assert outcomes["ok/1.jpg"].result and outcomes["ok/2.jpg"].result
    assert isinstance(outcomes["gone.jpg"].error, FileNotFoundError)


def test_upload_many_stops_its_workers_when_abandoned(s3_server, s3_bucket):
    uploads = (Upload(f"lazy/{n}", data=b"x") for n in range(10_000))
    stream = upload_many(client_for(s3_server), s3_bucket, uploads, workers=4)
    first = [next(stream) for _ in range(10)]
    stream.close()
    assert len(first) == 10
    assert sum(1 for _ in s3_server.store(s3_bucket).list("lazy/")) < 100


# -- retries, against a misbehaving server ----------------------------------------------------

class _Flaky(BaseHTTPRequestHandler):
    """Answers PUTs per ``server.script``: a list of actions consumed one per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(self.headers.get("Authorization", ""))
        action = self.server.script.pop(0) if self.server.script else "ok"
        if action == "cut":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, etag = {"ok": (200, hashlib.md5(body).hexdigest()), "lie": (200, "0" * 32),
                        "503": (503, None), "500": (500, None), "403": (403, None)}[action]
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


def flaky_client(url: str, **options) -> FastS3Client:
    return FastS3Client(url, lambda: Credentials("AK", "SK"), retry=QUICK, **options)


def test_slow_down_and_server_errors_are_retried_with_backoff():
    with flaky_server("503", "500", "ok") as (server, url):
        result = flaky_client(url).put_object("b", "k", b"data")
    assert result.attempts == 3 and len(server.seen) == 3


def test_a_cut_connection_is_retried_on_a_new_one():
    with flaky_server("cut", "ok") as (server, url):
        assert flaky_client(url).put_object("b", "k", b"data").attempts == 2


def test_retries_give_up_after_the_last_attempt():
    with flaky_server(*["503"] * 10) as (server, url):
        with pytest.raises(S3RequestFailed) as failed:
            flaky_client(url).put_object("b", "k", b"data")
    assert failed.value.retryable and len(server.seen) == QUICK.max_attempts


def test_refusals_are_not_retried():
    with flaky_server("403", "ok") as (server, url):
        with pytest.raises(S3RequestFailed):
            flaky_client(url).put_object("b", "k", b"data")
    assert len(server.seen) == 1


def test_an_etag_that_is_not_the_md5_is_an_error():
    with flaky_server("lie") as (_, url):
        with pytest.raises(EtagMismatch):
            flaky_client(url).put_object("b", "k", b"data")
    with flaky_server("lie") as (_, url):  # SSE-KMS buckets: ETags are not MD5s, by design
        assert flaky_client(url, verify_etag=False).put_object("b", "k", b"data").attempts == 1


def test_nothing_listening_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(S3Unreachable):
        flaky_client(f"http://127.0.0.1:{port}").put_object("b", "k", b"data")
