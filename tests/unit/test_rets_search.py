import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pipeline.connectors.rets.connector import RetsSettings
from pipeline.connectors.rets.search import SearchSettings, build_query, combine, window_clause
from pipeline.errors import SourceConfigError

UTC = dt.timezone.utc
SPEC = {"kind": "rets", "url": "https://rets.example/rets/login", "username": "u", "class": "RES"}


def settings(**changes):
    return SearchSettings(resource="Property", class_name="RES", **changes)


def test_full_run_without_a_query_asks_for_everything():
    assert build_query(settings(), None) == "(ModificationTimestamp=1900-01-01T00:00:00+)"


def test_full_run_uses_the_source_query_as_is():
    assert build_query(settings(query="(Status=|A,P)"), None) == "(Status=|A,P)"


def test_incremental_run_ands_the_window_in_the_server_time_zone():
    since = dt.datetime(2026, 7, 1, 4, 30, tzinfo=UTC)
    chosen = settings(query="(Status=|A,P)", modification_field="LastChangeTimestamp",
                      server_timezone=ZoneInfo("America/New_York"))
    assert build_query(chosen, since) == "(Status=|A,P),(LastChangeTimestamp=2026-07-01T00:30:00+)"


def test_naive_since_is_utc_and_the_format_is_configurable():
    chosen = settings(server_timezone=ZoneInfo("Europe/Paris"), timestamp_format="%Y-%m-%dT%H:%M:%S.000")
    assert build_query(chosen, dt.datetime(2026, 1, 1, 12)) == "(ModificationTimestamp=2026-01-01T13:00:00.000+)"


def test_a_query_with_a_top_level_or_is_grouped_before_and():
    assert combine("(A=1)|(B=2)", "(M=x+)") == "((A=1)|(B=2)),(M=x+)"
    assert combine("(Status=|A,P)", None, "(M=x+)") == "(Status=|A,P),(M=x+)"


def test_window_clause_is_an_inclusive_range():
    lo, hi = dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC)
    assert window_clause(settings(), lo, hi) == "(ModificationTimestamp=2026-01-01T00:00:00-2026-01-02T00:00:00)"


def test_select_always_includes_the_key_field():
    assert settings(select=("City", "ListPrice"), key_field="ListingKey").fields_to_select() == "City,ListPrice,ListingKey"
    assert settings().fields_to_select() is None


def test_spec_defaults():
    parsed = RetsSettings.from_spec(SPEC)
    assert parsed.login.auth == "auto" and parsed.login.rets_version == "RETS/1.7.2"
    assert parsed.login.user_agent_password is None and parsed.login.timeout == 60
    search = parsed.search
    assert (search.resource, search.format, search.page_size, search.paging) == ("Property", "COMPACT-DECODED", 2500, "auto")
    assert search.modification_field == "ModificationTimestamp" and search.key_field is None
    assert search.server_timezone == ZoneInfo("UTC")


@pytest.mark.parametrize("changes, message", [
    ({"class": None}, "download.class is required"),
    ({"url": "ftp://x/y"}, "Login URL"),
    ({"auth": "ntlm"}, "download.auth"),
    ({"format": "STANDARD-XML"}, "download.format"),
    ({"page_size": 0}, "download.page_size"),
    ({"server_timezone": "Mars/Base"}, "IANA"),
    ({"paging": "keys"}, "download.paging"),
    ({"select": 3}, "download.select"),
    ({"kind": "ftp"}, "cannot fetch"),
])
def test_bad_specs_are_config_errors(changes, message):
    with pytest.raises(SourceConfigError, match=message):
        RetsSettings.from_spec({**SPEC, **changes})
