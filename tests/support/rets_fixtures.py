"""Real RETS recordings (replies of production servers), for tests.

Copied into tests/fixtures/rets from the project's shared fixtures, licences and provenance
included (tests/fixtures/rets/SOURCES.md: refindlyllc/rets, MIT; NAR libRETS, permissive
notice). A test that needs one is skipped, saying where it looked, when the file is absent.
Some librets recordings begin with an HTTP status line and headers: ``recording`` splits them off.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rets"


def fixture(relative: str) -> Path:
    """The path of one recording; skips the test when the fixtures are not there."""
    path = FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"RETS fixture {relative} not found under {FIXTURES}")
    return path


def recording(relative: str) -> tuple[int | None, dict[str, str], bytes]:
    """(HTTP status, headers, body) of a recording; status None and no headers for a bare body."""
    data = fixture(relative).read_bytes()
    if not re.match(rb"\d{3}\r?\n", data):
        return None, {}, data
    head, _, body = re.split(rb"(\r?\n\r?\n)", data, maxsplit=1)
    status, *lines = head.decode("latin-1").splitlines()
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return int(status), headers, body


def chunked(data: bytes, size: int):
    """``data`` as an iterator of ``size``-byte chunks, as a socket would hand it over."""
    return (data[i:i + size] for i in range(0, len(data), size))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF marker; AssertionError if it has none."""
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    index = 2
    while index < len(data) - 9:
        marker, length = data[index + 1], struct.unpack(">H", data[index + 2:index + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5:index + 9])
            return width, height
        index += 2 + length
    raise AssertionError("no SOF marker")
