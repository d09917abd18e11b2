"""Adapters built once from Settings and handed down to the pipeline."""

from __future__ import annotations

from collections.abc import Callable

from core.db import make_engine, session_factory
from core.settings import Settings
from core.storage import open_store
from pipeline.balancer import Balancer, Policy
from pipeline.geocode.zipcentroid import ZipCentroidGeocoder
from pipeline.steps import Services


def build_services(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> Services:
    geocoders = [ZipCentroidGeocoder()]
    if settings.census_geocoder_url:
        import requests

        from pipeline.geocode.census import CensusGeocoder

        # The online geocoder goes first when configured: it places addresses, not ZIP centroids.
        geocoders.insert(0, CensusGeocoder(requests.Session(), settings.census_geocoder_url))
    return Services(
        store=open_store(settings.storage_url, settings.s3_endpoint_url),
        geocoders=geocoders,
        environ=settings.environ,
        progress=progress,
    )


def build_image_job(settings: Settings, worker: str, on_done=lambda run, message: None):
    import datetime as dt

    from pipeline.images.job import ImageJob, ImagePolicy

    sessions = session_factory(make_engine(settings.database_url, immediate=True))
    policy = ImagePolicy(lease_seconds=max(settings.lease_seconds, 300), max_attempts=settings.max_attempts,
                         backoff_seconds=settings.retry_backoff_seconds * 5, threads=settings.photo_threads,
                         grace=dt.timedelta(days=settings.photo_grace_days))
    store = open_store(settings.storage_url, settings.s3_endpoint_url)
    return ImageJob(sessions, store, settings.environ, worker, policy, on_done=on_done)


def build_balancer(settings: Settings, *, should_stop=lambda: False, on_step=lambda run, step, summary: None,
                   progress: Callable[[str], None] = lambda m: None,
                   on_lease_lost=lambda source_id, step: None) -> Balancer:
    # SQLite has one writer: every worker transaction takes the write lock up front.
    sessions = session_factory(make_engine(settings.database_url, immediate=True))
    policy = Policy(lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts,
                    backoff_seconds=settings.retry_backoff_seconds)
    return Balancer(sessions, build_services(settings, progress), policy, should_stop=should_stop, on_step=on_step,
                    on_lease_lost=on_lease_lost)
