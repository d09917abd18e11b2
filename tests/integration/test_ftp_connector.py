"""The FTP/FTPS connector against the sandbox's pyftpdlib server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import csv
import datetime as dt
import io
import socket
import threading
import uuid
from contextlib import contextmanager
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.reso import LISTING_FIELDS
from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.connectors.ftp import CONNECTOR
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.ftp import FtpFeed
from sandbox.listings import synthetic_listings
from tests.support.servers import free_port

DAY = dt.date(2026, 6, 1)
T0 = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.timezone.utc)
VARIANTS = {"ftp": {}, "ftp-nlst": {"mlsd": False}, "ftps": {"tls": True}}


@pytest.fixture(scope="module")
def listings() -> list[dict]:
    return list(synthetic_listings(40, ["naples"], 3))


@pytest.fixture(params=list(VARIANTS))
def feed(request) -> FtpFeed:
    if request.param == "ftps":
        pytest.importorskip("OpenSSL", reason="pyftpdlib's FTPS server needs pyOpenSSL")
    return FtpFeed(**VARIANTS[request.param])


@pytest.fixture
def plain() -> FtpFeed:
    return FtpFeed()


@pytest.fixture
def root(tmp_path):
    return tmp_path / "mls"


@contextmanager
def serving(feed: FtpFeed, root):
    running = feed.start(root)
    try:
        yield running
    finally:
        running.stop()


def fetch(spec: dict, tmp_path, state: dict | None = None, since: dt.datetime | None = None) -> Payload:
    workdir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    return CONNECTOR.fetch(FetchRequest("naples", spec, workdir, since=since, state=state or {}))


def download_spec(feed: FtpFeed, running, **overrides) -> dict:
    spec = feed.source(running, "naples")["download"]
    return {**spec, "max_files": None, **overrides}


def published_names(payload: Payload) -> list[str]:
    return [f.meta["remote"] for f in payload.files]


# -- what arrives ------------------------------------------------------------------------------


def test_files_arrive_byte_identical(feed, root, tmp_path, listings):
    published = feed.publish(listings, root, day=DAY, mtime=T0)
    with serving(feed, root) as running:
        payload = fetch(feed.source(running, "naples")["download"], tmp_path)
    [file] = payload.files
    assert file.path.read_bytes() == published.read_bytes()
    assert file.size == published.stat().st_size
    assert file.meta == {"remote": published.name, "mtime": T0.isoformat(), "size": file.size}
    assert not payload.not_modified


def test_connector_for_ftps_is_the_ftp_connector():
    assert connector_for("ftps") is CONNECTOR and connector_for("ftp") is CONNECTOR


def test_second_run_fetches_only_new_files(feed, root, tmp_path, listings):
    feed.publish(listings[:20], root, day=DAY, mtime=T0)
    with serving(feed, root) as running:
        spec = download_spec(feed, running)
        first = fetch(spec, tmp_path)
        feed.publish(listings[20:], root, day=DAY + dt.timedelta(days=1), mtime=T0 + dt.timedelta(days=1))
        second = fetch(spec, tmp_path, first.state)
        third = fetch(spec, tmp_path, second.state)
    assert published_names(first) == ["listings_full_20260601.txt"]
    assert published_names(second) == ["listings_full_20260602.txt"]
    assert third.files == [] and third.not_modified
    assert set(third.state["files"]) == {"listings_full_20260601.txt", "listings_full_20260602.txt"}


def test_a_changed_file_is_fetched_again(plain, root, tmp_path, listings):
    plain.publish(listings[:20], root, day=DAY, mtime=T0)
    with serving(plain, root) as running:
        spec = download_spec(plain, running)
        first = fetch(spec, tmp_path)
        plain.publish(listings[:20], root, day=DAY, mtime=T0 + dt.timedelta(hours=1))  # same size, newer
        second = fetch(spec, tmp_path, first.state)
        rewritten = plain.publish(listings[:25], root, day=DAY, mtime=T0 + dt.timedelta(hours=1))  # same time
        third = fetch(spec, tmp_path, second.state)
    assert published_names(second) == published_names(third) == ["listings_full_20260601.txt"]
    assert third.files[0].path.read_bytes() == rewritten.read_bytes()


def test_newest_first_and_max_files(feed, root, tmp_path, listings):
    for n in range(3):
        feed.publish(listings[n::3], root, day=DAY + dt.timedelta(days=n), mtime=T0 + dt.timedelta(days=n))
    with serving(feed, root) as running:
        newest = fetch(download_spec(feed, running, max_files=2), tmp_path)
        oldest = fetch(download_spec(feed, running, max_files=2, newest_first=False), tmp_path)
        latest_only = fetch(download_spec(feed, running, max_files=1), tmp_path, newest.state)
    assert published_names(newest) == ["listings_full_20260603.txt", "listings_full_20260602.txt"]
    assert published_names(oldest) == ["listings_full_20260601.txt", "listings_full_20260602.txt"]
    assert latest_only.not_modified  # the older day-one file does not stand in for it


def test_incremental_run_takes_the_change_files_oldest_first(plain, root, tmp_path, listings):
    plain.publish(listings, root, day=DAY, mtime=T0)
    with serving(plain, root) as running:
        spec = plain.source(running, "naples")["download"]
        full = fetch(spec, tmp_path)
        for hours in (2, 1):
            plain.publish_incremental(listings[hours:hours + 2], root, at=T0 + dt.timedelta(hours=hours))
        changes = fetch(spec, tmp_path, full.state, since=T0)
        again = fetch(spec, tmp_path, changes.state, since=T0 + dt.timedelta(hours=2))
    assert published_names(changes) == ["listings_incr_20260601040000.txt", "listings_incr_20260601050000.txt"]
    assert again.not_modified


# -- errors ------------------------------------------------------------------------------------


def test_wrong_password_is_auth_error(feed, root, tmp_path, listings):
    feed.publish(listings, root, day=DAY)
    with serving(feed, root) as running, pytest.raises(SourceAuthError, match="530"):
        fetch(download_spec(feed, running, password="wrong"), tmp_path)


def test_missing_directory_is_feed_not_found(plain, root, tmp_path):
    with serving(plain, root) as running, pytest.raises(FeedNotFound, match="/nowhere"):
        fetch(download_spec(plain, running, directory="/nowhere"), tmp_path)


def test_no_matching_file_is_feed_not_found_naming_pattern_and_directory(plain, root, tmp_path, listings):
    plain.publish(listings, root, day=DAY)
    with serving(plain, root) as running, pytest.raises(FeedNotFound, match=r"agents_\*\.txt in ftp://"):
        fetch(download_spec(plain, running, pattern="agents_*.txt"), tmp_path)


def test_closed_port_is_source_unavailable(tmp_path):
    spec = {"kind": "ftp", "host": "127.0.0.1", "port": free_port(), "pattern": "*", "timeout": 2}
    with pytest.raises(SourceUnavailable, match="Refused"):
        fetch(spec, tmp_path)


def test_421_greeting_is_source_unavailable(tmp_path):
    with raw_server(b"421 Too many connections, try later.\r\n") as port:
        with pytest.raises(SourceUnavailable, match="421"):
            fetch({"kind": "ftp", "host": "127.0.0.1", "port": port, "pattern": "*", "timeout": 2}, tmp_path)


def test_a_silent_server_times_out_as_source_unavailable(tmp_path):
    with raw_server(None) as port:
        with pytest.raises(SourceUnavailable, match="timed out"):
            fetch({"kind": "ftp", "host": "127.0.0.1", "port": port, "pattern": "*", "timeout": 0.3}, tmp_path)


def test_ftps_refuses_an_untrusted_certificate_unless_told(root, tmp_path, listings):
    pytest.importorskip("OpenSSL", reason="pyftpdlib's FTPS server needs pyOpenSSL")
    feed = FtpFeed(tls=True)
    feed.publish(listings, root, day=DAY)
    with serving(feed, root) as running:
        with pytest.raises(SourceConfigError, match="not trusted"):
            fetch(download_spec(feed, running, ca_file=None), tmp_path)
        payload = fetch(download_spec(feed, running, ca_file=None, verify_tls=False), tmp_path)
    assert len(payload.files) == 1


def test_a_plain_ftp_client_is_told_the_server_requires_tls(root, tmp_path, listings):
    pytest.importorskip("OpenSSL", reason="pyftpdlib's FTPS server needs pyOpenSSL")
    feed = FtpFeed(tls=True)
    with serving(feed, root) as running, pytest.raises(SourceConfigError, match="SSL|TLS"):
        fetch(download_spec(feed, running, kind="ftp"), tmp_path)


# -- the dialect -------------------------------------------------------------------------------


def test_the_source_table_reads_the_file_as_expected(plain, root, tmp_path, listings):
    plain.publish(listings, root, day=DAY)
    with serving(plain, root) as running:
        source = plain.source(running, "naples")
        [file] = fetch(source["download"], tmp_path).files
    text = file.path.read_bytes().decode(source["parse"]["encoding"])
    rows = csv.DictReader(io.StringIO(text, newline=""), delimiter=source["parse"]["delimiter"])
    assert [reference_mapping(row, source) for row in rows] == [plain.expected(x) for x in listings]


def reference_mapping(row: dict[str, str], source: dict) -> dict:
    """How a pipeline reading this source table must map one row (an oracle, written separately)."""
    mapped = {}
    for reso, column in source["fields"].items():
        value = source["values"].get(reso, {}).get(row[column], row[column])
        mapped[reso] = coerce(LISTING_FIELDS[reso][1], value, source)
    return mapped


def coerce(kind: str, value: str, source: dict):
    if value == "":
        return None
    if kind == "timestamp":
        naive = dt.datetime.strptime(value, source["parse"]["timestamp_format"])
        return naive.replace(tzinfo=ZoneInfo(source["timezone"])).astimezone(dt.timezone.utc)
    return {"int": int, "decimal": Decimal, "float": float}.get(kind, str)(value)


@contextmanager
def raw_server(greeting: bytes | None):
    """A TCP server on 127.0.0.1 that sends ``greeting`` (or nothing) and keeps the line open."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # so the loop sees ``stopping`` (close() does not wake accept())
    stopping, held = threading.Event(), []

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if greeting:
                conn.sendall(greeting)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()
        for conn in held:
            conn.close()
