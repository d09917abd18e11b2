"""The worker's metrics (``mlsfeeds worker --metrics-bind HOST:PORT``): what each step took and
did, photos, retries, lease losses, and when the worker last ticked.

They are fed by the balancer's and the image job's callbacks, from the counts each run records,
so they agree with what ``mlsfeeds status`` and the status page show.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.models import FeedRun

STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ROWS = {"parse": ("rows_parsed", "rows_rejected"),
        "load": ("rows_inserted", "rows_updated", "rows_unchanged", "rows_removed", "removals_held"),
        "geocode": ("rows_geocoded",)}
PHOTOS = ("fetched", "stored", "unchanged", "linked", "removed", "failed")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        kwargs = {"registry": registry} if registry is not None else {}
        self.step_seconds = Histogram("mlsfeeds_worker_step_seconds", "Time a step took, by source and step",
                                      ["source", "step"], buckets=STEP_BUCKETS, **kwargs)
        self.rows = Counter("mlsfeeds_worker_rows", "Rows a step handled, by source, step and what happened",
                            ["source", "step", "kind"], **kwargs)
        self.bytes = Counter("mlsfeeds_worker_downloaded_bytes", "Bytes downloaded from sources", ["source"], **kwargs)
        self.runs = Counter("mlsfeeds_worker_runs_finished", "Runs this worker finished, by outcome",
                            ["source", "status"], **kwargs)
        self.retries = Counter("mlsfeeds_worker_retries", "Steps that failed and will be tried again",
                               ["source", "step"], **kwargs)
        self.lease_losses = Counter("mlsfeeds_worker_lease_losses",
                                    "Steps whose result was dropped because another worker took the run",
                                    ["source", "step"], **kwargs)
        self.photos = Counter("mlsfeeds_worker_photos", "Photos handled by the photo job, by outcome",
                              ["source", "outcome"], **kwargs)
        self.photo_bytes = Counter("mlsfeeds_worker_photo_bytes", "Bytes of photos stored", ["source"], **kwargs)
        self.photo_jobs = Counter("mlsfeeds_worker_photo_jobs", "Photo jobs ended, by outcome",
                                  ["source", "outcome"], **kwargs)
        self.last_tick = Gauge("mlsfeeds_worker_last_tick_timestamp_seconds",
                               "When this worker last started a pass (a stuck or dead worker stops moving it)",
                               **kwargs)

    def step(self, run: FeedRun, step: str, summary: str) -> None:
        """The balancer's ``on_step``."""
        source = run.source_id
        if run.status in ("waiting", "failed"):
            if run.status == "waiting":
                self.retries.labels(source, step).inc()
            else:
                self.runs.labels(source, "failed").inc()
            return
        took = (run.step_timings or {}).get(step)
        if took is not None:
            self.step_seconds.labels(source, step).observe(took)
        if step == "download":
            self.bytes.labels(source).inc(run.bytes_downloaded or 0)
        for column in ROWS.get(step, ()):
            self.rows.labels(source, step, column.removeprefix("rows_")).inc(getattr(run, column) or 0)
        if run.status == "succeeded":
            self.runs.labels(source, "succeeded").inc()

    def photo_job(self, run: FeedRun, message: str) -> None:
        """The image job's ``on_done``: a job that ended, or failed and waits to retry."""
        source = run.source_id
        if run.images_ready:  # still flagged: it failed and will be retried
            self.photo_jobs.labels(source, "retry").inc()
            return
        failed = bool(run.images_error and run.images_error.startswith("photos failed"))
        self.photo_jobs.labels(source, "failed" if failed else "done").inc()
        if failed:
            return
        for outcome in PHOTOS:
            self.photos.labels(source, outcome).inc(getattr(run, f"photos_{outcome}") or 0)
        self.photo_bytes.labels(source).inc(run.photo_bytes or 0)

    def lease_lost(self, source_id: str, step: str) -> None:
        self.lease_losses.labels(source_id, step).inc()

    def tick(self) -> None:
        self.last_tick.set(time.time())


def serve(bind: str, registry: CollectorRegistry | None = None):
    """Serve /metrics on ``bind`` (HOST:PORT) from a thread; returns the server."""
    from prometheus_client import REGISTRY, start_http_server

    host, _, port = bind.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1",
                                        registry=registry or REGISTRY)
    return server
