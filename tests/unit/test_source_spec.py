"""`mlsfeeds sources apply` checks of the top-level removal guard."""

import pytest

from pipeline.errors import SourceConfigError
from pipeline.spec import parse_source


def table(**top):
    return {"id": "gulf", "download": {"kind": "http", "url": "https://x.example/f.csv"},
            "parse": {"format": "delimited"}, "fields": {"ListingKey": "K"}, **top}


def test_max_removed_share_defaults_to_a_tenth_and_takes_any_share():
    assert parse_source(table()).max_removed_share == 0.1
    assert parse_source(table(max_removed_share=0)).columns()["max_removed_share"] == 0.0
    assert parse_source(table(max_removed_share=1)).max_removed_share == 1.0


@pytest.mark.parametrize("value", [-0.1, 1.5, "10%", True, None])
def test_a_share_that_is_not_a_fraction_is_refused_naming_the_key(value):
    with pytest.raises(SourceConfigError, match=r"source 'gulf': max_removed_share must be a number from 0 to 1"):
        parse_source(table(max_removed_share=value))
