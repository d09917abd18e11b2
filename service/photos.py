"""Photo URLs for consumers: MLS-hosted URLs as they are; stored photos under the public
photo base URL (a CDN or a public bucket) when one is configured, otherwise presigned."""

from __future__ import annotations

from collections.abc import Callable

from core.models import Media
from service import types as wire


class PhotoUrls:
    def __init__(self, base_url: str | None = None, presign: Callable[[str], str] | None = None):
        self._base_url = base_url.rstrip("/") if base_url else None
        self._presign = presign

    def url_for(self, media: Media) -> str:
        if media.url:
            return media.url
        if not media.storage_key:
            raise ValueError(f"media {media.id} has neither a URL nor a storage key")
        if self._base_url:
            return f"{self._base_url}/{media.storage_key}"
        if self._presign is None:
            raise RuntimeError("stored photos need MLSFEEDS_PHOTO_BASE_URL or a presigning object store")
        return self._presign(media.storage_key)


def image(media: Media, urls: PhotoUrls) -> wire.Image:
    return wire.Image(
        Order=media.order,
        Url=urls.url_for(media),
        Width=media.width,
        Height=media.height,
        ContentType=media.content_type,
        ModificationTimestamp=media.modification_timestamp,
        Caption=media.caption,
    )
