"""``http``: the feed's photo URLs downloaded and re-hosted (some MLS licences forbid hot-linking).

Spec: optional ``username``/``password`` (Basic) or ``token`` (Bearer), ``headers``, ``timeout``
(default 30 s), ``max_bytes`` per photo (default 20 MB). URLs come from the record's Media list
as in ``mls_urls``, or from ``template`` as in ``url_template`` when given.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import requests

from pipeline.errors import SourceUnavailable
from pipeline.images import ListingPhotos, Photo
from pipeline.images.mls_urls import media_photos
from pipeline.images.url_template import _TemplateSource

MAX_BYTES = 20 * 1024 * 1024


class HttpStrategy:
    name = "http"
    stores = True

    @contextmanager
    def open(self, spec: dict[str, Any], environ):
        session = requests.Session()
        if spec.get("token"):
            session.headers["Authorization"] = f"Bearer {spec['token']}"
        elif spec.get("username"):
            session.auth = (spec["username"], spec.get("password", ""))
        session.headers.update(spec.get("headers") or {})
        try:
            yield _HttpSource(session, spec)
        finally:
            session.close()


class _HttpSource:
    def __init__(self, session: requests.Session, spec: dict[str, Any]):
        self.session = session
        self.timeout = float(spec.get("timeout", 30))
        self.max_bytes = int(spec.get("max_bytes", MAX_BYTES))
        self.template = _TemplateSource(spec["template"], spec.get("max_photos")) if spec.get("template") else None
        self.failures_in_a_row = 0

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        links = self.template.photos(listing) if self.template else media_photos(listing)
        return [self._fetch(p) for p in links]

    def _fetch(self, link: Photo) -> Photo:
        try:
            with self.session.get(link.url, timeout=self.timeout, stream=True) as reply:
                if reply.status_code >= 500 or reply.status_code == 429:
                    return self._failed(link, f"HTTP {reply.status_code} for {link.url}", transient=True)
                if reply.status_code != 200:
                    return self._failed(link, f"HTTP {reply.status_code} for {link.url}")
                data = self._read(reply)
        except requests.RequestException as exc:
            return self._failed(link, f"{link.url}: {exc}", transient=True)
        self.failures_in_a_row = 0
        return Photo(order=link.order, data=data, media_key=link.media_key, caption=link.caption)

    def _read(self, reply) -> bytes:
        chunks, size = [], 0
        for chunk in reply.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise requests.RequestException(f"larger than {self.max_bytes:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _failed(self, link: Photo, message: str, transient: bool = False) -> Photo:
        # One photo failing is counted; the host failing for everything is worth a retry later.
        if transient:
            self.failures_in_a_row += 1
            if self.failures_in_a_row >= 20:
                raise SourceUnavailable(f"photo host keeps failing: {message}")
        return Photo(order=link.order, error=message)


STRATEGY = HttpStrategy()
