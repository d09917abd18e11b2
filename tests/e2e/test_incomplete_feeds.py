"""Feeds lose nothing, as an operator runs them: the sandbox RETS, RESO and SOAP servers end a
full feed early (a 20201 in the middle of paging, a page without its nextLink, short pages),
`mlsfeeds run` removes nothing and says why, and the next whole run removes exactly what the
feed dropped. A feed that drops more than max_removed_share has its removals held until
`mlsfeeds run SOURCE --release-removals`, which spares the listings that came back.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from core.db import make_engine, session_factory
from core.models import Listing
from sandbox.world import World, source_id
from tests.support.databases import fresh_database
from tests.support.sandbox import cli, running_world

KINDS = ("rets", "reso", "soap")
LISTINGS = 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with running_world(tmp_path_factory.mktemp("sandbox"), listings=LISTINGS, seed=9, kinds=KINDS) as world:
        yield world


@pytest.fixture(scope="module")
def deployment(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("db")
    with fresh_database("sqlite", tmp) as url:
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_STORAGE_URL": f"file://{tmp / 'objects'}",
               "MLSFEEDS_SECRET_KEY": "e2e", "MLSFEEDS_LOG_LEVEL": "WARNING"}
        cli(env, "sources", "apply", str(world.root / "sources.toml"))
        for kind in KINDS:
            cli(env, "run", source_id(kind), "--full", "--no-images")
        yield env, session_factory(make_engine(url))


def active(sessions, sid: str) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(Listing.listing_key).where(Listing.source_id == sid,
                                                                     Listing.removed_at.is_(None))))


def drop(world: World, sid: str, count: int) -> list[dict]:
    """The server stops publishing ``count`` listings of ``sid``; returns them."""
    listings = world.state["sources"][sid]["listings"]
    dropped, listings[:] = listings[:count], listings[count:]
    world.publish()
    return dropped


def full_run(env, sid: str, *flags: str) -> tuple[dict, str]:
    result = cli(env, "run", sid, "--no-images", *flags)
    status = {row["source"]: row for row in json.loads(cli(env, "status", "--json").stdout)}
    return status[sid], result.stdout


@pytest.mark.parametrize("kind, quirks, why", [
    ("rets", {"max_rows": 15, "end_feed_after": 15},
     "the RETS server announced 37 records (COUNT) and sent 15; paging ended at Offset=16 with reply 20201"),
    ("reso", {"end_feed_after": 15},
     "the RESO server announced 37 records (@odata.count) and sent 15; the last page"),
    ("soap", {"end_feed_after": 15},
     "the SOAP service announced 37 records (TotalCount) and sent 15"),
])
def test_a_full_feed_that_ends_early_removes_nothing_and_the_next_whole_one_removes_what_it_dropped(
        world, deployment, kind, quirks, why):
    env, sessions = deployment
    sid = source_id(kind)
    before = active(sessions, sid)
    dropped = {listing["ListingKey"] for listing in drop(world, sid, 3)}
    world.set_quirks(sid, **quirks)
    row, printed = full_run(env, sid, "--full")
    run = row["run"]
    assert (run["status"], run["rows_removed"], run["removals_held"]) == ("succeeded", 0, 0)
    assert run["warning"].startswith(f"nothing removed: the payload is not whole: {why}")
    assert f"{sid}#{run['id']}: warning: nothing removed" in printed
    assert f"! {sid}#{run['id']}: nothing removed" in cli(env, "status").stdout
    assert active(sessions, sid) == before, "not one listing lost, the dropped ones included"

    world.set_quirks(sid)  # the server sends its whole feed again
    row, _ = full_run(env, sid, "--full")
    assert (row["run"]["rows_removed"], row["run"]["warning"]) == (3, None)
    assert active(sessions, sid) == before - dropped


def test_dropping_more_than_the_share_holds_the_removals_until_an_operator_releases_them(world, deployment):
    env, sessions = deployment
    sid = source_id("rets")
    before = active(sessions, sid)
    dropped = drop(world, sid, 8)  # of 37: more than the default 10 %
    row, printed = full_run(env, sid, "--full")
    holding = row["run"]
    assert (holding["status"], holding["rows_removed"], holding["removals_held"]) == ("succeeded", 0, 8)
    assert row["held_removals"]["listings"] == 8 and active(sessions, sid) == before
    assert (f"! {sid}: run #{holding['id']} holds 8 removals; release them with "
            f"`mlsfeeds run {sid} --release-removals`") in cli(env, "status").stdout

    back = dropped[0]  # it comes back to the feed, and an incremental run sees it
    back["ModificationTimestamp"] = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    world.state["sources"][sid]["listings"].append(back)
    world.publish()
    assert full_run(env, sid)[0]["run"]["kind"] == "incremental"

    released = cli(env, "run", sid, "--release-removals").stdout
    assert f"released the removals held by run #{holding['id']}: 7 listings removed, 1 back in the feed " \
           f"since (kept)" in released
    assert active(sessions, sid) == before - {listing["ListingKey"] for listing in dropped[1:]}
    status = {r["source"]: r for r in json.loads(cli(env, "status", "--json").stdout)}
    assert status[sid]["held_removals"] is None
    assert "no removals are held" in cli(env, "run", sid, "--release-removals").stdout


def test_quirks_are_set_from_the_command_line_and_refused_when_unknown(world, deployment):
    env, _ = deployment
    shown = cli(env, "sandbox", "quirks", "--dir", str(world.root), "retsmls", "max_rows=15",
                "caption_header=Description").stdout
    assert shown.startswith('retsmls: {"caption_header": "Description", "max_rows": 15}')
    assert json.loads((world.root / "rets" / "quirks.json").read_text()) == {"caption_header": "Description",
                                                                             "max_rows": 15}
    refused = cli(env, "sandbox", "quirks", "--dir", str(world.root), "retsmls", "nope=1", check=False)
    assert refused.returncode == 2 and "has no quirk 'nope'" in refused.stderr
    assert cli(env, "sandbox", "quirks", "--dir", str(world.root), "retsmls").stdout.startswith("retsmls: no quirks")
    assert json.loads((world.root / "rets" / "quirks.json").read_text()) == {}
