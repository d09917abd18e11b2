"""Photo URLs for consumers: MLS-hosted URLs as they are; stored photos under the public
photo base URL (a CDN or a public bucket) when one is configured, otherwise presigned."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import parse_qs, quote, unquote, urlencode

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


class SignedPhotoLinks:
    """Time-limited links to photos the service serves itself (the local-folder store).

    ``/photos/{source}/{listing}/{file}?expires=EPOCH&signature=HMAC`` for the object
    ``photos/{source}/{listing}/{file}``: the embedded mode's equivalent of an S3 presigned URL.
    Any host sharing MLSFEEDS_SECRET_KEY verifies them; only photo objects are ever served.
    """

    PREFIX = "/photos/"

    def __init__(self, secret_key: str, public_url: str, ttl: int, clock=None):
        import time

        self._key = hashlib.sha256(b"mlsfeeds:photo-link:" + secret_key.encode()).digest()
        self._base = public_url.rstrip("/") + self.PREFIX.rstrip("/")
        self._ttl = ttl
        self._clock = clock or time.time

    def url(self, storage_key: str) -> str:
        expires = int(self._clock()) + self._ttl
        query = urlencode({"expires": expires, "signature": self._sign(storage_key, expires)})
        return f"{self._base}/{quote(storage_key.removeprefix('photos/'))}?{query}"

    def valid(self, storage_key: str, expires: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < self._clock():
            return False
        return hmac.compare_digest(self._sign(storage_key, int(expires)), signature)

    def _sign(self, storage_key: str, expires: int) -> str:
        return hmac.new(self._key, f"{storage_key}\n{expires}".encode(), "sha256").hexdigest()


class PhotoFiles:
    """WSGI app serving ``/photos/{key}`` from a local object store, for valid signed links."""

    def __init__(self, store, links: SignedPhotoLinks):
        self._store, self._links = store, links

    @property
    def store(self):
        """The local object store the photos are served from (/readyz checks it)."""
        return self._store

    def __call__(self, environ, start_response):
        key = "photos/" + unquote(environ.get("PATH_INFO", "")[len(SignedPhotoLinks.PREFIX):])
        query = parse_qs(environ.get("QUERY_STRING", ""))
        expires, signature = query.get("expires", [""])[0], query.get("signature", [""])[0]
        if key == "photos/" or not self._links.valid(key, expires, signature):
            return _plain(start_response, "403 Forbidden", b"this photo link is invalid or has expired\n")
        try:
            stream = self._store.open(key)
        except Exception:  # ObjectMissing, or a key outside the store
            return _plain(start_response, "404 Not Found", b"no such photo\n")
        data = stream.read()
        stream.close()
        start_response("200 OK", [("Content-Type", _content_type(key)), ("Content-Length", str(len(data))),
                                  ("Cache-Control", "private, max-age=3600")])
        return [data]


def _content_type(key: str) -> str:
    extension = key.rsplit(".", 1)[-1].lower()
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
            "webp": "image/webp"}.get(extension, "application/octet-stream")


def _plain(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
