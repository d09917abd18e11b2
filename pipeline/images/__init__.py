"""Photos: one module per acquisition strategy, and the image job that runs them.

A strategy turns a listing (its mapped record from the run's parsed payload, plus its row)
into its photos, in order: either URLs the MLS hosts (``url_template``, ``mls_urls``) or
fetched bytes we store (``http``, ``ftp``, ``rets``, ``sql_blob``). The job decides what is
new, sniffs and measures every image, uploads only what changed, and keeps ``media`` in step.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ListingPhotos:
    """The listing whose photos are wanted."""

    id: int                          # listings.id
    source_id: str
    listing_key: str
    listing_id: str | None
    photos_count: int
    record: dict[str, Any] = field(default_factory=dict)  # the mapped record (RESO names, Media...)


@dataclass
class Photo:
    """One photo, by position. Exactly one of ``url``, ``data`` or ``error`` is set."""

    order: int
    url: str | None = None           # hosted by the MLS: stored as a link
    data: bytes | None = None        # fetched: sniffed, measured and stored by us
    error: str | None = None         # this photo could not be had (counted, never fatal)
    media_key: str | None = None
    caption: str | None = None
    modified: dt.datetime | None = None


class PhotoSource(Protocol):
    def photos(self, listing: ListingPhotos) -> list[Photo]:
        """Every photo of the listing in order. Raise SourceUnavailable / PermanentError only
        for failures of the whole source; a single missing photo is a Photo with ``error``."""
        ...


class ImageStrategy(Protocol):
    """A way to get photos. An optional ``shared = True`` asks the job for one PhotoSource for the
    whole job, used by every worker thread (it must be thread-safe: a RETS session, one login);
    otherwise each thread opens its own, kept for the whole job."""

    name: str
    stores: bool                     # True: photos are fetched and kept in our object store

    def open(self, spec: dict[str, Any], environ: dict[str, str]) -> AbstractContextManager[PhotoSource]:
        """A source of photos (its own connections), closed when the job ends."""
        ...


STRATEGIES = ("none", "url_template", "mls_urls", "http", "ftp", "rets", "sql_blob")


def strategy_for(name: str) -> ImageStrategy:
    from importlib import import_module

    from pipeline.errors import SourceConfigError

    if name not in STRATEGIES or name == "none":
        raise SourceConfigError(f"unknown image strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    return import_module(f"pipeline.images.{name}").STRATEGY
