"""``url_template``: photo URLs built from a pattern and the listing's fields, up to PhotosCount.

Spec: ``template`` with ``{field}`` placeholders taken from the listing's mapped record (RESO
names, e.g. ``{ListingId}``, ``{ListingKey}``, ``{SourceId}``) and ``{n}`` (1-based order, or
``{n0}`` 0-based); optional ``max_photos``. Nothing is fetched or stored.
"""

from __future__ import annotations

import string
from contextlib import contextmanager
from typing import Any

from pipeline.errors import SourceConfigError
from pipeline.images import ListingPhotos, Photo


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        raise SourceConfigError(f"images.template names {{{key}}}, which the listing does not have")


class UrlTemplateStrategy:
    name = "url_template"
    stores = False

    @contextmanager
    def open(self, spec: dict[str, Any], environ):
        template = spec.get("template")
        if not template:
            raise SourceConfigError("images.strategy url_template needs images.template")
        yield _TemplateSource(template, spec.get("max_photos"))


class _TemplateSource:
    def __init__(self, template: str, max_photos: int | None):
        self.template = template
        self.max_photos = max_photos
        self.formatter = string.Formatter()

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        count = listing.photos_count if self.max_photos is None else min(listing.photos_count, self.max_photos)
        base = {k: v for k, v in listing.record.items() if isinstance(v, (str, int))}
        base.update(SourceId=listing.source_id, ListingKey=listing.listing_key, ListingId=listing.listing_id or "")
        try:
            return [
                Photo(order=n, url=self.formatter.vformat(self.template, (), _Fields(base, n=n, n0=n - 1)))
                for n in range(1, count + 1)
            ]
        except SourceConfigError as exc:  # this listing lacks a field: its photos fail, the others go on
            return [Photo(order=1, error=f"{listing.listing_key}: {exc}")]


STRATEGY = UrlTemplateStrategy()
