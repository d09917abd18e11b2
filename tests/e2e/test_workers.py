"""Workers as separate processes on PostgreSQL: runs shared and done once; a worker killed
with SIGKILL mid-step is replaced by another that resumes the step, nothing lost or doubled."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from core.db import make_engine, session_factory
from core.models import FeedRun, Listing, Source
from tests.conftest import backend_param
from tests.support.databases import fresh_database
from tests.support.sandbox import ROOT, cli
from tests.support.servers import wait_for

pytestmark = pytest.mark.parametrize("backend", [backend_param("postgres")])
ROWS = 500


@contextmanager
def slow_feed(pause: float):
    """An NDJSON feed that sends half its rows, pauses, then the rest; counts its requests."""
    state = {"requests": 0}
    lines = [json.dumps({"key": f"K{n:05d}", "price": str(1000 + n), "status": "Active", "zip": "34102"}) + "\n"
             for n in range(ROWS)]
    body = "".join(lines).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(pause)
            self.wfile.write(body[len(body) // 2:])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/feed.ndjson", state
    finally:
        server.shutdown()
        server.server_close()


def add_http_source(sessions, source_id: str, url: str) -> None:
    with sessions() as session:
        session.add(Source(
            id=source_id, name=source_id, timezone="UTC", earliest_download=dt.time(0, 0),
            download={"kind": "http", "url": url},
            parse={"format": "ndjson", "fields": {"ListingKey": "key", "ListPrice": "price",
                                                  "StandardStatus": "status", "PostalCode": "zip"},
                   "values": {}, "defaults": {}},
            images={"strategy": "none"}, state={},
        ))
        session.commit()


def worker(env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlsfeeds", "worker", "--interval", "1", "--no-images"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def database(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_STORAGE_URL": f"file://{tmp_path / 'objects'}",
               "MLSFEEDS_SECRET_KEY": "e2e", "MLSFEEDS_LEASE_SECONDS": "3"}
        yield env, session_factory(make_engine(url))


def test_a_worker_killed_mid_step_is_resumed_by_another_with_nothing_lost_or_doubled(database, tmp_path):
    env, sessions = database
    with slow_feed(pause=8) as (url, feed):
        add_http_source(sessions, "slow", url)
        with open(tmp_path / "a.log", "wb") as log_a, open(tmp_path / "b.log", "wb") as log_b:
            first = worker(env, log_a)
            try:
                wait_for(lambda: feed["requests"] == 1, 30, "the first worker to start downloading")
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                with sessions() as session:
                    run = session.scalars(select(FeedRun)).one()
                    assert (run.step, run.status) == ("download", "running")
                second = worker(env, log_b)
                try:
                    wait_for(lambda: _status(sessions) == "succeeded", 90, "the second worker to finish the run")
                finally:
                    second.terminate()
                    second.wait(30)
            finally:
                if first.poll() is None:
                    first.kill()
        assert feed["requests"] == 2, "the download that died was done again, once"
    with sessions() as session:
        run = session.scalars(select(FeedRun)).one()
        assert run.lease_owner is None and run.rows_inserted == ROWS
        assert session.scalar(select(func.count()).select_from(Listing)) == ROWS


def _status(sessions):
    with sessions() as session:
        return session.scalar(select(FeedRun.status))


def test_two_worker_processes_share_the_runs_and_do_each_once(database, tmp_path):
    env, sessions = database
    with slow_feed(pause=0.5) as (url, feed):
        for n in range(6):
            add_http_source(sessions, f"s{n}", url)
        with open(tmp_path / "a.log", "wb") as log_a, open(tmp_path / "b.log", "wb") as log_b:
            workers = [worker(env, log_a), worker(env, log_b)]
            try:
                wait_for(lambda: _finished(sessions) == 6, 120, "six runs to finish")
            finally:
                for w in workers:
                    w.send_signal(signal.SIGTERM)
                for w in workers:
                    w.wait(30)
        assert feed["requests"] == 6, "each source downloaded exactly once"
    with sessions() as session:
        runs = session.scalars(select(FeedRun)).all()
        assert len(runs) == 6 and {r.status for r in runs} == {"succeeded"}
        assert session.scalar(select(func.count()).select_from(Listing)) == 6 * ROWS
    logs = [(tmp_path / name).read_text() for name in ("a.log", "b.log")]
    assert all(" download " in log for log in logs), "both workers took runs"
    assert all("worker stopped" in log for log in logs), "SIGTERM: both finished their step and exited"


def _finished(sessions):
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(FeedRun).where(FeedRun.status == "succeeded"))
