"""``mlsfeeds demo``: the embedded mode, fed through the real pipeline, ready to call.

It starts the sandbox's simulated MLS servers (FTP, SFTP, HTTP, SOAP, RETS, RESO Web API, SQL)
in this process, applies their sources.toml, runs every source's data steps, creates a demo
client and serves SOAP under gunicorn; the photo job then runs in the background while the
service answers. The sandbox lives in ./var/sandbox and is reused on the next start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from core import db
from core.clients import upsert_client
from core.settings import Settings

DEMO_LISTINGS_PER_SOURCE = 400
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"
SANDBOX_DIR = Path("var/sandbox")


class PortBusy(Exception):
    """The demo's port is taken; the message says how to pick another."""


def check_port(bind: str) -> None:
    """Fail before any work if ``bind`` (HOST:PORT) cannot be listened on."""
    import socket

    host, _, port = bind.rpartition(":")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
            probe.bind((host.strip("[]"), int(port)))
    except OSError as exc:
        raise PortBusy(f"cannot listen on {bind} ({exc.strerror}): another program uses it. Pick another port with "
                       f"`mlsfeeds demo --bind 127.0.0.1:8080` (or MLSFEEDS_BIND=127.0.0.1:8080 make demo)") from None


def run(settings: Settings, public_url: str, gunicorn_command: list[str], env: dict[str, str]) -> int:
    from sandbox.world import World, start_servers

    check_port(settings.bind)
    # SIGTERM (a supervisor, `timeout`, `kill`) stops the demo as Ctrl-C does: gunicorn and the
    # simulated servers are stopped with it instead of left running on the port.
    signal.signal(signal.SIGTERM, _interrupt)
    db.upgrade(settings.database_url)
    fresh = not (SANDBOX_DIR / "state.json").exists()
    if fresh:
        print(f"creating the sandbox in {SANDBOX_DIR}: listings and photos for 7 simulated MLS servers "
              "(some seconds, once)...", flush=True)
    world = World.create(SANDBOX_DIR, DEMO_LISTINGS_PER_SOURCE, seed=1) if fresh else World.open(SANDBOX_DIR)
    if fresh:
        print(f"sandbox: {len(world.state['sources'])} simulated MLS servers, "
              f"{DEMO_LISTINGS_PER_SOURCE} listings each, in {SANDBOX_DIR}")
    servers, _ = start_servers(world)
    try:
        _load(settings, world)
        _demo_client(settings)
        print(_how_to_call(public_url), flush=True)
        return _serve_with_photos(settings, gunicorn_command, env)
    finally:
        for server in servers:
            server.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _load(settings: Settings, world) -> None:
    """Apply the sandbox's sources and run each one's data steps now, printing as it goes."""
    from mlsfeeds.pipeline_cli import _printer
    from mlsfeeds.wiring import build_balancer
    from pipeline.spec import apply, load_file

    balancer = build_balancer(settings, on_step=_printer)
    with balancer.sessions() as session:
        apply(session, load_file(SANDBOX_DIR / "sources.toml"))
        session.commit()
    for source_id in sorted(world.state["sources"]):
        run_id = _new_run(balancer, source_id)
        if balancer.claim(run_id) is not None:
            balancer.advance(run_id)


def _new_run(balancer, source_id: str) -> int:
    import datetime as dt

    from core.models import FeedRun
    from pipeline.schedule import business_date, last_success

    with balancer.sessions() as session:
        from core.models import Source

        source = session.get(Source, source_id)
        now = dt.datetime.now(dt.timezone.utc)
        previous = last_success(session, source_id)
        run = FeedRun(source_id=source_id, business_date=business_date(source, now),
                      kind="incremental" if previous else "full", slot=f"demo-{now:%H%M%S%f}", window_end=now,
                      window_start=(previous.window_end - dt.timedelta(minutes=5)) if previous else None)
        session.add(run)
        session.commit()
        return run.id


def _demo_client(settings: Settings) -> None:
    sessions = db.session_factory(db.make_engine(settings.database_url))
    with sessions() as session:
        upsert_client(session, DEMO_USER, DEMO_PASSWORD, secret_key=settings.secret_key,
                      all_sources=True, role="operator")
        session.commit()


def _serve_with_photos(settings: Settings, command: list[str], env: dict[str, str]) -> int:
    from mlsfeeds.pipeline_cli import _photo_printer
    from mlsfeeds.wiring import build_image_job

    server = subprocess.Popen(command, env=env)
    stop = threading.Event()
    images = build_image_job(settings, f"demo:{os.getpid()}", _photo_printer)
    photos = threading.Thread(target=images.run_pending, args=(stop.is_set,), daemon=True, name="photos")
    photos.start()
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()
    finally:
        stop.set()
        photos.join(timeout=30)


def _how_to_call(url: str) -> str:
    return f"""
mlsfeeds demo: SOAP at {url}/soap, WSDL at {url}/soap?wsdl
client: {DEMO_USER} / {DEMO_PASSWORD} (an operator: sees every source)
photos are fetched in the background; `mlsfeeds status` in another shell shows every run

Python (zeep):
  {sys.executable} -c "import zeep, requests; s=requests.Session(); s.auth=('{DEMO_USER}','{DEMO_PASSWORD}'); \\
c=zeep.Client('{url}/soap?wsdl', transport=zeep.Transport(session=s)); \\
r=c.service.SearchListings(StandardStatus=['Active'], SortBy='ListPrice', PageSize=3); \\
print(r.TotalCount, [(l.SourceId, l.ListingKey, l.ListPrice) for l in r.Listings.ListingSummary])"

curl:
  curl -s -u {DEMO_USER}:{DEMO_PASSWORD} -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "GetFeedStatus"' \\
    --data '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetFeedStatus xmlns="urn:mlsfeeds:soap:1"/></s:Body></s:Envelope>' \\
    {url}/soap

Ctrl-C stops the server and the sandbox.
"""
