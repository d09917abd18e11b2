"""Recordings of real RETS servers replayed through `mlsfeeds run`: login with relative URLs,
STANDARD-XML metadata, COMPACT-DECODED search pages, recorded GetObject replies and an HTML
page for a logout. Every recorded photo is read, the objects of each reply counted right, no
retry loop; a search that ends with 20201 in the middle of paging removes nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from core.db import make_engine, session_factory
from core.models import Listing, Media
from tests.support.databases import fresh_database
from tests.support.rets_replay import PASSWORD, USERNAME, ReplayServer
from tests.support.sandbox import cli

KEYS = {"213005147", "213011143", "213021380"}  # the three listings of the recorded search

SOURCE = """
[[source]]
id = "replay"
timezone = "America/New_York"
max_removed_share = 0.5

[source.download]
kind = "rets"
url = "{url}"
username = "{username}"
password = "${{REPLAY_PASSWORD}}"
class = "RES"
format = "COMPACT-DECODED"
modification_field = "LastChangeTimestamp"
timestamp_format = "%Y-%m-%dT%H:%M:%S"

[source.fields]
ListingKey = "MLSNumber"
ListingId = "MLSNumber"
StandardStatus = "Status"
PropertyType = "PropertyType"
ListPrice = "ListPrice"
City = "City"
StateOrProvince = "StateOrProvince"
PostalCode = "PostalCode"
PhotosChangeTimestamp = "PhotoModificationTimestamp"
ModificationTimestamp = "LastChangeTimestamp"

[source.values.StandardStatus]
Sold = "Closed"

[source.images]
strategy = "rets"
login_url = "{url}"
username = "{username}"
password = "${{REPLAY_PASSWORD}}"
id_field = "ListingId"
location = {location}
"""


@pytest.fixture
def replay():
    with ReplayServer() as server:
        yield server


@pytest.fixture
def deployment(tmp_path):
    with fresh_database("sqlite", tmp_path) as url:
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_STORAGE_URL": f"file://{tmp_path / 'objects'}",
               "MLSFEEDS_SECRET_KEY": "e2e", "MLSFEEDS_LOG_LEVEL": "WARNING", "REPLAY_PASSWORD": PASSWORD}
        yield env, session_factory(make_engine(url)), tmp_path


def apply(env, tmp_path, replay, location=False):
    path = tmp_path / "replay.toml"
    path.write_text(SOURCE.format(url=replay.login_url, username=USERNAME, location=str(location).lower()))
    cli(env, "sources", "apply", str(path))


def latest_run(env) -> dict:
    return {row["source"]: row for row in json.loads(cli(env, "status", "--json").stdout)}["replay"]["run"]


def photos(sessions) -> dict[str, tuple[int, int]]:
    """{listing key: (photos stored, photos linked)}."""
    with sessions() as session:
        rows = session.execute(select(Listing.listing_key, func.count(Media.storage_key), func.count(Media.url))
                               .join(Media).group_by(Listing.listing_key)).all()
    return {key: (stored, linked) for key, stored, linked in rows}


def test_a_recorded_server_is_read_whole_with_every_recorded_photo(replay, deployment):
    env, sessions, tmp_path = deployment
    apply(env, tmp_path, replay)
    result = cli(env, "run", "replay", "--full")
    run = latest_run(env)
    assert run["status"] == "succeeded" and run["warning"] is None, result.stdout
    assert (run["rows_parsed"], run["rows_inserted"], run["rows_rejected"]) == (3, 3, 0)
    assert (run["photos_stored"], run["photos_failed"], run["images_error"], run["images_attempt"]) == (9, 0, None, 0)
    assert photos(sessions) == {key: (3, 0) for key in KEYS}, "three JPEGs in every recorded reply"
    assert replay.replay.stats["login"] == 2, "one login for the data, one for the whole photo job"
    assert replay.replay.stats["getobject"] == 3 and replay.replay.stats["logout"] == 2


def test_a_recorded_location_reply_links_all_its_objects(replay, deployment):
    env, sessions, tmp_path = deployment
    replay.replay.getobject = "refindly/GetObject_multipart_Location1.byte"
    replay.replay.getobject_type = "multipart/parallel"  # recorded without its boundary parameter
    apply(env, tmp_path, replay, location=True)
    cli(env, "run", "replay", "--full")
    run = latest_run(env)
    assert (run["photos_linked"], run["photos_stored"], run["photos_failed"]) == (3 * 41, 0, 0)
    assert photos(sessions) == {key: (0, 41) for key in KEYS}


def test_a_recorded_no_records_reply_in_the_middle_of_paging_removes_nothing(replay, deployment):
    env, sessions, tmp_path = deployment
    apply(env, tmp_path, replay)
    cli(env, "run", "replay", "--full", "--no-images")
    replay.replay.search_ends_early = True
    printed = cli(env, "run", "replay", "--full", "--no-images").stdout
    run = latest_run(env)
    assert (run["status"], run["rows_removed"]) == ("succeeded", 0)
    assert run["warning"] == ("nothing removed: the payload is not whole: the RETS server announced 6 records (COUNT) "
                              "and sent 3; paging ended at Offset=4 with reply 20201 and 0 rows")
    assert "warning: nothing removed" in printed
    with sessions() as session:
        assert set(session.scalars(select(Listing.listing_key).where(Listing.removed_at.is_(None)))) == KEYS
