"""Image sniffing against images Pillow draws, and against payloads that only look like images."""

import io

import pytest
from PIL import Image

from pipeline.images.sniff import NotAnImage, sniff


def drawn(fmt: str, size=(321, 123), mode="RGB", **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 90) if mode == "RGB" else 7).save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt,options,content_type", [
    ("JPEG", {}, "image/jpeg"),
    ("JPEG", {"progressive": True}, "image/jpeg"),
    ("PNG", {}, "image/png"),
    ("GIF", {}, "image/gif"),
    ("WEBP", {"lossless": False}, "image/webp"),
    ("WEBP", {"lossless": True}, "image/webp"),
])
def test_real_images_are_recognized_and_measured(fmt, options, content_type):
    info = sniff(drawn(fmt, (321, 123), **options))
    assert (info.content_type, info.width, info.height) == (content_type, 321, 123)


def test_webp_with_alpha_uses_the_extended_header():
    info = sniff(drawn("WEBP", (64, 48), mode="RGBA"))
    assert (info.width, info.height) == (64, 48)


@pytest.mark.parametrize("payload", [
    b"",
    b"<html><body>Not Found</body></html>",
    b"\xff\xd8\xff\xe0" + b"\x00" * 40,                  # a JPEG start and nothing after
    drawn("JPEG")[:-300],                                  # truncated download
    drawn("PNG")[:60],
    b"GIF89a\x10\x00\x10\x00",
    b"RIFF\x00\x00\x00\x00WEBPJUNK",
])
def test_payloads_that_are_not_whole_images_are_rejected(payload):
    with pytest.raises(NotAnImage):
        sniff(payload)
