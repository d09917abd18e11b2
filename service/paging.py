"""Opaque, tamper-evident page tokens for keyset paging.

A token carries the sort key of the last row returned and a fingerprint of the query it
belongs to, signed with HMAC-SHA256 under the service secret. A token edited by hand, or
replayed with other filters, is refused as InvalidArgument rather than silently misused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from service.errors import InvalidArgument

_TAG_BYTES = 16


class PageTokens:
    def __init__(self, secret_key: str):
        self._key = hashlib.sha256(b"mlsfeeds:page-token:" + secret_key.encode()).digest()

    def issue(self, fingerprint: str, position: list[Any], count: list[Any] | None = None) -> str:
        """A token for the page after ``position``; ``count`` ([signature, total]) lets the next
        page reuse the first page's exact count while the signature still holds."""
        payload = {"q": fingerprint, "k": position}
        if count is not None:
            payload["c"] = count
        body = json.dumps(payload, separators=(",", ":")).encode()
        tag = hmac.digest(self._key, body, "sha256")[:_TAG_BYTES]
        return base64.urlsafe_b64encode(tag + body).decode().rstrip("=")

    def read(self, token: str, fingerprint: str) -> list[Any]:
        """The position a token stands for, if it is genuine and belongs to this query."""
        return self.payload(token, fingerprint)["k"]

    def payload(self, token: str, fingerprint: str) -> dict[str, Any]:
        """What a token carries (``k``: the position, ``c``: the count), if it is genuine and
        belongs to this query."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise InvalidArgument("PageToken is not a token this service issued") from None
        tag, body = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        if not body or not hmac.compare_digest(tag, hmac.digest(self._key, body, "sha256")[:_TAG_BYTES]):
            raise InvalidArgument("PageToken is not a token this service issued")
        payload = json.loads(body)
        if payload.get("q") != fingerprint:
            raise InvalidArgument(
                "PageToken belongs to another query: repeat the filters and sort of the first page"
            )
        return payload


def fingerprint(query: dict[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]
