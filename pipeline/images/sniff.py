"""What an image really is: JPEG, PNG, GIF or WebP, and its width and height, from its bytes.

Reads headers only (no decoding, no Pillow): a payload whose header is not a complete image
header of one of the four formats is rejected with a reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


class NotAnImage(ValueError):
    """The bytes are not a JPEG, PNG, GIF or WebP image we can measure."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    extension: str
    width: int
    height: int


def sniff(data: bytes) -> ImageInfo:
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    head = data[:16]
    raise NotAnImage(f"not a JPEG, PNG, GIF or WebP image (starts {head!r}, {len(data)} bytes)")


def _checked(kind: str, ext: str, width: int, height: int) -> ImageInfo:
    if width <= 0 or height <= 0 or width > 65535 or height > 65535:
        raise NotAnImage(f"{kind} with impossible size {width}x{height}")
    return ImageInfo(f"image/{kind}", ext, width, height)


def _png(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise NotAnImage("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    if not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise NotAnImage("truncated PNG (no IEND chunk)")
    return _checked("png", "png", width, height)


def _gif(data: bytes) -> ImageInfo:
    if len(data) < 14:
        raise NotAnImage("truncated GIF header")
    width, height = struct.unpack("<HH", data[6:10])
    if not data.rstrip(b"\x00").endswith(b";"):
        raise NotAnImage("truncated GIF (no trailer)")
    return _checked("gif", "gif", width, height)


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _checked("webp", "webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return _checked("webp", "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _checked("webp", "webp", width, height)
    raise NotAnImage("WebP without a VP8/VP8L/VP8X header")


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> ImageInfo:
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise NotAnImage("truncated JPEG (no end-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise NotAnImage(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return _checked("jpeg", "jpg", width, height)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise NotAnImage("corrupt JPEG: no frame header (SOF) before the image data")
