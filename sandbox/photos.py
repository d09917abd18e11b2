"""Synthetic listing photos: real JPEGs of varied sizes, a few PNGs, and a few corrupt payloads.

Deterministic: the same (listing key, order, version) always gives the same bytes, so a feed
server can render a photo on request and ``expected.json`` can carry its MD5. ``version`` moves
when ``sandbox mutate --change-photos`` changes a listing's photos.
"""

from __future__ import annotations

import hashlib
import io
import random
from functools import lru_cache

CORRUPT_EVERY = 23      # about 1 photo in 23 is not an image at all, or is cut short
PNG_EVERY = 9           # about 1 in 9 is a PNG


def kind(listing_key: str, order: int, version: int = 0) -> str:
    """``jpeg``, ``png`` or ``corrupt`` for this photo."""
    roll = _roll(listing_key, order, version)
    if roll % CORRUPT_EVERY == 0:
        return "corrupt"
    return "png" if roll % PNG_EVERY == 0 else "jpeg"


def photo_bytes(listing_key: str, order: int, version: int = 0) -> bytes:
    return _render(listing_key, order, version)


def expected_photo(listing_key: str, order: int, version: int = 0) -> dict:
    """What ``expected.json`` says of a photo: its order, MD5 and whether it must be rejected."""
    data = photo_bytes(listing_key, order, version)
    return {"order": order, "md5": hashlib.md5(data).hexdigest(), "bytes": len(data),
            "corrupt": kind(listing_key, order, version) == "corrupt"}


def _roll(listing_key: str, order: int, version: int) -> int:
    return int(hashlib.sha256(f"{listing_key}:{order}:{version}".encode()).hexdigest()[:8], 16)


@lru_cache(maxsize=4096)
def _render(listing_key: str, order: int, version: int) -> bytes:
    from PIL import Image, ImageDraw

    rng = random.Random(_roll(listing_key, order, version))
    what = kind(listing_key, order, version)
    if what == "corrupt":
        return _corrupt(rng, listing_key)
    width, height = rng.choice([(320, 240), (640, 480), (800, 533), (1024, 683), (480, 640)])
    image = Image.new("RGB", (width, height), tuple(rng.randrange(60, 220) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):  # some structure, so JPEG sizes vary like real photos
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x, y, x + rng.randrange(20, width // 2), y + rng.randrange(20, height // 2)],
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    draw.text((10, 10), f"{listing_key} #{order} v{version}", fill=(255, 255, 255))
    out = io.BytesIO()
    if what == "png":
        image.save(out, "PNG")
    else:
        image.save(out, "JPEG", quality=rng.choice([70, 80, 88]))
    return out.getvalue()


def _corrupt(rng: random.Random, listing_key: str) -> bytes:
    if rng.random() < 0.5:
        return f"<html><body>Photo for {listing_key} unavailable</body></html>".encode()
    out = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (400, 300), (90, 90, 90)).save(out, "JPEG")
    return out.getvalue()[: len(out.getvalue()) // 2]  # a download cut short
