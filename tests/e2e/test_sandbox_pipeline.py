"""Issue #3's check, as an operator would run it: the sandbox's MLS servers (FTP, SFTP, HTTP,
SOAP, RETS, RESO, SQL), `mlsfeeds sources apply`, `mlsfeeds run` per source, and the database
compared with what each server published — then re-runs, mutations, full and incremental runs.
"""

from __future__ import annotations

import json

import pytest

from core.db import make_engine, session_factory
from sandbox.world import World
from tests.support.databases import fresh_database
from tests.support.sandbox import cli, expected, mismatches, running_world


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with running_world(tmp_path_factory.mktemp("sandbox"), listings=40, seed=5) as world:
        yield world


@pytest.fixture(scope="module")
def deployment(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("db")
    with fresh_database("sqlite", tmp) as url:
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_STORAGE_URL": f"file://{tmp / 'objects'}",
               "MLSFEEDS_SECRET_KEY": "e2e", "MLSFEEDS_LOG_LEVEL": "WARNING"}
        applied = cli(env, "sources", "apply", str(sandbox.root / "sources.toml"))
        assert applied.stdout.count("created") == len(sandbox.state["sources"])
        yield env, session_factory(make_engine(url))


def run_all(sandbox, env, *flags) -> dict[str, dict]:
    for source_id in sorted(sandbox.state["sources"]):
        result = cli(env, "run", source_id, "--no-images", *flags, check=False)
        assert result.returncode == 0, f"{source_id}:\n{result.stdout}\n{result.stderr}"
        assert "download" in result.stdout and "load" in result.stdout
    status = json.loads(cli(env, "status", "--json").stdout)
    return {row["source"]: row["run"] for row in status}


def test_every_listing_every_server_published_arrives_mapped(sandbox, deployment):
    env, sessions = deployment
    runs = run_all(sandbox, env)
    assert {r["status"] for r in runs.values()} == {"succeeded"}
    with sessions() as session:
        problems = [p for sid, wanted in expected(sandbox.root).items() for p in mismatches(session, sid, wanted)]
    assert problems == []
    assert all(r["rows_rejected"] == 0 for r in runs.values())


def test_a_second_run_changes_nothing(sandbox, deployment):
    env, _ = deployment
    runs = run_all(sandbox, env, "--full")
    for source_id, run in runs.items():
        assert (run["rows_inserted"], run["rows_updated"], run["rows_removed"]) == (0, 0, 0), source_id


def test_a_full_run_after_the_servers_drop_listings_removes_exactly_those(sandbox, deployment):
    env, sessions = deployment
    report = World.open(sandbox.root).mutate(add=2, change=3, remove=4)
    runs = run_all(sandbox, env, "--full")
    for source_id, run in runs.items():
        changes = report[source_id]
        assert run["rows_removed"] == len(changes["removed"]) == 4, source_id
        assert run["rows_inserted"] == 2, source_id
        assert run["rows_updated"] >= 3, source_id
    with sessions() as session:
        problems = [p for sid, wanted in expected(sandbox.root).items() for p in mismatches(session, sid, wanted)]
    assert problems == []


def test_an_incremental_run_takes_changes_and_never_removes(sandbox, deployment):
    env, sessions = deployment
    report = World.open(sandbox.root).mutate(change=3, remove=2)
    runs = run_all(sandbox, env)  # incremental: each source has had a successful run
    for source_id, run in runs.items():
        assert run["kind"] == "incremental" and run["rows_removed"] == 0, source_id
    with sessions() as session:
        for source_id, changes in report.items():
            wanted = expected(sandbox.root)[source_id]
            problems = [p for p in mismatches(session, source_id, wanted) if "unexpected" not in p]
            assert problems == [], source_id
