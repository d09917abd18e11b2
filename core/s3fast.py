"""A lean S3 client for storing many small objects fast: SigV4 over persistent connections.

boto3 spends most of a small PUT in its own Python (request model, event hooks, http.client,
email header parsing): about 450 objects/s per process (NOTES.md). This module does only what
a bulk upload of photos needs, and does it with little CPU:

* ``SigV4Signer`` signs requests with AWS Signature Version 4, written from the published
  specification (canonical request → string to sign → HMAC-SHA256 chain). The signing key is
  derived once per day. Bodies are sent as ``UNSIGNED-PAYLOAD`` with a signed ``Content-MD5``
  (what rclone and the AWS SDKs do for S3 PUTs): the server checks the bytes against the MD5,
  and the MD5 cannot be altered without breaking the signature. ``sign_payload=True`` signs
  the SHA-256 of the body instead, for servers that insist.
* ``HttpConnection`` is a minimal HTTP/1.1 client on one keep-alive socket (plain or TLS):
  Content-Length and chunked bodies, ``Connection: close``, timeouts.
* ``FastS3Client`` keeps one connection per thread, retries timeouts, cut connections, 5xx,
  429 and ``SlowDown`` with exponential backoff and full jitter, and checks that the ETag the
  server returns equals the MD5 of what was sent.
* ``upload_many`` runs PUTs from a thread pool over any iterable of ``Upload`` items, lazily.

Addressing is path-style (``{endpoint}/{bucket}/{key}``), which every S3-compatible server
(SeaweedFS, MinIO, Ceph, AWS) accepts. Everything else (listing, multipart, presigning) stays
with boto3 and :mod:`core.storage`.

Errors::

    StorageError (core.storage)
    └── S3FastError
        ├── S3RequestFailed     the server answered with an error (status, S3 code, message)
        ├── S3Unreachable       no answer: refused, reset, timed out, malformed reply
        └── EtagMismatch        the server stored something other than what was sent
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import queue
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from core.storage import StorageError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_RETRYABLE_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                              "Throttling", "ThrottlingException"})


# -- errors -----------------------------------------------------------------------------------

class S3FastError(StorageError):
    """Root of this module's errors; ``retryable`` says whether trying again can help."""

    retryable = False


class S3RequestFailed(S3FastError):
    """The server answered with an error status."""

    def __init__(self, status: int, code: str, message: str, what: str):
        super().__init__(f"{what}: HTTP {status} {code}: {message}".rstrip(": "))
        self.status, self.code = status, code
        self.retryable = status >= 500 or status in (408, 429) or code in _RETRYABLE_CODES


class S3Unreachable(S3FastError):
    """No usable answer: the connection was refused, cut or timed out."""

    retryable = True


class EtagMismatch(S3FastError):
    """The ETag the server returned is not the MD5 of the bytes sent."""


# -- credentials ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def boto3_credentials(session=None) -> tuple[Callable[[], Credentials], str]:
    """Credentials and region from boto3's usual chain (environment, profile, instance role).

    Returns a provider to call before each request, so refreshable (temporary) credentials
    stay fresh, and the region to sign for (``us-east-1`` when none is configured).
    """
    import boto3

    session = session or boto3.session.Session()
    resolved = session.get_credentials()
    if resolved is None:
        raise S3FastError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile")

    def provider() -> Credentials:
        frozen = resolved.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return provider, session.region_name or "us-east-1"


# -- SigV4 ------------------------------------------------------------------------------------

def uri_encode(text: str, keep_slash: bool) -> str:
    """Percent-encode the UTF-8 bytes of ``text`` except A-Z a-z 0-9 - _ . ~ (and ``/``)."""
    return quote(text, safe="/" if keep_slash else "")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Encoded ``name=value`` pairs sorted by name, then value (``name=`` when value is empty)."""
    pairs = sorted((uri_encode(k, False), uri_encode(v, False)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: dict[str, str]) -> tuple[str, str]:
    """The canonical header block and the signed-header list, from lower-cased names."""
    names = sorted(headers)
    block = "".join(f"{name}:{' '.join(str(headers[name]).split())}\n" for name in names)
    return block, ";".join(names)


def canonical_request(method: str, path: str, query: Iterable[tuple[str, str]],
                      headers: dict[str, str], payload_hash: str) -> tuple[str, str]:
    """SigV4 canonical request (S3 flavour: the path is encoded once) and its signed headers.

    ``path`` is the decoded path, e.g. ``/bucket/photos/a b.jpg``; ``headers`` are the ones to
    sign, with lower-case names.
    """
    block, signed = canonical_headers(headers)
    text = "\n".join([method, uri_encode(path, True), canonical_query(query), block, signed, payload_hash])
    return text, signed


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def amz_date(when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class SigV4Signer:
    """Signs requests for one region and service with credentials from ``provider``."""

    def __init__(self, provider: Callable[[], Credentials], region: str, service: str = "s3"):
        self.provider, self.region, self.service = provider, region, service
        self._key_cache: tuple[str, str, bytes] | None = None  # (date, secret, key)

    def sign(self, method: str, host: str, path: str, headers: dict[str, str], payload_hash: str,
             query: Iterable[tuple[str, str]] = (), when: dt.datetime | None = None) -> dict[str, str]:
        """The headers to send: ``headers`` plus host, x-amz-date, x-amz-content-sha256,
        the session token when there is one, and Authorization."""
        credentials = self.provider()
        stamp = amz_date(when)
        signed = {name.lower(): value for name, value in headers.items()}
        signed.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_hash})
        if credentials.session_token:
            signed["x-amz-security-token"] = credentials.session_token
        canonical, names = canonical_request(method, path, query, signed, payload_hash)
        scope = f"{stamp[:8]}/{self.region}/{self.service}/aws4_request"
        key = self._key(stamp[:8], credentials.secret_key)
        signature = hmac.new(key, string_to_sign(stamp, scope, canonical).encode(), hashlib.sha256).hexdigest()
        signed["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                                   f"SignedHeaders={names}, Signature={signature}")
        return signed

    def _key(self, date: str, secret: str) -> bytes:
        cached = self._key_cache
        if cached and cached[0] == date and cached[1] == secret:
            return cached[2]
        key = signing_key(secret, date, self.region, self.service)
        self._key_cache = (date, secret, key)
        return key


# -- HTTP/1.1 on one socket -------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class HttpConnection:
    """One keep-alive HTTP/1.1 connection. Not thread-safe: one per thread.

    Raises OSError (including socket.timeout) and ``ProtocolError`` on failure; the caller
    closes the connection and retries on a new one.
    """

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: float):
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self._sock: socket.socket | None = None
        self._reader = None

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        if self._sock is None:
            self._connect()
        head = [f"{method} {target} HTTP/1.1\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        head.append(f"content-length: {len(body)}\r\n\r\n")
        data = "".join(head).encode("latin-1")
        if len(body) <= 1 << 16:
            self._sock.sendall(data + body)  # one segment for a small photo
        else:
            self._sock.sendall(data)
            self._sock.sendall(body)
        return self._read_response(method)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._reader = None, None

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        self._sock, self._reader = sock, sock.makefile("rb")

    def _read_response(self, method: str) -> Response:
        status, version = self._status_line()
        headers = self._headers()
        while 100 <= status < 200:  # an interim reply (100 Continue) precedes the real one
            status, version = self._status_line()
            headers = self._headers()
        body = b"" if method == "HEAD" or status in (204, 304) else self._body(headers)
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.close()
        return Response(status, headers, body)

    def _status_line(self) -> tuple[int, str]:
        line = self._reader.readline(65537)
        if not line:
            raise ProtocolError("the server closed the connection before answering")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"malformed status line {line[:80]!r}")
        return int(parts[1]), parts[0]

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(200):
            line = self._reader.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ProtocolError(f"malformed header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        raise ProtocolError("too many response headers")

    def _body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        if "content-length" in headers:
            return self._exactly(int(headers["content-length"]))
        data = self._reader.read()  # no length: the body runs to the end of the connection
        self.close()
        return data

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self._reader.readline(1026).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._reader.readline(3)

    def _exactly(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) != size:
            raise ProtocolError(f"the body ended after {len(data)} of {size} bytes")
        return data


class ProtocolError(OSError):
    """The server's reply was not valid HTTP/1.1."""


# -- the client -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    max_attempts: int = 6
    base: float = 0.1
    cap: float = 8.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2 ** attempt)))


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    md5: str  # hex; the ETag the server confirmed
    attempts: int


class FastS3Client:
    """PUT and HEAD of whole objects against any S3-compatible endpoint, path-style.

    Thread-safe: each thread gets its own persistent connection. Build one per process and
    share it between threads.
    """

    def __init__(self, endpoint_url: str, provider: Callable[[], Credentials], region: str = "us-east-1", *,
                 timeout: float = 60.0, retry: RetryPolicy = RetryPolicy(), sign_payload: bool = False,
                 verify_etag: bool = True, tls_context: ssl.SSLContext | None = None):
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise S3FastError(f"the S3 endpoint must be an http(s) URL, got {endpoint_url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        self.signer = SigV4Signer(provider, region)
        self.timeout, self.retry = timeout, retry
        self.sign_payload, self.verify_etag = sign_payload, verify_etag
        self._tls = (tls_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._local = threading.local()
        self._all: list[HttpConnection] = []
        self._lock = threading.Lock()

    def put_object(self, bucket: str, key: str, body: bytes, *, md5: bytes | None = None,
                   content_type: str | None = None) -> PutResult:
        """Store ``body`` at ``key``; returns once the server confirmed the MD5 as ETag."""
        digest = md5 or hashlib.md5(body).digest()
        headers = {"content-md5": base64.b64encode(digest).decode("ascii")}
        if content_type:
            headers["content-type"] = content_type
        payload = hashlib.sha256(body).hexdigest() if self.sign_payload else UNSIGNED_PAYLOAD
        reply, attempts = self._send("PUT", bucket, key, headers, body, payload)
        etag = reply.headers.get("etag", "").strip('"')
        if self.verify_etag and etag != digest.hex():
            raise EtagMismatch(f"PUT {bucket}/{key}: the server answered ETag {etag!r}, sent MD5 {digest.hex()}")
        return PutResult(key, len(body), digest.hex(), attempts)

    def head_object(self, bucket: str, key: str) -> tuple[int, str] | None:
        """(size, ETag without quotes), or None when there is no such object."""
        try:
            reply, _ = self._send("HEAD", bucket, key, {}, b"", EMPTY_SHA256)
        except S3RequestFailed as exc:
            if exc.status == 404:
                return None
            raise
        return int(reply.headers.get("content-length", 0)), reply.headers.get("etag", "").strip('"')

    def close(self) -> None:
        """Close every connection this client opened, in any thread."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def _send(self, method: str, bucket: str, key: str, headers: dict[str, str], body: bytes,
              payload_hash: str) -> tuple[Response, int]:
        path = f"{self.base_path}/{bucket}/{key}"
        what = f"{method} {bucket}/{key}"
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                reply = self._once(method, path, headers, body, payload_hash, what)
                return reply, attempt
            except S3FastError as exc:
                if not exc.retryable or attempt == self.retry.max_attempts:
                    raise
            time.sleep(self.retry.delay(attempt - 1))
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, headers: dict[str, str], body: bytes,
              payload_hash: str, what: str) -> Response:
        signed = self.signer.sign(method, self.host_header, path, headers, payload_hash)
        conn = self._connection()
        try:
            reply = conn.request(method, uri_encode(path, True), signed, body)
        except OSError as exc:  # refused, reset, timed out, or not HTTP
            conn.close()
            raise S3Unreachable(f"{what}: {exc.__class__.__name__}: {exc}") from exc
        if reply.status >= 300:
            code, message = _error_details(reply)
            raise S3RequestFailed(reply.status, code, message, what)
        return reply

    def _connection(self) -> HttpConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = HttpConnection(self.host, self.port, self._tls, self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn


def _error_details(reply: Response) -> tuple[str, str]:
    """The S3 error code and message from an XML error body (HEAD replies have none)."""
    text = reply.body[:4096].decode("utf-8", "replace")
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text)
    fallback = {403: "Forbidden", 404: "NotFound"}.get(reply.status, "Error")
    return (code.group(1) if code else fallback), (message.group(1) if message else "")


# -- many uploads -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """One object to store: from ``path`` or ``data`` (``data`` wins when both are set)."""

    key: str
    path: Path | None = None
    data: bytes | None = None
    content_type: str | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as fh:
            return fh.read()


@dataclass(frozen=True)
class UploadOutcome:
    upload: Upload
    result: PutResult | None = None
    error: Exception | None = None


def upload_many(client: FastS3Client, bucket: str, uploads: Iterable[Upload], workers: int = 32) -> Iterator[UploadOutcome]:
    """PUT every upload from a pool of ``workers`` threads; yields outcomes as they finish.

    ``uploads`` is consumed lazily (at most ``2 * workers`` are read ahead), so it can be a
    generator over millions of files. A failed upload is an outcome with ``error`` set, never
    an exception that stops the others. Closing the generator early stops the workers.
    """
    todo: queue.Queue = queue.Queue(maxsize=2 * workers)
    done: queue.Queue = queue.Queue()
    stop = threading.Event()
    threads = [threading.Thread(target=_upload_worker, args=(client, bucket, todo, done), daemon=True,
                                name=f"s3put-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    feeder = threading.Thread(target=_feed, args=(uploads, todo, workers, done, stop), daemon=True,
                              name="s3put-feed")
    feeder.start()
    try:
        finished = 0
        while finished < workers:
            outcome = done.get()
            if outcome is None:
                finished += 1
            elif isinstance(outcome, BaseException):
                raise outcome  # the iterable of uploads itself failed
            else:
                yield outcome
    finally:
        stop.set()
        feeder.join()
        for thread in threads:
            thread.join()


def _feed(uploads: Iterable[Upload], todo: queue.Queue, workers: int, done: queue.Queue,
          stop: threading.Event) -> None:
    try:
        for upload in uploads:
            if not _put_unless(todo, upload, stop):
                break
    except BaseException as exc:  # handed to the consumer, which re-raises it
        done.put(exc)
    for _ in range(workers):
        todo.put(None)


def _put_unless(todo: queue.Queue, item, stop: threading.Event) -> bool:
    """Queue ``item`` unless ``stop`` is set first; False when it was not queued."""
    while not stop.is_set():
        try:
            todo.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _upload_worker(client: FastS3Client, bucket: str, todo: queue.Queue, done: queue.Queue) -> None:
    while (upload := todo.get()) is not None:
        try:
            result = client.put_object(bucket, upload.key, upload.read(), content_type=upload.content_type)
            done.put(UploadOutcome(upload, result))
        except (S3FastError, OSError) as exc:
            done.put(UploadOutcome(upload, error=exc))
    done.put(None)
