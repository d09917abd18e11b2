"""``mlsfeeds sandbox seed``: the bulk path writes, value for value, what the row-by-row path
wrote before it existed, and leaves the schema and the planner's statistics as they should be."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from core import db
from core.db import make_engine, session_factory
from core.models import Listing, Media
from mlsfeeds import bulk
from mlsfeeds.cli import main
from mlsfeeds.seed import SeedReport, ensure_sources, progress_printer, seed
from sandbox.listings import FIELDS, synthetic_rows
from tests.conftest import backend_param
from tests.support.seed_digest import database_digest

S3 = ("a", "b", "c")
S5 = ("mls1", "mls2", "mls3", "mls4", "mls5")

# database_digest() of a fresh database after seed(), recorded with the row-by-row seeding of
# commit b68ee51, before the bulk path and the faster generator existed.
GOLDEN = {
    "sqlite": {
        (3000, S3, 7): "2f23a69cf06b1469f67257c56b3c29a04eedd4a4661789d4fb73600f79f1c8ad",
        (20000, S5, 42): "a96435ac6c4ee1961eb164d4059699c0601126269ac5cc67c8f345f4cdd0d684",
        (1500, ("sandbox",), 1): "2b5832cda03d930ca929abf8b2dcf55703d87fd4e2ce485f082a179768653158",
    },
    "postgres": {
        (3000, S3, 7): "d0b7385aeaa71dba1fa89c0d17bc73aecd430bdd1322b361339f52318d1d027f",
        (20000, S5, 42): "a0bc76df1bef6348103123a38345966a19fd484177de6d523dad2042cb77a822",
        (1500, ("sandbox",), 1): "3d4c0e2ba2a05e07dc1e90b4a879dd62303d5bae8b3c641fae00909fb473e82f",
    },
    "mariadb": {
        (3000, S3, 7): "d651a7ef6deb31a4f421881c6efccc751bb777bf2903feb4cbee5b0bce87f471",
        (1500, ("sandbox",), 1): "8d5d9dc4ea9ab01e385177792feb228173e092a656cb031903ddda2dd2735150",
    },
}
CASES = [
    pytest.param(backend, key, id=f"{backend}-{key[0]}-{'.'.join(key[1])}-{key[2]}", marks=backend_param(backend).marks)
    for backend, golden in GOLDEN.items()
    for key in golden
]
BULK_BACKENDS = [backend_param(b) for b in ("sqlite", "postgres")]


def _backend(url: str) -> str:
    return {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mariadb"}[url.split(":")[0].split("+")[0]]


def _seed(url: str, count: int, sources, seed_value: int) -> SeedReport:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return seed(session, count, list(sources), seed_value)
    finally:
        engine.dispose()


@pytest.fixture
def small_chunks(monkeypatch):
    """Several bulk chunks even for a few thousand listings: the pipelined path, not one batch."""
    monkeypatch.setattr(bulk, "CHUNK", 700)


@pytest.mark.parametrize("database_url, key", CASES, indirect=["database_url"])
def test_a_seed_writes_the_rows_the_row_by_row_seed_wrote(database_url, key, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", max(700, key[0] // 4))  # several chunks: the pipelined path
    report = _seed(database_url, *key)
    backend = _backend(database_url)
    assert report.bulk is (backend != "mariadb")  # MariaDB keeps the row-by-row path
    assert report.inserted == key[0] and report.skipped == 0
    assert database_digest(database_url) == GOLDEN[backend][key]


@pytest.mark.parametrize("database_url", BULK_BACKENDS, indirect=True)
def test_a_seed_over_some_of_its_listings_adds_the_rest_row_by_row_to_the_same_data(database_url, small_chunks):
    first = _seed(database_url, 1000, S3, 7)
    rest = _seed(database_url, 3000, S3, 7)
    assert (first.bulk, first.inserted) == (True, 1000)
    assert (rest.bulk, rest.inserted, rest.skipped) == (False, 2000, 1000)
    assert database_digest(database_url) == GOLDEN[_backend(database_url)][3000, S3, 7]


@pytest.mark.parametrize("database_url", BULK_BACKENDS, indirect=True)
def test_first_and_last_seen_are_the_time_of_the_seed(database_url, small_chunks):
    before = dt.datetime.now(dt.timezone.utc)
    _seed(database_url, 2000, S3, 7)
    after = dt.datetime.now(dt.timezone.utc)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        seen = session.execute(select(Listing.first_seen, Listing.last_seen)).all()
    engine.dispose()
    assert len(seen) == 2000
    assert all(first == last and before <= first <= after for first, last in seen)


@pytest.mark.parametrize("database_url", BULK_BACKENDS, indirect=True)
def test_the_bulk_path_puts_back_every_index_and_key_and_refreshes_statistics(database_url, small_chunks):
    engine = create_engine(database_url)
    schema_before = _schema(engine)
    _seed(database_url, 2000, S3, 7)
    assert _schema(engine) == schema_before
    db.check(database_url)  # models and migrations still agree: nothing left dropped
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            analyzed = set(conn.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
            assert {"listings", "media"} <= analyzed
        else:
            stats = conn.execute(text(
                "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL "
                "FROM pg_stat_user_tables WHERE relname IN ('listings', 'media')"
            )).all()
            assert sorted(stats) == [("listings", True, True), ("media", True, True)]
    engine.dispose()


@pytest.mark.parametrize("database_url", BULK_BACKENDS, indirect=True)
def test_a_bulk_seed_that_fails_midway_keeps_its_committed_chunks_and_every_index(database_url):
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        ensure_sources(session, ["a"])
        session.commit()
    schema_before = _schema(engine)

    def failing_rows():
        for n, row in enumerate(synthetic_rows(2500, ["a"], 7)):
            if n == 2100:
                raise RuntimeError("generator broke")
            yield row

    with pytest.raises(RuntimeError, match="generator broke"):
        bulk.bulk_seed(engine, failing_rows(), bulk.Layout(FIELDS), 2500, chunk_size=1000)
    assert _schema(engine) == schema_before
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Listing).where(Listing.source_id == "a")) == 2000
    engine.dispose()


def _schema(engine) -> dict:
    """Index names (non-unique and unique) and foreign keys of listings and media."""
    inspector = inspect(engine)
    return {
        table: (
            sorted(ix["name"] for ix in inspector.get_indexes(table)),
            sorted(fk["name"] or "" for fk in inspector.get_foreign_keys(table)),
            sorted(uq["name"] or "" for uq in inspector.get_unique_constraints(table)),
        )
        for table in ("listings", "media")
    }


def test_the_command_reports_its_rate_and_the_photos_it_wrote(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    db.upgrade(url)
    monkeypatch.setenv("MLSFEEDS_DATABASE_URL", url)
    assert main(["sandbox", "seed", "--listings", "1500", "--sources", "a,b", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    engine = create_engine(url)
    with engine.connect() as conn:
        photos = conn.scalar(select(func.count()).select_from(Media))
    engine.dispose()
    assert "created sources: a, b" in out
    assert f"inserted 1,500 listings ({photos:,} photos by URL template); 0 were already there;" in out
    assert "rows/s (bulk)" in out


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_tenth_elsewhere():
    terminal, log = _Stream(tty=True), _Stream(tty=False)
    bar, lines = progress_printer(terminal), progress_printer(log)
    for done in range(0, 1001, 50):
        bar(done, 1000)
        lines(done, 1000)
    assert terminal.getvalue().count("\r") == 21 and terminal.getvalue().endswith("\n")
    assert "1,000/1,000 listings" in terminal.getvalue()
    logged = log.getvalue().splitlines()
    assert [line.split(" listings")[0].strip() for line in logged] == [
        f"{n:,}/1,000" for n in (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
    ]
    assert "\r" not in log.getvalue()
