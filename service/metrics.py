"""``/metrics``: SOAP calls counted in every gunicorn worker, and the feeds read from the database.

SOAP metrics use prometheus_client's multiprocess mode: each worker writes its counters to
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn.conf.py makes one per service
and tells the library about dead workers), and whichever worker answers a scrape sums them all.
A call costs a few microseconds: the labelled children are looked up once per (operation,
outcome) and kept (measured in tests/integration/test_metrics.py).

The feed metrics are read at scrape time through :mod:`core.overview`, whose queries read the
trigger-kept count tables and probe indexes: a scrape costs the same at a million listings as
at a thousand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session, sessionmaker

from core import overview
from core.types import utcnow

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AUTH_FAILED = "Client.AuthenticationFailed"


class SoapMetrics:
    """The service's own counters; :meth:`observe` is service.endpoint's ``Observer``."""

    def __init__(self, registry: CollectorRegistry | None = None):
        kwargs = {"registry": registry} if registry is not None else {}
        self.requests = Counter("mlsfeeds_soap_requests", "SOAP calls by operation and outcome (ok or the fault code)",
                                ["operation", "outcome"], **kwargs)
        self.latency = Histogram("mlsfeeds_soap_request_seconds", "SOAP call latency in the application",
                                 ["operation"], buckets=LATENCY_BUCKETS, **kwargs)
        self.rows = Counter("mlsfeeds_soap_rows_returned", "Records returned (listings, images, feeds)",
                            ["operation"], **kwargs)
        self.auth_failures = Counter("mlsfeeds_soap_authentication_failures",
                                     "Calls refused for missing or wrong credentials", **kwargs)
        self._children: dict[tuple[str, str], tuple] = {}

    def observe(self, operation: str, outcome: str, seconds: float, rows: int) -> None:
        children = self._children.get((operation, outcome))
        if children is None:
            children = (self.requests.labels(operation, outcome), self.latency.labels(operation),
                        self.rows.labels(operation))
            self._children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)
        if rows:
            children[2].inc(rows)
        if outcome == AUTH_FAILED:
            self.auth_failures.inc()


class FeedCollector:
    """Feed metrics read from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable = utcnow):
        self._sessions = sessions
        self._clock = clock

    def collect(self):
        started = time.perf_counter()
        with self._sessions() as session:
            now = self._clock()
            views = overview.overview(session, now)
            queue = overview.unfinished_runs(session)
            oldest = overview.oldest_queued(session)
        yield from _source_metrics(views)
        runs = GaugeMetricFamily("mlsfeeds_runs", "Runs not finished, by status", labels=["status"])
        for status, count in sorted(queue.items()):
            runs.add_metric([status], count)
        yield runs
        yield GaugeMetricFamily("mlsfeeds_oldest_queued_run_seconds",
                                "Age of the oldest run waiting to start or to be retried (0: none)",
                                value=(now - oldest).total_seconds() if oldest else 0)
        yield GaugeMetricFamily("mlsfeeds_scrape_database_seconds", "Time this scrape spent reading the database",
                                value=time.perf_counter() - started)


SOURCE_GAUGES = {
    "mlsfeeds_source_enabled": ("1 if the source is enabled", lambda v: v.source.enabled),
    "mlsfeeds_source_last_run_failed": ("1 if the source's latest run failed",
                                        lambda v: bool(v.run and v.run.status == "failed")),
    "mlsfeeds_source_seconds_since_success": ("Seconds since the source's last successful run",
                                              lambda v: v.age.total_seconds() if v.age else None),
    "mlsfeeds_source_expected_interval_seconds": ("How often the schedule promises a successful run",
                                                  lambda v: v.period.total_seconds()),
    "mlsfeeds_source_stale": ("1 if the last success is older than the schedule promises (plus grace)",
                              lambda v: v.stale),
    "mlsfeeds_listings_removed": ("Listings removed from the source's feed", lambda v: v.listings["removed"]),
    "mlsfeeds_photos_stored": ("Photos in our object store", lambda v: v.photos["stored"]),
    "mlsfeeds_photos_linked": ("Photos linked by URL", lambda v: v.photos["linked"]),
    "mlsfeeds_photos_failed": ("Photos that failed in the source's latest photo job", lambda v: v.photos_failed),
    "mlsfeeds_photo_jobs_pending": ("Runs whose photo job has not run yet", lambda v: v.photo_jobs_pending),
    "mlsfeeds_removals_held": ("Removals held for an operator", lambda v: (v.held or {}).get("listings", 0)),
}


def _source_metrics(views):
    for name, (text, value_of) in SOURCE_GAUGES.items():
        family = GaugeMetricFamily(name, text, labels=["source"])
        for view in views:
            value = value_of(view)
            if value is not None:
                family.add_metric([view.id], float(value))
        yield family
    listings = GaugeMetricFamily("mlsfeeds_listings", "Active listings by source and StandardStatus",
                                 labels=["source", "status"])
    for view in views:
        for status, count in sorted(view.statuses.items()):
            listings.add_metric([view.id, status], count)
    yield listings


_SOAP: list[SoapMetrics] = []


def soap_metrics() -> SoapMetrics:
    """This process's SOAP metrics (registered once in the default registry)."""
    if not _SOAP:
        _SOAP.append(SoapMetrics())
    return _SOAP[0]


class MetricsEndpoint:
    """The WSGI app behind GET /metrics. ``multiprocess_dir``: PROMETHEUS_MULTIPROC_DIR, if set."""

    def __init__(self, collector: FeedCollector, multiprocess_dir: str | None = None):
        self._collector = collector
        self._multiprocess_dir = multiprocess_dir

    def __call__(self, environ, start_response):
        registry = process_registry(self._multiprocess_dir)
        registry.register(self._collector)
        try:
            body = generate_latest(registry)
            status = "200 OK"
        except Exception:  # the outermost handler of a scrape: say so in the log, answer 500
            log.exception("metrics scrape failed")
            body, status = b"metrics scrape failed; see the service log\n", "500 Internal Server Error"
        start_response(status, [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]


def process_registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """A registry of every worker's SOAP metrics (multiprocess mode), or this process's own."""
    from prometheus_client import REGISTRY, multiprocess

    registry = CollectorRegistry()
    if multiprocess_dir:
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(_Forward(REGISTRY))
    return registry


class _Forward:
    """This process's default registry, as one collector of a per-scrape registry."""

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self):
        return self._registry.collect()
