"""The HTTP connector against the sandbox's HTTP MLS and a generator server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import threading
import tracemalloc
import uuid
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from core.reso import LISTING_FIELDS
from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.connectors.http import CONNECTOR, HttpConnector
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.http import HttpFeed
from sandbox.listings import synthetic_listings
from tests.support.servers import free_port

T0 = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.timezone.utc)
BLOCK = bytes(range(256)) * 4096  # 1 MiB
BIG_BLOCKS = 50


@pytest.fixture(scope="module")
def listings() -> list[dict]:
    return list(synthetic_listings(40, ["denver"], 5))


@pytest.fixture(scope="module")
def feed() -> HttpFeed:
    return HttpFeed()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("http-mls")


@pytest.fixture(scope="module")
def running(feed, root):
    server = feed.start(root)
    yield server
    server.stop()


@pytest.fixture
def document(feed, root, running, listings):
    """listings.json published afresh, no faults pending."""
    running.details["faults"].clear()
    return feed.publish(listings, root, mtime=T0)


def fetch(spec: dict, tmp_path, state: dict | None = None, connector: HttpConnector = CONNECTOR) -> Payload:
    workdir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    return connector.fetch(FetchRequest("denver", spec, workdir, state=state or {}))


def spec_of(feed: HttpFeed, running, **overrides) -> dict:
    return {**feed.source(running, "denver")["download"], **overrides}


# -- what arrives ------------------------------------------------------------------------------


def test_the_document_arrives_byte_identical_with_its_validators(feed, running, document, tmp_path):
    payload = fetch(spec_of(feed, running), tmp_path)
    [file] = payload.files
    assert file.path.read_bytes() == document.read_bytes() and file.size == document.stat().st_size
    assert file.path.name == "listings.json"
    assert file.meta["last_modified"] == "Mon, 01 Jun 2026 07:00:00 GMT"
    assert file.meta["etag"].startswith('"') and file.meta["content_type"] == "application/json"
    [validators] = payload.state["urls"].values()
    assert validators == {"etag": file.meta["etag"], "last_modified": file.meta["last_modified"]}
    assert not payload.not_modified and connector_for("http") is CONNECTOR


@pytest.mark.parametrize("kept", [("etag", "last_modified"), ("etag",), ("last_modified",)])
def test_second_fetch_is_not_modified(feed, running, document, tmp_path, kept):
    first = fetch(spec_of(feed, running), tmp_path)
    url, validators = next(iter(first.state["urls"].items()))
    state = {"urls": {url: {k: validators[k] for k in kept}}}
    second = fetch(spec_of(feed, running), tmp_path, state)
    assert second.not_modified and second.files == []
    assert second.state == first.state  # the 304 carried both validators again


def test_a_republished_document_is_fetched_again(feed, root, running, document, tmp_path, listings):
    first = fetch(spec_of(feed, running), tmp_path)
    feed.publish(listings[:10], root, mtime=T0 + dt.timedelta(hours=1))
    second = fetch(spec_of(feed, running), tmp_path, first.state)
    assert len(second.files) == 1 and second.state != first.state
    assert len(json.loads(second.files[0].path.read_bytes())["listings"]) == 10


def test_conditional_false_always_downloads(feed, running, document, tmp_path):
    first = fetch(spec_of(feed, running), tmp_path)
    assert len(fetch(spec_of(feed, running, conditional=False), tmp_path, first.state).files) == 1


def test_several_urls_bring_only_the_changed_ones(feed, root, running, document, tmp_path, listings):
    other = root / "http" / "agents.json"
    other.write_text('{"agents": []}')
    spec = spec_of(feed, running, url=None, urls=[f"{running.url}/listings.json", f"{running.url}/agents.json"])
    first = fetch(spec, tmp_path)
    other.write_text('{"agents": [1]}')
    second = fetch(spec, tmp_path, first.state)
    assert [f.path.name for f in first.files] == ["01-listings.json", "02-agents.json"]
    assert [f.path.name for f in second.files] == ["02-agents.json"] and not second.not_modified


def test_basic_auth(root, listings, tmp_path):
    feed = HttpFeed(auth="basic")
    feed.publish(listings, root)
    running = feed.start(root)
    try:
        assert len(fetch(spec_of(feed, running), tmp_path).files) == 1
        with pytest.raises(SourceAuthError, match="401"):
            fetch(spec_of(feed, running, password="wrong"), tmp_path)
    finally:
        running.stop()


def test_an_injected_session_is_used_and_left_open(feed, running, document, tmp_path):
    with requests.Session() as session:
        session.headers["User-Agent"] = "mlsfeeds-test"
        payload = fetch(spec_of(feed, running), tmp_path, connector=HttpConnector(session))
        assert len(payload.files) == 1 and session.get(f"{running.url}/listings.json").status_code == 401


# -- errors ------------------------------------------------------------------------------------


def test_503_is_source_unavailable_with_retry_after(feed, running, document, tmp_path):
    running.details["faults"].fail_next(503, headers={"Retry-After": "120"})
    with pytest.raises(SourceUnavailable, match=r"503.*Retry-After: 120"):
        fetch(spec_of(feed, running), tmp_path)


@pytest.mark.parametrize("status", [429, 500, 502])
def test_other_transient_statuses(feed, running, document, tmp_path, status):
    running.details["faults"].fail_next(status)
    with pytest.raises(SourceUnavailable, match=str(status)):
        fetch(spec_of(feed, running), tmp_path)


def test_wrong_token_is_auth_error(feed, running, document, tmp_path):
    with pytest.raises(SourceAuthError, match="401"):
        fetch(spec_of(feed, running, token="wrong"), tmp_path)


def test_403_is_auth_error(feed, running, document, tmp_path):
    running.details["faults"].fail_next(403)
    with pytest.raises(SourceAuthError, match="403"):
        fetch(spec_of(feed, running), tmp_path)


def test_missing_document_is_feed_not_found(feed, running, document, tmp_path):
    with pytest.raises(FeedNotFound, match="404"):
        fetch(spec_of(feed, running, url=f"{running.url}/nothing.json"), tmp_path)


def test_400_is_a_config_error(feed, running, document, tmp_path):
    running.details["faults"].fail_next(400)
    with pytest.raises(SourceConfigError, match="400"):
        fetch(spec_of(feed, running), tmp_path)


def test_closed_port_is_source_unavailable(tmp_path):
    with pytest.raises(SourceUnavailable, match="ConnectionError"):
        fetch({"kind": "http", "url": f"http://127.0.0.1:{free_port()}/x.json"}, tmp_path)


def test_a_silent_server_times_out_as_source_unavailable(generator, tmp_path):
    with pytest.raises(SourceUnavailable, match="timed out"):
        fetch({"kind": "http", "url": f"{generator}/silent", "timeout": 0.3}, tmp_path)


def test_a_body_shorter_than_its_content_length_is_source_unavailable(generator, tmp_path):
    with pytest.raises(SourceUnavailable):
        fetch({"kind": "http", "url": f"{generator}/short"}, tmp_path)


def test_spec_errors_name_the_key(tmp_path):
    with pytest.raises(SourceConfigError, match="url"):
        fetch({"kind": "http"}, tmp_path)
    with pytest.raises(SourceConfigError, match="not both"):
        fetch({"kind": "http", "url": "http://127.0.0.1/", "token": "t", "username": "u"}, tmp_path)
    with pytest.raises(SourceConfigError):
        fetch({"kind": "http", "url": "nowhere"}, tmp_path)


# -- big and compressed --------------------------------------------------------------------------


def test_a_large_file_streams_to_disk_with_flat_memory(generator, tmp_path):
    tracemalloc.start()
    try:
        payload = fetch({"kind": "http", "url": f"{generator}/big.bin"}, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [file] = payload.files
    assert file.size == BIG_BLOCKS * len(BLOCK)
    assert _sha256(file.path) == hashlib.sha256(BLOCK * BIG_BLOCKS).hexdigest()
    assert peak < 8 * len(BLOCK), f"peak {peak / 2**20:.1f} MiB for a {BIG_BLOCKS} MiB file"


def test_a_gzip_content_encoding_is_kept_as_sent(generator, tmp_path):
    [file] = fetch({"kind": "http", "url": f"{generator}/listings.json.gz"}, tmp_path).files
    assert file.meta["content_encoding"] == "gzip"
    assert json.loads(gzip.decompress(file.path.read_bytes())) == {"listings": []}


# -- the dialect -------------------------------------------------------------------------------


def test_the_source_table_reads_the_document_as_expected(feed, running, document, tmp_path, listings):
    source = feed.source(running, "denver")
    [file] = fetch(source["download"], tmp_path).files
    records = json.loads(file.path.read_bytes())[source["parse"]["record_path"]]
    assert [reference_mapping(r, source) for r in records] == [feed.expected(x) for x in listings]


def reference_mapping(record: dict, source: dict) -> dict:
    """How a pipeline reading this source table must map one record (an oracle, written separately)."""
    mapped = {}
    for reso, path in source["fields"].items():
        value = record
        for part in path.split("."):
            value = value.get(part)
        value = source["values"].get(reso, {}).get(value, value)
        mapped[reso] = coerce(LISTING_FIELDS[reso][1], value)
    return mapped


def coerce(kind: str, value):
    if value is None or value == "":
        return None
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return Decimal(str(value)) if kind == "decimal" else value


# -- a server that makes up its answers ------------------------------------------------------------


class _Generator(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802
        route = {"/big.bin": self._big, "/short": self._short, "/listings.json.gz": self._gzip,
                 "/silent": self._silent}
        route.get(self.path, lambda: self.send_error(404))()

    def _big(self) -> None:
        self._head(200, BIG_BLOCKS * len(BLOCK))
        for _ in range(BIG_BLOCKS):
            self.wfile.write(BLOCK)

    def _short(self) -> None:
        self._head(200, 1000)
        self.wfile.write(b"x" * 10)
        self.close_connection = True

    def _gzip(self) -> None:
        body = gzip.compress(b'{"listings": []}')
        self._head(200, len(body), {"Content-Encoding": "gzip", "Content-Type": "application/json"})
        self.wfile.write(body)

    def _silent(self) -> None:
        self.release.wait(10)
        self.close_connection = True

    def _head(self, status: int, length: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(length), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def generator():
    with _serving_generator() as url:
        yield url


@contextmanager
def _serving_generator():
    release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Generator", (_Generator,), {"release": release}))
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # clients that hang up early are the point
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
