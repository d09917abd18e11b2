from decimal import Decimal

import pytest

from service.errors import InvalidArgument
from service.search import SearchQuery, _page_size


@pytest.mark.parametrize("query", [
    SearchQuery(min_price=Decimal(10), max_price=Decimal(5)),
    SearchQuery(min_price=Decimal(-1)),
    SearchQuery(min_bedrooms=-2),
    SearchQuery(statuses=("Sold",)),
    SearchQuery(sort_by="Bedrooms"),
    SearchQuery(north=10, south=20, east=1, west=0),
    SearchQuery(north=10, south=0),
    SearchQuery(north=100, south=0, east=1, west=0),
    SearchQuery(latitude=10, longitude=10),
    SearchQuery(latitude=10, longitude=10, radius_miles=0),
    SearchQuery(latitude=10, longitude=500, radius_miles=1),
])
def test_inconsistent_or_out_of_range_queries_are_refused(query):
    with pytest.raises(InvalidArgument):
        query.validate()


def test_sane_queries_pass():
    SearchQuery(min_price=Decimal(1), max_price=Decimal(1), north=1, south=0, east=-170, west=170,
                latitude=0, longitude=0, radius_miles=10, statuses=("Active",)).validate()


@pytest.mark.parametrize("size,expected", [(None, 25), (1, 1), (200, 200)])
def test_page_size_defaults_to_25_and_caps_at_200(size, expected):
    assert _page_size(size) == expected


@pytest.mark.parametrize("size", [0, -1, 201, 10_000])
def test_page_sizes_out_of_range_are_refused(size):
    with pytest.raises(InvalidArgument):
        _page_size(size)
