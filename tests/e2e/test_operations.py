"""The operator's side, as a new operator meets it: a worker pulls two sources (one fails), the
service serves the status page (driven in a real headless Chromium), /metrics (scraped by a real
Prometheus, along with the worker's own), /healthz and /readyz; both write JSON logs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from core.clients import upsert_client
from core.db import make_engine, session_factory
from core.models import FeedRun, Source
from tests.support.databases import fresh_database
from tests.support.servers import ROOT, free_port, soap_server, wait_for, wait_for_http

SECRET = "ops-secret"
OPERATOR = ("ops", "ops-password")
CONSUMER = ("alice", "alice-password")
ROWS = 40
FIELDS = {"ListingKey": "key", "ListPrice": "price", "StandardStatus": "status", "PostalCode": "zip"}


@contextmanager
def feed_server():
    """/good.ndjson: ROWS listings; anything else: 404 (the broken source's permanent failure)."""
    body = "".join(json.dumps({"key": f"K{n:04d}", "price": str(100_000 + n), "status": "Active" if n % 4 else "Pending",
                               "zip": "34102"}) + "\n" for n in range(ROWS))
    body = (body + json.dumps({"key": "K9999", "price": "call for price", "status": "Active"}) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/good.ndjson"
            self.send_response(200 if found else 404)
            payload = body if found else b"no such feed"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def add_source(session, source_id: str, url: str) -> None:
    session.add(Source(id=source_id, name=f"{source_id} MLS", timezone="America/New_York",
                       earliest_download=dt.time(0, 0), download={"kind": "http", "url": url},
                       parse={"format": "ndjson", "fields": FIELDS, "values": {}, "defaults": {}},
                       images={"strategy": "none"}, state={}))


class Ops:
    """The deployment under test."""

    def __init__(self, tmp: Path, database_url: str, base: str, worker_metrics: str):
        self.tmp, self.database_url, self.base, self.worker_metrics = tmp, database_url, base, worker_metrics

    def get(self, path: str, auth=OPERATOR, **kwargs) -> requests.Response:
        return requests.get(self.base + path, auth=auth, timeout=30, allow_redirects=False, **kwargs)


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ops")
    with fresh_database("sqlite", tmp) as url, feed_server() as feeds:
        sessions = session_factory(make_engine(url))
        with sessions() as session:
            add_source(session, "goodmls", f"{feeds}/good.ndjson")
            add_source(session, "brokenmls", f"{feeds}/gone.ndjson")
            upsert_client(session, *OPERATOR, secret_key=SECRET, role="operator", all_sources=True)
            upsert_client(session, *CONSUMER, secret_key=SECRET, sources=["goodmls"])
            session.commit()
        env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET, "MLSFEEDS_LOG_FORMAT": "json",
               "MLSFEEDS_STORAGE_URL": f"file://{tmp / 'objects'}", "MLSFEEDS_LOG_LEVEL": "INFO"}
        metrics_port = free_port()
        with open(tmp / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "mlsfeeds", "worker", "--interval", "1", "--no-images",
                 "--metrics-bind", f"127.0.0.1:{metrics_port}"],
                cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: _finished(sessions) == 2, 90, "both sources' runs to finish")
                with soap_server(env, workers=2, log_path=tmp / "service.log") as server:
                    yield Ops(tmp, url, server.base, f"http://127.0.0.1:{metrics_port}")
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)


def _finished(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(FeedRun)
                              .where(FeedRun.status.in_(("succeeded", "failed"))))


# -- the status page ---------------------------------------------------------------------------------

def test_the_status_page_is_for_operators(ops):
    anonymous = ops.get("/status", auth=None)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert ops.get("/status", auth=("ops", "wrong")).status_code == 401
    assert ops.get("/status", auth=CONSUMER).status_code == 403
    page = ops.get("/status")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert ops.get("/", auth=None).headers["Location"] == "/status"
    assert ops.get("/status/nosuch").status_code == 404


def test_the_status_page_puts_the_failed_source_first_with_its_error(ops):
    page = ops.get("/status").text
    assert page.index('id="source-brokenmls"') < page.index('id="source-goodmls"')
    assert "download failed" in page and "404" in page
    detail = ops.get("/status/goodmls").text
    assert "<svg" in detail and f"{ROWS} listed" in detail and f"Active {ROWS - ROWS // 4}" in detail
    rejects = detail[detail.index('id="rejects"'):]
    assert "K9999" in rejects and "call for price" in rejects  # the reject and its reason


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (.ci/install-clients.sh installs them)")
def test_an_operator_finds_the_failed_source_and_reads_its_error_in_a_browser(ops, tmp_path):
    from selenium.webdriver.common.by import By

    with chromium(tmp_path) as browser:
        host = ops.base.removeprefix("http://")
        browser.get(f"http://{OPERATOR[0]}:{OPERATOR[1]}@{host}/status")
        first = browser.find_element(By.CSS_SELECTOR, "#sources tbody tr")
        assert first.get_attribute("id") == "source-brokenmls" and "failed" in first.get_attribute("class")
        browser.save_screenshot(str(tmp_path / "status.png"))
        first.find_element(By.LINK_TEXT, "brokenmls").click()
        error = browser.find_element(By.ID, "last-error").text
        with session_of(ops) as session:
            run = session.scalar(select(FeedRun).where(FeedRun.source_id == "brokenmls"))
            assert error == run.last_error and "404" in error
        assert browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        browser.save_screenshot(str(tmp_path / "source.png"))
        browser.set_window_size(390, 844)  # a phone
        browser.get(f"http://{host}/status")
        browser.save_screenshot(str(tmp_path / "status-phone.png"))
        cell = browser.find_element(By.CSS_SELECTOR, "#sources tbody tr td")
        assert cell.size["width"] <= 390


@contextmanager
def chromium(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        yield browser
    finally:
        browser.quit()


@contextmanager
def session_of(ops):
    with session_factory(make_engine(ops.database_url))() as session:
        yield session


# -- metrics -------------------------------------------------------------------------------------------

def soap_call(ops, auth) -> int:
    body = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            '<GetFeedStatus xmlns="urn:mlsfeeds:soap:1"/></s:Body></s:Envelope>')
    return requests.post(ops.base + "/soap", data=body, auth=auth, timeout=30,
                         headers={"Content-Type": "text/xml; charset=utf-8"}).status_code


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_metrics_count_soap_calls_across_workers_and_read_the_feeds(ops):
    before = samples(ops.get("/metrics", auth=None).text)
    for _ in range(6):
        assert soap_call(ops, OPERATOR) == 200
    assert soap_call(ops, ("ops", "wrong")) == 500
    after = samples(ops.get("/metrics", auth=None).text)
    ok = 'mlsfeeds_soap_requests_total{operation="GetFeedStatus",outcome="ok"}'
    assert after[ok] - before.get(ok, 0) == 6
    assert after["mlsfeeds_soap_authentication_failures_total"] - before.get(
        "mlsfeeds_soap_authentication_failures_total", 0) == 1
    assert after['mlsfeeds_soap_request_seconds_count{operation="GetFeedStatus"}'] >= 6
    assert after['mlsfeeds_soap_rows_returned_total{operation="GetFeedStatus"}'] >= 12
    assert after['mlsfeeds_listings{source="goodmls",status="Active"}'] == ROWS - ROWS // 4
    assert after['mlsfeeds_listings{source="goodmls",status="Pending"}'] == ROWS // 4
    assert after['mlsfeeds_source_last_run_failed{source="brokenmls"}'] == 1
    assert after['mlsfeeds_source_last_run_failed{source="goodmls"}'] == 0
    assert after['mlsfeeds_source_seconds_since_success{source="goodmls"}'] < 600
    assert 'mlsfeeds_source_seconds_since_success{source="brokenmls"}' not in after
    assert after['mlsfeeds_runs{status="queued"}'] >= 0 and "mlsfeeds_oldest_queued_run_seconds" in after


def test_the_worker_serves_its_own_metrics(ops):
    found = samples(requests.get(ops.worker_metrics + "/metrics", timeout=10).text)
    assert found['mlsfeeds_worker_runs_finished_total{source="goodmls",status="succeeded"}'] == 1
    assert found['mlsfeeds_worker_runs_finished_total{source="brokenmls",status="failed"}'] == 1
    assert found['mlsfeeds_worker_rows_total{kind="inserted",source="goodmls",step="load"}'] == ROWS
    assert found['mlsfeeds_worker_step_seconds_count{source="goodmls",step="download"}'] == 1
    assert time.time() - found["mlsfeeds_worker_last_tick_timestamp_seconds"] < 60


@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs Debian's prometheus package")
def test_a_real_prometheus_scrapes_the_service_and_the_worker(ops, tmp_path):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ROOT / 'docs' / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: mlsfeeds, static_configs: [{{targets: ['{ops.base.removeprefix('http://')}']}}]}}\n"
        f"  - {{job_name: mlsfeeds-worker, static_configs: [{{targets: ['{ops.worker_metrics.removeprefix('http://')}']}}]}}\n")
    command = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with open(tmp_path / "prometheus.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            api = f"http://127.0.0.1:{port}/api/v1"
            wait_for_http(f"http://127.0.0.1:{port}/-/ready", server)

            def value(query: str):
                result = requests.get(f"{api}/query", params={"query": query}, timeout=10).json()["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            wait_for(lambda: value('up{job="mlsfeeds"}') == 1 and value('up{job="mlsfeeds-worker"}') == 1, 60,
                     "both targets to be scraped")
            assert value('mlsfeeds_listings{source="goodmls",status="Active"}') == ROWS - ROWS // 4
            assert value('mlsfeeds_source_last_run_failed{source="brokenmls"}') == 1
            assert value('mlsfeeds_worker_rows_total{source="goodmls",step="load",kind="inserted"}') == ROWS
            rules = requests.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
            assert {r["name"] for g in rules for r in g["rules"]} >= {"SourceRunFailed", "SourceStale", "NoWorkerHeartbeat"}
            assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules
        finally:
            server.terminate()
            server.wait(30)


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool from Debian's prometheus package")
    result = subprocess.run([promtool, "check", "rules", str(ROOT / "docs" / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- health and logs ----------------------------------------------------------------------------------

def test_healthz_and_readyz_answer_when_all_is_well(ops):
    assert ops.get("/healthz", auth=None).text == "ok\n"
    ready = ops.get("/readyz", auth=None)
    assert ready.status_code == 200 and "database: ok" in ready.text and "object store: ok" in ready.text


def json_lines(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_service_and_worker_log_one_json_object_per_line(ops):
    soap_call(ops, ("alice", "wrong-password"))
    basic = base64.b64encode(b"alice:alice-password").decode()
    requests.post(ops.base + "/soap", data=b"<x/>", timeout=30,
                  headers={"Authorization": f"Basic {basic}", "Content-Type": "text/xml"})
    time.sleep(0.5)
    service = json_lines(ops.tmp / "service.log")
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in service)
    faults = [line for line in service if line["logger"] == "mlsfeeds.soap"]
    assert any(line.get("client") == "alice" and line["level"] == "WARNING" for line in faults), faults
    assert any(line["logger"] == "gunicorn.access" for line in service)
    worker = json_lines(ops.tmp / "worker.log")
    steps = [line for line in worker if line.get("run_id")]
    assert {line["source"] for line in steps} >= {"goodmls", "brokenmls"}
    assert any(line["level"] == "WARNING" and "404" in line["message"] for line in steps)
