"""Which remote files the ftp/sftp connectors take, and what they remember (no sockets)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.connectors._files import (
    FileRules,
    RemoteFile,
    empty_payload,
    local_path,
    payload_file,
    select_files,
)
from pipeline.errors import FeedNotFound, SourceConfigError, SourceUnavailable

T0 = dt.datetime(2026, 6, 1, 6, 0, tzinfo=dt.timezone.utc)


def remote(name: str, days: int = 0, size: int = 100) -> RemoteFile:
    return RemoteFile(name, size, T0 + dt.timedelta(days=days))


DAILY = [remote("listings_1.txt", 0), remote("listings_2.txt", 1), remote("listings_3.txt", 2)]


def names(files) -> list[str]:
    return [f.name for f in files]


def rules(**spec) -> FileRules:
    return FileRules.from_spec({"pattern": "listings_*.txt", **spec})


def state_after(*files: RemoteFile) -> dict:
    return {"files": {f.name: f.signature for f in files}}


def test_only_names_matching_a_pattern_are_taken_case_sensitively():
    listing = [remote("listings_1.txt"), remote("LISTINGS_2.TXT"), remote("agents_1.txt"), remote("readme")]
    assert names(select_files(listing, rules(), {}).chosen) == ["listings_1.txt"]


def test_several_patterns_are_allowed_and_a_file_is_taken_once():
    listing = [remote("listings_1.txt"), remote("agents_1.csv", 1)]
    chosen = select_files(listing, rules(pattern=["listings_*", "*.txt", "agents_*"]), {}).chosen
    assert names(chosen) == ["agents_1.csv", "listings_1.txt"]


def test_newest_first_orders_by_modification_time_then_name():
    listing = [remote("listings_b.txt", 1), remote("listings_a.txt", 1), remote("listings_c.txt", 0)]
    assert names(select_files(listing, rules(), {}).chosen) == ["listings_b.txt", "listings_a.txt", "listings_c.txt"]


def test_max_files_keeps_the_newest():
    assert names(select_files(DAILY, rules(max_files=2), {}).chosen) == ["listings_3.txt", "listings_2.txt"]


def test_an_older_file_never_stands_in_for_the_newest_already_fetched():
    selection = select_files(DAILY, rules(max_files=1), state_after(DAILY[2]))
    assert selection.chosen == [] and names(selection.matched) == names(DAILY)


def test_oldest_first_drains_a_backlog_max_files_per_run():
    first = select_files(DAILY, rules(newest_first=False, max_files=2), {})
    assert names(first.chosen) == ["listings_1.txt", "listings_2.txt"]
    second = select_files(DAILY, rules(newest_first=False, max_files=2), first.state)
    assert names(second.chosen) == ["listings_3.txt"]


def test_files_fetched_before_are_skipped_unless_their_size_or_time_changed():
    seen = state_after(*DAILY)
    grown = [remote("listings_1.txt", 0, size=101), DAILY[1], remote("listings_3.txt", 3)]
    assert names(select_files(DAILY, rules(), seen).chosen) == []
    assert names(select_files(grown, rules(), seen).chosen) == ["listings_3.txt", "listings_1.txt"]


def test_only_new_false_takes_everything_again():
    assert len(select_files(DAILY, rules(only_new=False), state_after(*DAILY)).chosen) == 3


def test_state_keeps_what_was_fetched_forgets_removed_files_and_keeps_other_patterns():
    previous = state_after(remote("listings_0.txt", -1), DAILY[0])
    previous["files"]["full_20260601.txt"] = [5, None]
    selection = select_files(DAILY[:2], rules(), previous)
    assert selection.state == {"files": {
        "listings_1.txt": DAILY[0].signature,
        "listings_2.txt": DAILY[1].signature,
        "full_20260601.txt": [5, None],
    }}


def test_state_is_json_shaped():
    assert DAILY[0].signature == [100, "2026-06-01T06:00:00+00:00"]
    assert RemoteFile("x").signature == [None, None]


def test_incremental_runs_skip_files_older_than_since_minus_the_margin():
    since = T0 + dt.timedelta(days=2)
    listing = DAILY + [RemoteFile("listings_nodate.txt", 7)]
    chosen = select_files(listing, FileRules.from_spec({"pattern": "listings_*.txt"}, since), {}).chosen
    assert names(chosen) == ["listings_3.txt", "listings_2.txt", "listings_nodate.txt"]
    narrow = FileRules.from_spec({"pattern": "listings_*.txt", "since_margin_seconds": 0}, since)
    assert names(select_files(listing, narrow, {}).chosen) == ["listings_3.txt", "listings_nodate.txt"]


def test_naive_since_is_taken_as_utc():
    naive = FileRules.from_spec({"pattern": "*"}, dt.datetime(2026, 6, 3, 6, 0))
    assert naive.since == T0 + dt.timedelta(days=2)


def test_incremental_pattern_takes_every_new_change_file_oldest_first():
    spec = {"pattern": "full_*.txt", "incremental_pattern": "incr_*.txt", "max_files": 1}
    listing = [remote("full_1.txt", 0), remote("incr_2.txt", 2), remote("incr_1.txt", 1)]
    full = select_files(listing, FileRules.from_spec(spec), {})
    assert names(full.chosen) == ["full_1.txt"]
    incremental = select_files(listing, FileRules.from_spec(spec, T0), full.state)
    assert names(incremental.chosen) == ["incr_1.txt", "incr_2.txt"]
    assert set(incremental.state["files"]) == {"full_1.txt", "incr_1.txt", "incr_2.txt"}


def test_no_change_file_yet_is_not_modified_on_an_incremental_run():
    spec = {"pattern": "full_*.txt", "incremental_pattern": "incr_*.txt"}
    incremental = FileRules.from_spec(spec, T0)
    selection = select_files([remote("full_1.txt")], incremental, {})
    assert empty_payload(selection, incremental, "ftp://mls:21/").not_modified
    with pytest.raises(FeedNotFound):
        empty_payload(select_files([], FileRules.from_spec(spec), {}), FileRules.from_spec(spec), "ftp://mls:21/")


def test_no_matching_file_is_feed_not_found_naming_pattern_and_directory():
    selection = select_files([remote("other.txt")], rules(), {})
    with pytest.raises(FeedNotFound, match=r"listings_\*\.txt in ftp://mls:21/out"):
        empty_payload(selection, rules(), "ftp://mls:21/out")


def test_everything_already_fetched_is_not_modified():
    selection = select_files(DAILY, rules(), state_after(*DAILY))
    payload = empty_payload(selection, rules(), "ftp://mls:21/")
    assert payload.not_modified and payload.files == [] and payload.state == state_after(*DAILY)


def test_missing_ok_turns_no_match_into_not_modified():
    selection = select_files([], rules(missing_ok=True), {})
    assert empty_payload(selection, rules(missing_ok=True), "sftp://mls:22/").not_modified


@pytest.mark.parametrize("spec, key", [
    ({}, "pattern"),
    ({"pattern": []}, "pattern"),
    ({"pattern": "*", "max_files": 0}, "max_files"),
    ({"pattern": "*", "newest_first": "yes"}, "newest_first"),
])
def test_a_wrong_spec_names_the_key(spec, key):
    with pytest.raises(SourceConfigError, match=key):
        FileRules.from_spec(spec)


def test_remote_names_land_inside_the_work_directory(tmp_path):
    assert local_path(tmp_path, "out/listings.txt") == tmp_path / "listings.txt"
    assert local_path(tmp_path, "..\\..\\evil.txt") == tmp_path / "evil.txt"
    for bad in ("..", "dir/", "a\nb"):
        with pytest.raises(SourceConfigError):
            local_path(tmp_path, bad)


def test_a_download_shorter_than_listed_is_transient(tmp_path):
    path = tmp_path / "listings_1.txt"
    path.write_bytes(b"x" * 100)
    assert payload_file(path, DAILY[0]).meta == {"remote": "listings_1.txt", "mtime": T0.isoformat(), "size": 100}
    with pytest.raises(SourceUnavailable, match="101"):
        payload_file(path, remote("listings_1.txt", size=101))
