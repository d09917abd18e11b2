"""Cached counts and answers are never stale: the database bumps a source's data generation in
the transaction that changes its listings, and the service keys every cache on it.

Runs on SQLite and PostgreSQL (the service's databases), and the triggers on MariaDB too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, select, text, update

from core.db import make_engine, refresh_statistics, session_factory
from core.models import Listing, Source
from core.settings import Settings
from core.types import utcnow
from pipeline.loader import load_listings
from service.app import build_dispatcher
from tests.conftest import backend_param
from tests.support.soap import CONSUMER, NS, OPERATOR, SECRET, keys, prepare_database, total
from tests.support.soap import search_in_process as call

ALL_BACKENDS = [backend_param(b) for b in ("sqlite", "postgres", "mariadb")]
SERVICE_BACKENDS = [backend_param(b) for b in ("sqlite", "postgres")]


def generations(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Source.id, Source.data_generation)).all())


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_every_change_a_search_can_see_bumps_its_source_and_only_its_source(database_url):
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        session.add_all([Source(id="a", name="A"), Source(id="b", name="B")])
        session.commit()
    steps = [
        insert(Listing).values(source_id="a", listing_key="1", photos_count=0, list_price=Decimal(5)),
        update(Listing).where(Listing.listing_key == "1").values(list_price=Decimal(6)),
        update(Listing).where(Listing.listing_key == "1").values(photos_count=3),
        update(Listing).where(Listing.listing_key == "1").values(removed_at=utcnow()),
        delete(Listing).where(Listing.listing_key == "1"),
    ]
    for statement in steps:
        before = generations(engine)
        with engine.begin() as conn:
            conn.execute(statement)
        after = generations(engine)
        assert after["a"] > before["a"], statement
        assert after["b"] == before["b"], statement


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_changes_no_search_can_see_leave_the_generation_alone(database_url):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(Source).values(id="a", name="A", data_generation=1))
        conn.execute(insert(Listing).values(source_id="a", listing_key="1", photos_count=0, list_price=Decimal(5)))
    before = generations(engine)
    with engine.begin() as conn:
        conn.execute(update(Listing).values(public_remarks="new words", last_seen=utcnow()))
        conn.execute(update(Listing).values(list_price=Decimal(5)))  # written, not changed
    assert generations(engine) == before


def fresh_listing(key: str, price: int) -> dict:
    return {"ListingKey": key, "StandardStatus": "Active", "PropertyType": "Residential",
            "ListPrice": Decimal(price), "City": "Testville", "PhotosCount": 0,
            "ModificationTimestamp": dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)}


@pytest.mark.parametrize("database_url", SERVICE_BACKENDS, indirect=True)
def test_a_committed_load_shows_in_the_very_next_search_of_the_same_worker(database_url):
    prepare_database(database_url, listings=400)
    engine = make_engine(database_url)
    app = build_dispatcher(Settings(secret_key=SECRET, database_url=database_url), engine)
    query = "<m:SearchListings><m:SourceId>a</m:SourceId><m:SortBy>ListPrice</m:SortBy><m:PageSize>5</m:PageSize></m:SearchListings>"
    first = call(app, query)
    assert call(app, query) is not None and total(call(app, query)) == total(first)  # served from the caches now
    token = first.findtext(f"{{{NS}}}NextPageToken")

    with session_factory(engine)() as session:
        load_listings(session, "a", [fresh_listing("CHEAP-1", 1), fresh_listing("CHEAP-2", 2)], utcnow())
        session.commit()

    again = call(app, query)
    assert total(again) == total(first) + 2
    assert keys(again)[:2] == ["CHEAP-1", "CHEAP-2"]
    page_two = call(app, query.replace("</m:PageSize>", f"</m:PageSize><m:PageToken>{token}</m:PageToken>"))
    assert total(page_two) == total(first) + 2, "a token's count must not outlive the load"


@pytest.mark.parametrize("database_url", SERVICE_BACKENDS, indirect=True)
def test_a_removal_and_a_price_change_show_at_once(database_url):
    prepare_database(database_url, listings=300)
    engine = make_engine(database_url)
    app = build_dispatcher(Settings(secret_key=SECRET, database_url=database_url), engine)
    query = ("<m:SearchListings><m:SourceId>b</m:SourceId><m:MinPrice>0</m:MinPrice>"
             "<m:SortBy>ListPrice</m:SortBy><m:PageSize>3</m:PageSize></m:SearchListings>")
    before = call(app, query)
    cheapest = keys(before)[0]
    with engine.begin() as conn:
        conn.execute(update(Listing).where(Listing.source_id == "b", Listing.listing_key == cheapest)
                     .values(removed_at=utcnow()))
    after = call(app, query)
    assert cheapest not in keys(after) and total(after) == total(before) - 1
    second = keys(after)[0]
    with engine.begin() as conn:
        conn.execute(update(Listing).where(Listing.source_id == "b", Listing.listing_key == second)
                     .values(list_price=Decimal(10**9)))
    assert second not in keys(call(app, query))


@pytest.mark.parametrize("database_url", SERVICE_BACKENDS, indirect=True)
def test_a_consumer_gets_its_own_count_from_a_cached_query(database_url):
    """alice (source a) and the operator (all sources) ask the same: neither gets the other's."""
    prepare_database(database_url, listings=300)
    app = build_dispatcher(Settings(secret_key=SECRET, database_url=database_url), make_engine(database_url))
    query = "<m:SearchListings><m:StandardStatus>Active</m:StandardStatus></m:SearchListings>"
    everyone, alice = total(call(app, query, OPERATOR)), total(call(app, query, CONSUMER))
    assert total(call(app, query, OPERATOR)) == everyone and total(call(app, query, CONSUMER)) == alice
    with make_engine(database_url).connect() as conn:
        active = "SELECT count(*) FROM listings WHERE standard_status = 'Active' AND removed_at IS NULL"
        assert everyone == conn.execute(text(active)).scalar()
        assert alice == conn.execute(text(active + " AND source_id = 'a'")).scalar()


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_statistics_are_refreshed_on_request(database_url):
    prepare_database(database_url, listings=200)
    engine = make_engine(database_url)
    refresh_statistics(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'listings'")).scalar() > 0
        elif engine.dialect.name == "postgresql":
            vacuumed = conn.execute(text("SELECT last_vacuum, last_analyze FROM pg_stat_user_tables "
                                         "WHERE relname = 'listings'")).one()
            assert all(vacuumed)


@pytest.mark.parametrize("database_url", [backend_param("postgres")], indirect=True)
def test_searches_survive_the_database_dropping_every_connection(database_url):
    """Each worker keeps its read connection between calls: when the server drops it (a restart,
    a failover), the next call reconnects once and answers, instead of failing."""
    prepare_database(database_url, listings=100)
    app = build_dispatcher(Settings(secret_key=SECRET, database_url=database_url), make_engine(database_url))
    query = "<m:SearchListings><m:StandardStatus>Active</m:StandardStatus></m:SearchListings>"
    before = total(call(app, query))
    name = make_engine(database_url).url.database
    admin = make_engine(database_url.rsplit("/", 1)[0] + "/postgres")
    with admin.connect() as conn:
        dropped = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    assert dropped >= 1
    assert total(call(app, query)) == before
