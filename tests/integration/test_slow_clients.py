"""Slow, heavy and concurrent clients must not starve the others: the shipped gunicorn.conf.py
under load from hostile connections, measured against the same normal requests on an idle
service. The probes are bench/hostile.py's, which runs them for longer and prints the figures.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench import hostile as probes
from tests.conftest import SERVICE_BACKENDS, backend_param
from tests.support.databases import fresh_database
from tests.support.http import basic, envelope
from tests.support.servers import rss_mb, soap_server
from tests.support.soap import CONSUMER, prepare_database, service_env

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
SEARCH = envelope("<m:SearchListings><m:StandardStatus>Active</m:StandardStatus><m:SortBy>ListPrice</m:SortBy>"
                  "<m:PageSize>25</m:PageSize></m:SearchListings>")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    with fresh_database("sqlite", tmp) as url:
        prepare_database(url, listings=2000)
        env = {**service_env(url, "http://127.0.0.1"), "MLSFEEDS_HEADER_TIMEOUT": "5"}
        with soap_server(env, log_path=tmp / "gunicorn.log") as running:
            running.log = tmp / "gunicorn.log"
            yield running


def latencies(base: str, seconds: float) -> list[float]:
    """Normal authenticated searches, one after another, for ``seconds``."""
    headers = {"Content-Type": "text/xml; charset=utf-8", "Authorization": basic(*CONSUMER)}
    return probes.latencies(base, seconds, SEARCH, headers)


def p99(values: list[float]) -> float:
    return probes.percentile(values, 0.99)


def under_load(server, senders, seconds: float) -> list[float]:
    return probes.under_load(lambda: latencies(server.base, seconds), senders)


def test_trickling_connections_do_not_hold_up_normal_requests(server):
    workers = server.workers()
    idle = latencies(server.base, 4)
    head = f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {len(SEARCH)}\r\n" \
           f"Authorization: {basic(*CONSUMER)}\r\n\r\n".encode()
    payloads = probes.trickle_payloads(64, head, SEARCH)
    busy = under_load(server, [functools.partial(probes.tricklers, server.port, payloads)], 10)
    assert p99(busy) <= 3 * p99(idle) + 0.005, (p99(idle), p99(busy))
    assert server.workers() == workers, "a worker was killed"
    assert "WORKER TIMEOUT" not in server.log.read_text()


def test_heavy_unauthenticated_bodies_cost_little(server):
    workers = server.workers()
    idle = latencies(server.base, 4)
    memory = {pid: rss_mb(pid) for pid in workers}
    senders = probes.heavy_senders(server.port)
    busy = under_load(server, senders, 10)
    assert p99(busy) <= 3 * p99(idle) + 0.005, (p99(idle), p99(busy))
    assert server.workers() == workers
    grown = {pid: rss_mb(pid) - before for pid, before in memory.items()}
    assert max(grown.values()) < 20, grown


def digest_envelope(user: str, password: str) -> bytes:
    nonce = os.urandom(16)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    header = (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
              f"<wsse:Username>{user}</wsse:Username><wsse:Password Type=\"{DIGEST}\">{digest}</wsse:Password>"
              f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
              "</wsse:UsernameToken></wsse:Security>")
    return envelope("<m:GetFeedStatus/>", header)


@pytest.mark.parametrize("backend", [backend_param(b) for b in SERVICE_BACKENDS])
def test_concurrent_digest_calls_all_succeed(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        prepare_database(url, listings=50)
        with soap_server(service_env(url, "http://127.0.0.1"), workers=4, log_path=tmp_path / "g.log") as running:
            def call(_):
                reply = requests.post(running.base + "/soap", data=digest_envelope(*CONSUMER),
                                      headers={"Content-Type": "text/xml"}, timeout=60)
                return reply.status_code

            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(call, range(120)))
    assert statuses == [200] * 120, (tmp_path / "g.log").read_text()[-2000:]
