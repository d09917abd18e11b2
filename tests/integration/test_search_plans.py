"""No page of a search reads a large share of the listings, whatever plan it was given.

A search that matches many listings is paged by walking an index in the sort order (see
service/search.py); PostgreSQL is told to by disabling explicit sorts for the page. That setting
covers every sort of every statement read meanwhile, so a statement that still needs one gets
a plan built to avoid it: an outer ORDER BY over the page's 201 rows became a walk of every
listing (4 s a page at a million), and so did the few listings without a sort value, collected
by id. This test runs every page query of a set of searches again under EXPLAIN ANALYZE, in the
same snapshot with the same settings, and counts the rows each plan read.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from core.db import make_engine, refresh_statistics
from core.settings import Settings
from service.app import build_dispatcher
from service.reader import ReadSession
from tests.conftest import backend_param
from tests.support.soap import NS, SECRET, keys, prepare_database, search_in_process, total

LISTINGS = 20_000
# A walked page of 200 reads about 200 x listings / matches entries (at most 27% of the listings
# where walking starts to pay, at total^2 = 27 x listings; the searches below match far more);
# collecting reads the matches. A plan that reads every listing is what this keeps out.
MOST_A_PAGE_READS = LISTINGS // 4


def rows_read(plan: dict) -> int:
    """Rows the scans of a plan produced or threw away, over all their loops."""
    read = 0
    if "Scan" in plan["Node Type"]:
        read += plan["Actual Rows"] * plan["Actual Loops"]
        read += plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
    return read + sum(rows_read(child) for child in plan.get("Plans", ()))


@pytest.fixture
def planned(monkeypatch):
    """Every page query a search runs, with the rows its plan read."""
    seen: list[tuple[str, int]] = []
    execute = ReadSession._execute

    def explained(self, sql, parameters, prepared=None):
        if prepared is not None and "AS page" in sql:
            cursor = self._raw.cursor()
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            seen.append((sql, rows_read(plan[0]["Plan"])))
        return execute(self, sql, parameters, prepared)

    monkeypatch.setattr(ReadSession, "_execute", explained)
    return seen


def search(sort_by: str = "ListPrice", descending: bool = False, token: str | None = None, **filters) -> str:
    fields = "".join(
        "".join(f"<m:{name}>{v}</m:{name}>" for v in (value if isinstance(value, list) else [value]))
        for name, value in filters.items()
    )
    after = f"<m:PageToken>{token}</m:PageToken>" if token else ""
    return (f"<m:SearchListings>{fields}<m:SortBy>{sort_by}</m:SortBy>"
            f"<m:SortDescending>{str(descending).lower()}</m:SortDescending><m:PageSize>200</m:PageSize>"
            f"{after}</m:SearchListings>")


@pytest.mark.parametrize("database_url", [backend_param("postgres")], indirect=True)
def test_no_page_plan_reads_a_large_share_of_the_listings(database_url, planned):
    prepare_database(database_url, listings=LISTINGS)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        north, south, east, west = conn.execute(text(
            "SELECT max(latitude), min(latitude), max(longitude), min(longitude) FROM listings")).one()
        # A tenth of the listings without a price: the second phase of a ListPrice page.
        conn.execute(text("UPDATE listings SET list_price = NULL WHERE id % 10 = 0"))
    refresh_statistics(engine)
    app = build_dispatcher(Settings(secret_key=SECRET, database_url=database_url, answer_cache_mb=0), engine)
    everywhere = {"North": north, "South": south, "East": east, "West": west}
    searches = [
        ({"StandardStatus": "Active", "PropertyType": "Residential", "MinPrice": 250000, "MaxPrice": 750000},
         "ListPrice"),
        ({}, "ModificationTimestamp"),
        (everywhere, "ListPrice"),
        (everywhere, "ModificationTimestamp"),
        ({"StandardStatus": ["Active", "Pending"]}, "ListingKey"),
    ]
    for filters, sort_by in searches:
        for descending in (False, True):
            first = search_in_process(app, search(sort_by, descending, **filters))
            assert total(first) ** 2 >= 27 * LISTINGS, "these searches are meant to walk"
            token = first.findtext(f"{{{NS}}}NextPageToken")
            second = search_in_process(app, search(sort_by, descending, token, **filters))
            assert not set(keys(first)) & set(keys(second))

    # Every page of a walk by price: the priced listings run out, the unpriced follow by id.
    found, token = [], None
    while True:
        page = search_in_process(app, search("ListPrice", True, token))
        found += keys(page)
        if not (token := page.findtext(f"{{{NS}}}NextPageToken")):
            break
    assert len(found) == len(set(found)) == LISTINGS

    assert any("list_price IS NULL" in sql for sql, _ in planned), "no page read the unpriced listings"
    worst = max(planned, key=lambda seen: seen[1])
    assert worst[1] <= MOST_A_PAGE_READS, f"a page plan read {worst[1]} of {LISTINGS} listings: {worst[0]}"
