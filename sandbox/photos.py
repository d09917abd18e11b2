"""Synthetic listing photos: real JPEGs of varied sizes, a few PNGs, and a few corrupt payloads.

Deterministic: the same (listing key, order, version) always gives the same bytes, so a feed
server can render a photo on request and ``expected.json`` can carry its MD5. ``version`` moves
when ``sandbox mutate --change-photos`` changes a listing's photos.

Drawing and encoding an image costs milliseconds, and a sandbox has tens of thousands of photos
(a first ``make demo`` spent 97 of its 169 s drawing them). So each process draws a small set of
distinct pictures once, and every photo is one of them stamped with its own identity: a JPEG
comment segment or a PNG text chunk naming the listing, order and version. Every photo's bytes
(and MD5) are its own, it is still a valid image of the picture's size, and it costs microseconds.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib
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


PICTURES = 48           # distinct pictures drawn per format


def _render(listing_key: str, order: int, version: int) -> bytes:
    roll = _roll(listing_key, order, version)
    what = kind(listing_key, order, version)
    if what == "corrupt":
        return _corrupt(random.Random(roll), listing_key)
    stamp = f"{listing_key} #{order} v{version}".encode()
    picture = _picture(roll % PICTURES, what)
    return _png_with_text(picture, stamp) if what == "png" else _jpeg_with_comment(picture, stamp)


@lru_cache(maxsize=2 * PICTURES)
def _picture(variant: int, fmt: str) -> bytes:
    """One of the distinct pictures, drawn and encoded once per process."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{fmt}:{variant}")
    width, height = rng.choice([(320, 240), (640, 480), (800, 533), (1024, 683), (480, 640)])
    image = Image.new("RGB", (width, height), tuple(rng.randrange(60, 220) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):  # some structure, so JPEG sizes vary like real photos
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x, y, x + rng.randrange(20, width // 2), y + rng.randrange(20, height // 2)],
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG")
    else:
        image.save(out, "JPEG", quality=rng.choice([70, 80, 88]))
    return out.getvalue()


def _jpeg_with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The JPEG with a COM segment after its first segment (APP0, which JFIF wants first)."""
    first_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:first_end] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[first_end:]


def _png_with_text(png: bytes, text: bytes) -> bytes:
    """The PNG with a tEXt chunk after IHDR (8-byte signature, then IHDR's 25 bytes)."""
    body = b"Comment\x00" + text
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:33] + chunk + png[33:]


def _corrupt(rng: random.Random, listing_key: str) -> bytes:
    if rng.random() < 0.5:
        return f"<html><body>Photo for {listing_key} unavailable</body></html>".encode()
    whole = _jpeg_with_comment(_picture(0, "jpeg"), listing_key.encode())
    return whole[: len(whole) // 2]  # a download cut short
