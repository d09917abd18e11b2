"""The sql connector against the sandbox's vendor database: SQLite always, PostgreSQL and MariaDB
when MLSFEEDS_TEST_POSTGRES_URL / MLSFEEDS_TEST_MARIADB_URL are set (each test run gets its own
throwaway database on those servers, dropped afterwards)."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import tracemalloc
import uuid
from contextlib import contextmanager
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pipeline.connectors import FetchRequest, Payload, connector_for
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable
from sandbox.feeds.sql import SqlFeed
from sandbox.listings import synthetic_listings
from tests.conftest import backend_param
from tests.support.databases import server_url
from tests.support.servers import free_port

COUNT = 1500
SINCE = dt.datetime(2026, 5, 10, tzinfo=dt.timezone.utc)
BACKENDS = [backend_param(b) for b in ("sqlite", "postgres", "mariadb")]
SERVERS = [backend_param(b) for b in ("postgres", "mariadb")]


@contextmanager
def throwaway_database(backend: str):
    """The URL of a new, empty database on the backend's server; dropped afterwards."""
    base = make_url(server_url(backend))
    name = f"mlsfeeds_sql_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if backend == "postgres" else ""
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


@pytest.fixture(scope="module")
def listings():
    return list(synthetic_listings(COUNT, ["vendor"], seed=5))


@pytest.fixture(scope="module", params=BACKENDS)
def vendor(request, listings, tmp_path_factory):
    """(feed, running) with the listings published, on each backend."""
    root = tmp_path_factory.mktemp(f"sql-{request.param}")
    with (throwaway_database(request.param) if request.param != "sqlite" else _nothing()) as url:
        feed = SqlFeed(url)
        feed.publish(listings, root)
        yield feed, feed.start(root)


@contextmanager
def _nothing():
    yield None


@pytest.fixture
def fetch(tmp_path):
    runs = itertools.count(1)

    def fetch(spec: dict, since: dt.datetime | None = None, progress=lambda message: None) -> Payload:
        workdir = tmp_path / f"run-{next(runs)}"
        workdir.mkdir()
        return connector_for("sql").fetch(FetchRequest("vendor", spec, workdir, since=since, progress=progress))

    return fetch


def rows(payload: Payload) -> list[dict]:
    return [json.loads(line) for f in payload.files for line in f.path.read_text().splitlines()]


def mapped(row: dict, source: dict, like: dict) -> dict:
    """An NDJSON row through the source's fields, values and timezone, typed like ``like``."""
    values = source["values"]
    reso = {name: row[column] for name, column in source["fields"].items() if row.get(column) is not None}
    reso = {name: values.get(name, {}).get(value, value) for name, value in reso.items()}
    return {name: _typed(value, like.get(name), source) for name, value in reso.items()}


def _typed(value, like, source: dict):
    if isinstance(like, dt.datetime):
        pattern = source["parse"].get("timestamp_format")
        naive = dt.datetime.strptime(value, pattern) if pattern else dt.datetime.fromisoformat(value)
        return naive.replace(tzinfo=ZoneInfo(source["timezone"])).astimezone(dt.timezone.utc)
    if isinstance(like, Decimal):
        return Decimal(str(value))
    return type(like)(value) if like is not None else value


def test_full_pull_equals_what_was_published(vendor, fetch, listings):
    feed, running = vendor
    source = feed.source(running, "vendor")
    payload = fetch(source["download"])
    assert [(f.path.name, f.format, f.meta) for f in payload.files] == [
        ("rows-0001.ndjson", "ndjson", {"part": 1, "rows": COUNT})]
    found = {row["l_uid"]: row for row in rows(payload)}
    assert len(found) == COUNT
    for listing in listings:
        expected = feed.expected(listing)
        assert mapped(found[listing["ListingKey"]], source, expected) == expected


def test_incremental_pull_returns_only_rows_modified_since_in_the_vendors_local_time(vendor, fetch, listings):
    feed, running = vendor
    payload = fetch(feed.source(running, "vendor")["download"], since=SINCE)
    wanted = {x["ListingKey"] for x in listings if x["ModificationTimestamp"] >= SINCE}
    assert 0 < len(wanted) < COUNT / 2
    assert {row["l_uid"] for row in rows(payload)} == wanted


def test_rows_are_split_into_files_of_at_most_rows_per_file(vendor, fetch):
    feed, running = vendor
    payload = fetch({**feed.source(running, "vendor")["download"], "rows_per_file": 500, "batch_size": 64})
    assert [(f.path.name, f.meta["rows"]) for f in payload.files] == [
        ("rows-0001.ndjson", 500), ("rows-0002.ndjson", 500), ("rows-0003.ndjson", 500)]
    assert all(f.size == f.path.stat().st_size for f in payload.files)


def test_bad_sql_or_an_unknown_table_is_a_config_error(vendor, fetch):
    _, running = vendor
    for query in ("SELECT * FROM no_such_table WHERE x >= :since", "SELEC l_uid FROM rets_property"):
        with pytest.raises(SourceConfigError):
            fetch({"url": running.url, "query": query})


def test_full_query_is_used_on_full_runs_and_query_on_incremental_ones(vendor, fetch):
    _, running = vendor
    spec = {"url": running.url, "query": "SELECT l_uid FROM rets_property WHERE lm_modified >= :since",
            "full_query": "SELECT l_uid FROM rets_property WHERE l_status = 'A'"}
    full, incremental = fetch(spec), fetch(spec, since=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    assert 0 < len(rows(full)) < COUNT
    assert rows(incremental) == [] and [f.path.name for f in incremental.files] == ["rows-0001.ndjson"]


BIG = {"query": "SELECT id, name, price, modified FROM big WHERE modified >= :since", "batch_size": 2000}


def test_memory_stays_flat_while_200k_rows_stream_through(fetch, tmp_path):
    with _big_table("sqlite", tmp_path, 200_000) as url:
        tracemalloc.start()
        try:
            payload = fetch({**BIG, "url": url})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert [f.meta["rows"] for f in payload.files] == [100_000, 100_000]
    assert json.loads(payload.files[1].path.read_text().splitlines()[-1])["id"] == 200_000
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


class _Seen(Exception):
    """Raised from progress: what the test wanted to see is seen, the rest need not be read."""


@pytest.mark.parametrize("backend", SERVERS)
def test_rows_come_through_a_server_side_cursor(backend, fetch, tmp_path):
    # libpq buffers in C, out of tracemalloc's sight: ask the server whether the query is
    # still being read when the first file is written (190k rows later is more than the
    # socket buffers hold, so a buffered read would have finished)
    streaming = []

    def progress(message: str) -> None:
        streaming.append(_still_reading(backend, url))
        raise _Seen

    with _big_table(backend, tmp_path, 200_000) as url, pytest.raises(_Seen):
        fetch({**BIG, "url": url, "rows_per_file": 10_000}, progress=progress)
    assert streaming == [True]


def _still_reading(backend: str, url: str) -> bool:
    """PostgreSQL: the session's last statement is a FETCH from a named cursor; MariaDB: the
    SELECT is still being sent (a buffered read would have finished it)."""
    query, sign = {
        "postgres": ("SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                     " AND pid <> pg_backend_pid()", "FETCH FORWARD"),
        "mariadb": ("SELECT info FROM information_schema.processlist WHERE db = DATABASE()"
                    " AND id <> CONNECTION_ID() AND command = 'Query'", "SELECT id, name"),
    }[backend]
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        statements = [row[0] or "" for row in connection.execute(text(query))]
    engine.dispose()
    return any(statement.startswith(sign) for statement in statements)


@contextmanager
def _big_table(backend: str, tmp_path, count: int):
    with (throwaway_database(backend) if backend != "sqlite" else _nothing()) as url:
        url = url or f"sqlite:///{tmp_path / 'big.db'}"
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, name VARCHAR(40),"
                                    " price NUMERIC(12, 2), modified TIMESTAMP)"))
            connection.execute(text(_FILL[backend].format(count=count)))
        engine.dispose()
        yield url


_FILL = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) INSERT INTO big"
              " SELECT i, 'listing ' || i, i * 1.25, datetime('2026-01-01', '+' || i || ' seconds') FROM n",
    "postgres": "INSERT INTO big SELECT i, 'listing ' || i, i * 1.25, TIMESTAMP '2026-01-01' + i * INTERVAL '1 second' "
                "FROM generate_series(1, {count}) AS i",
    "mariadb": "INSERT INTO big SELECT seq, CONCAT('listing ', seq), seq * 1.25, "
               "TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{count}",
}


@pytest.mark.parametrize("binary, expected", [("skip", None), ("base64", base64.b64encode(b"\x89PNG\x00").decode())])
def test_binary_columns_are_skipped_unless_asked_for_as_base64(fetch, tmp_path, binary, expected):
    url = f"sqlite:///{tmp_path / 'photos.db'}"
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE photos (l_uid TEXT, photo BLOB, taken DATE, size NUMERIC)"))
        connection.execute(text("INSERT INTO photos VALUES ('1', x'89504e4700', '2026-01-02', 10.5)"))
    engine.dispose()
    [row] = rows(fetch({"url": url, "query": "SELECT * FROM photos", "binary": binary}))
    assert row.get("photo") == expected and row["l_uid"] == "1"


def test_a_missing_sqlite_file_is_feed_not_found(fetch, tmp_path):
    with pytest.raises(FeedNotFound):
        fetch({"url": f"sqlite:///{tmp_path / 'nothing.db'}", "query": "SELECT 1"})


@pytest.mark.parametrize("url", ["postgresql+psycopg://root@127.0.0.1:{port}/test",
                                 "mysql+pymysql://root@127.0.0.1:{port}/test"])
def test_a_refused_connection_is_unavailable(fetch, url):
    with pytest.raises(SourceUnavailable):
        fetch({"url": url.format(port=free_port()), "query": "SELECT 1", "timeout": 5})


@pytest.mark.parametrize("backend", SERVERS)
def test_rejected_credentials_are_an_auth_error(backend, fetch):
    # PostgreSQL here trusts loopback, so an unknown role (28000) stands for a wrong password
    url = make_url(server_url(backend))
    url = url.set(username="no_such_user") if backend == "postgres" else url.set(password="wrong-password")
    with pytest.raises(SourceAuthError) as caught:
        fetch({"url": url.render_as_string(hide_password=False), "query": "SELECT 1"})
    assert "wrong-password" not in str(caught.value)


@pytest.mark.parametrize("backend", SERVERS)
def test_an_unknown_database_is_feed_not_found(backend, fetch):
    url = make_url(server_url(backend)).set(database="no_such_database_here")
    with pytest.raises(FeedNotFound):
        fetch({"url": url.render_as_string(hide_password=False), "query": "SELECT 1"})


def test_a_bad_spec_is_a_config_error(fetch):
    with pytest.raises(SourceConfigError, match="batch_size"):
        fetch({"url": "sqlite://", "query": "SELECT 1", "batch_size": "ten"})
    with pytest.raises(SourceConfigError, match="query is required"):
        fetch({"url": "sqlite://"})
