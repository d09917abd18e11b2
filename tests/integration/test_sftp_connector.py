"""The SFTP connector (paramiko) against the sandbox's asyncssh server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import socket
import uuid
from decimal import Decimal

import pytest

from core.reso import LISTING_FIELDS
from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.connectors.sftp import CONNECTOR
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.sftp import SftpFeed
from sandbox.listings import synthetic_listings
from tests.support.servers import free_port

DAY = dt.date(2026, 6, 1)
T0 = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def listings() -> list[dict]:
    return list(synthetic_listings(40, ["austin"], 4))


@pytest.fixture(scope="module")
def feed() -> SftpFeed:
    return SftpFeed()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("sftp-mls")


@pytest.fixture(scope="module")
def running(feed, root):
    """One server for the module; each test clears the published files first."""
    server = feed.start(root)
    yield server
    server.stop()


@pytest.fixture
def published(running):
    """The served directory, emptied."""
    directory = running.details["directory"]
    for path in directory.iterdir():
        path.unlink()
    return directory


def fetch(spec: dict, tmp_path, state: dict | None = None) -> Payload:
    workdir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    return CONNECTOR.fetch(FetchRequest("austin", spec, workdir, state=state or {}))


def download_spec(feed: SftpFeed, running, **overrides) -> dict:
    spec = {**feed.source(running, "austin")["download"], "max_files": None, **overrides}
    return {key: value for key, value in spec.items() if value is not None}


def names(payload: Payload) -> list[str]:
    return [f.meta["remote"] for f in payload.files]


def publish_days(feed, root, listings, days: int) -> None:
    for n in range(days):
        feed.publish(listings[n::days], root, day=DAY + dt.timedelta(days=n), mtime=T0 + dt.timedelta(days=n))


# -- what arrives ------------------------------------------------------------------------------


def test_files_arrive_byte_identical(feed, root, running, published, tmp_path, listings):
    path = feed.publish(listings, root, day=DAY, mtime=T0)
    payload = fetch(feed.source(running, "austin")["download"], tmp_path)
    [file] = payload.files
    assert file.path.read_bytes() == path.read_bytes()
    assert file.meta == {"remote": "listings_2026-06-01.csv.gz", "mtime": T0.isoformat(), "size": file.size}
    assert connector_for("sftp") is CONNECTOR


def test_a_key_file_and_known_hosts_log_in_too(feed, root, running, published, tmp_path, listings):
    feed.publish(listings, root, day=DAY, mtime=T0)
    spec = download_spec(feed, running, password=None, host_key_sha256=None,
                         key_file=running.details["key_file"], known_hosts=running.details["known_hosts"])
    assert names(fetch(spec, tmp_path)) == ["listings_2026-06-01.csv.gz"]


def test_second_run_fetches_only_new_files_and_a_changed_file_again(feed, root, running, published, tmp_path,
                                                                     listings):
    feed.publish(listings[:20], root, day=DAY, mtime=T0)
    spec = download_spec(feed, running)
    first = fetch(spec, tmp_path)
    feed.publish(listings[20:], root, day=DAY + dt.timedelta(days=1), mtime=T0 + dt.timedelta(days=1))
    second = fetch(spec, tmp_path, first.state)
    third = fetch(spec, tmp_path, second.state)
    feed.publish(listings[:21], root, day=DAY, mtime=T0)  # the MLS re-sent day one, bigger
    fourth = fetch(spec, tmp_path, third.state)
    assert names(first) == ["listings_2026-06-01.csv.gz"]
    assert names(second) == ["listings_2026-06-02.csv.gz"]
    assert third.not_modified and third.files == []
    assert names(fourth) == ["listings_2026-06-01.csv.gz"]


def test_newest_first_and_max_files(feed, root, running, published, tmp_path, listings):
    publish_days(feed, root, listings, 3)
    newest = fetch(download_spec(feed, running, max_files=2), tmp_path)
    oldest = fetch(download_spec(feed, running, max_files=2, newest_first=False), tmp_path)
    assert names(newest) == ["listings_2026-06-03.csv.gz", "listings_2026-06-02.csv.gz"]
    assert names(oldest) == ["listings_2026-06-01.csv.gz", "listings_2026-06-02.csv.gz"]


# -- errors ------------------------------------------------------------------------------------


def test_wrong_password_is_auth_error(feed, running, tmp_path):
    with pytest.raises(SourceAuthError, match="mlsfeed"):
        fetch(download_spec(feed, running, password="wrong"), tmp_path)


def test_a_host_key_other_than_the_pinned_one_is_refused_before_logging_in(feed, running, tmp_path):
    pinned = "SHA256:" + "A" * 43
    with pytest.raises(SourceAuthError, match="not the pinned"):
        fetch(download_spec(feed, running, host_key_sha256=pinned), tmp_path)


def test_a_host_missing_from_known_hosts_is_a_config_error(feed, running, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    spec = download_spec(feed, running, host_key_sha256=None, known_hosts=str(known_hosts))
    with pytest.raises(SourceConfigError, match="host_key_sha256"):
        fetch(spec, tmp_path)


def test_insecure_accept_any_host_key_skips_the_check(feed, root, running, published, tmp_path, listings):
    feed.publish(listings, root, day=DAY)
    spec = download_spec(feed, running, host_key_sha256=None, insecure_accept_any_host_key=True)
    assert len(fetch(spec, tmp_path).files) == 1


def test_missing_directory_is_feed_not_found(feed, running, tmp_path):
    with pytest.raises(FeedNotFound, match="/nowhere"):
        fetch(download_spec(feed, running, directory="/nowhere"), tmp_path)


def test_no_matching_file_is_feed_not_found(feed, running, published, tmp_path):
    with pytest.raises(FeedNotFound, match=r"listings_\*\.csv\.gz in sftp://"):
        fetch(download_spec(feed, running), tmp_path)


def test_closed_port_is_source_unavailable(tmp_path):
    spec = {"kind": "sftp", "host": "127.0.0.1", "port": free_port(), "username": "u", "password": "p",
            "pattern": "*", "insecure_accept_any_host_key": True, "timeout": 2}
    with pytest.raises(SourceUnavailable, match="Refused"):
        fetch(spec, tmp_path)


def test_a_server_that_never_greets_times_out_as_source_unavailable(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody speaks
        spec = {"kind": "sftp", "host": "127.0.0.1", "port": silent.getsockname()[1], "username": "u",
                "password": "p", "pattern": "*", "insecure_accept_any_host_key": True, "timeout": 0.3}
        with pytest.raises(SourceUnavailable, match="SSH protocol banner|no SSH handshake within 0.3 s"):
            fetch(spec, tmp_path)


def test_a_spec_without_credentials_is_a_config_error(tmp_path):
    with pytest.raises(SourceConfigError, match="password or download.key_file"):
        fetch({"kind": "sftp", "host": "127.0.0.1", "username": "u", "pattern": "*"}, tmp_path)


# -- the dialect -------------------------------------------------------------------------------


def test_the_source_table_reads_the_file_as_expected(feed, root, running, published, tmp_path, listings):
    feed.publish(listings, root, day=DAY)
    source = feed.source(running, "austin")
    [file] = fetch(source["download"], tmp_path).files
    text = gzip.decompress(file.path.read_bytes()).decode(source["parse"]["encoding"])
    rows = csv.DictReader(io.StringIO(text, newline=""), delimiter=source["parse"]["delimiter"])
    assert [reference_mapping(row, source) for row in rows] == [feed.expected(x) for x in listings]


def reference_mapping(row: dict[str, str], source: dict) -> dict:
    """How a pipeline reading this source table must map one row (an oracle, written separately)."""
    mapped = {}
    for reso, column in source["fields"].items():
        value = source["values"].get(reso, {}).get(row[column], row[column])
        mapped[reso] = coerce(LISTING_FIELDS[reso][1], value)
    return mapped


def coerce(kind: str, value: str):
    if value == "":
        return None
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)
    return {"int": int, "decimal": Decimal, "float": float}.get(kind, str)(value)
