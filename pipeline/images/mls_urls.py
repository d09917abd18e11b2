"""``mls_urls``: photo URLs the feed supplies (RESO Media records, photo URL columns).

The mapper puts them in the record's ``Media`` list (``[{"Order": n, "MediaURL": url}]``, from
``[fields] Media = "<path>"`` or an OData ``$expand=Media``). Nothing is fetched or stored.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from pipeline.images import ListingPhotos, Photo


def media_photos(listing: ListingPhotos) -> list[Photo]:
    """The record's Media as Photos in order (URL only), renumbered 1..n."""
    media = listing.record.get("Media") or []
    ordered = sorted((m for m in media if isinstance(m, dict) and m.get("MediaURL")),
                     key=lambda m: (_int(m.get("Order")), m["MediaURL"]))
    return [
        Photo(order=n, url=m["MediaURL"], media_key=m.get("MediaKey"), caption=m.get("ShortDescription"))
        for n, m in enumerate(ordered, 1)
    ]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 10**9


class MlsUrlsStrategy:
    name = "mls_urls"
    stores = False

    @contextmanager
    def open(self, spec: dict[str, Any], environ):
        yield self

    def photos(self, listing: ListingPhotos) -> list[Photo]:
        return media_photos(listing)


STRATEGY = MlsUrlsStrategy()
