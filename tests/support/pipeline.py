"""A small fake of our own Connector protocol, and helpers to run the balancer (and runs) in tests."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from core.db import make_engine, session_factory
from core.models import FeedRun, Listing, Source
from core.storage import LocalObjectStore
from pipeline.balancer import Balancer, Policy
from pipeline.geocode.zipcentroid import ZipCentroidGeocoder
from pipeline.connectors import FetchRequest, Payload, PayloadFile
from pipeline.steps import Services

FIELDS = {
    "ListingKey": "key", "ListingId": "mls", "ListPrice": "price", "StandardStatus": "status",
    "City": "city", "PostalCode": "zip", "StateOrProvince": "state", "BedroomsTotal": "beds",
    "ModificationTimestamp": "modified", "Latitude": "lat", "Longitude": "lon",
}
VALUES = {"StandardStatus": {"A": "Active", "P": "Pending", "S": "Closed"}}


def record(n: int, **changes) -> dict:
    base = {"key": f"K{n:05d}", "mls": f"M{n}", "price": str(100_000 + n * 1000), "status": "A",
            "city": "Naples", "zip": "34102", "state": "FL", "beds": str(n % 5 + 1),
            "modified": "2026-11-29T12:00:00Z", "lat": None, "lon": None}
    return {**base, **changes}


@dataclass
class FakeConnector:
    """Serves per-source record lists as NDJSON; can fail on demand, and counts its calls."""

    kind = "fake"
    feeds: dict[str, list[dict]] = field(default_factory=dict)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, request: FetchRequest) -> Payload:
        with self.lock:
            self.calls[request.source_id] += 1
            pending = self.failures.get(request.source_id) or []
            error = pending.pop(0) if pending else None
        if error is not None:
            raise error
        if self.delay:
            threading.Event().wait(self.delay)
        path = request.workdir / "feed.ndjson"
        with open(path, "w") as out:
            for rec in self.feeds.get(request.source_id, []):
                out.write(json.dumps(rec) + "\n")
        return Payload([PayloadFile(path, path.stat().st_size, "ndjson")], state={"fetched": self.calls[request.source_id]})


def add_source(session, sid: str, *, max_removed_share: float = 0.1, **download) -> None:
    session.add(Source(
        id=sid, name=sid, timezone="America/New_York", earliest_download=dt.time(0, 0),
        download={"kind": "fake", **download},
        parse={"format": "ndjson", "fields": FIELDS, "values": VALUES, "defaults": {}},
        images={"strategy": "none"}, state={}, max_removed_share=max_removed_share,
    ))


def make_balancer(database_url: str, store_root, connector: FakeConnector, *, worker: str | None = None,
                  policy: Policy | None = None, environ=None, on_step: Callable = lambda *a: None) -> Balancer:
    sessions = session_factory(make_engine(database_url, immediate=True))
    services = Services(store=LocalObjectStore(store_root), geocoders=[ZipCentroidGeocoder()],
                        environ=environ or {}, connectors={"fake": connector})
    return Balancer(sessions, services, policy or Policy(lease_seconds=30, backoff_seconds=60), worker=worker,
                    on_step=on_step)


# -- driving runs by hand ------------------------------------------------------------------------

def with_sources(balancer, *ids, **settings):
    with balancer.sessions() as session:
        for sid in ids:
            add_source(session, sid, **settings)
        session.commit()


def new_run(balancer, sid, kind="full", slot=None, started_at=None):
    """A queued run of ``sid`` (an incremental one starts its window on 2026-11-29).

    ``started_at`` fixes the time the run stamps on what it sees (else the claim's): MariaDB
    keeps whole seconds, and runs a test makes within one second would all look simultaneous.
    """
    with balancer.sessions() as session:
        run = FeedRun(source_id=sid, business_date=dt.date(2026, 11, 30), kind=kind, started_at=started_at,
                      slot=slot or f"{kind}-{session.scalar(select(func.count()).select_from(FeedRun))}")
        if kind == "incremental":
            run.window_start = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
        session.add(run)
        session.commit()
        return run.id


def run_to_end(balancer, run_id):
    """Claim the run and advance it to its end; the run as it ended."""
    assert balancer.claim(run_id) == run_id
    balancer.advance(run_id)
    with balancer.sessions() as session:
        return session.get(FeedRun, run_id)


def active_keys(balancer, sid):
    with balancer.sessions() as session:
        return set(session.scalars(select(Listing.listing_key).where(Listing.source_id == sid, Listing.removed_at.is_(None))))
