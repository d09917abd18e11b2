"""The buffering worker's HTTP reading: request heads, framing and chunked bodies (no sockets)."""

from __future__ import annotations

import pytest

from service.server import ChunkedBody, HttpError, Limits, parse_head

LIMITS = Limits(request_line=100, header_fields=5, header_field_size=80, body=1000)


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


def test_a_plain_post_is_framed_by_its_content_length():
    parsed = parse_head(head("POST /soap?x=1 HTTP/1.1", "Host: a", "Content-Length: 12"), LIMITS)
    assert (parsed.method, parsed.target, parsed.version) == ("POST", "/soap?x=1", (1, 1))
    assert parsed.content_length == 12 and not parsed.chunked and parsed.keep_alive


@pytest.mark.parametrize("lines,keep_alive", [
    (["GET / HTTP/1.1"], True),
    (["GET / HTTP/1.1", "Connection: close"], False),
    (["GET / HTTP/1.0"], False),
    (["GET / HTTP/1.0", "Connection: Keep-Alive"], True),
])
def test_keep_alive_follows_the_version_and_the_connection_header(lines, keep_alive):
    assert parse_head(head(*lines), LIMITS).keep_alive is keep_alive


@pytest.mark.parametrize("lines,status,words", [
    (["POST /soap HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"], 400, "both"),
    (["POST /soap HTTP/1.1", "Content-Length: 5", "Content-Length: 6"], 400, "invalid Content-Length"),
    (["POST /soap HTTP/1.1", "Content-Length: -1"], 400, "invalid Content-Length"),
    (["POST /soap HTTP/1.1", "Transfer-Encoding: gzip, chunked"], 501, "unsupported Transfer-Encoding"),
    (["POST /soap HTTP/1.1", "Host: a", " folded"], 400, "obs-fold"),
    (["POST /soap HTTP/1.1", "Bad Header: x"], 400, "malformed header"),
    (["POST /soap HTTP/2.0"], 505, "HTTP/1.0 and HTTP/1.1"),
    (["POST /soap"], 400, "METHOD TARGET"),
    (["POST /" + "a" * 200 + " HTTP/1.1"], 414, "request line"),
    (["GET / HTTP/1.1"] + [f"X-{n}: y" for n in range(6)], 431, "header fields"),
    (["GET / HTTP/1.1", "X: " + "y" * 100], 431, "longer than 80"),
    (["POST /soap HTTP/1.1", "Expect: 200-ok"], 400, "unsupported Expect"),
])
def test_ambiguous_or_oversized_heads_are_refused(lines, status, words):
    with pytest.raises(HttpError) as raised:
        parse_head(head(*lines), LIMITS)
    assert raised.value.status == status and words in raised.value.message


def test_expect_continue_is_noted_on_http_1_1_only():
    assert parse_head(head("POST / HTTP/1.1", "Expect: 100-continue"), LIMITS).expect_continue
    assert not parse_head(head("POST / HTTP/1.0", "Expect: 100-continue"), LIMITS).expect_continue


def test_a_chunked_body_is_decoded_as_it_arrives_byte_by_byte():
    body = ChunkedBody(1000)
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    buffer = bytearray()
    for byte in wire:
        buffer.append(byte)
        buffer = body.feed(buffer)
    assert body.done and bytes(body.data) == b"hello world" and bytes(buffer) == b"NEXT"


@pytest.mark.parametrize("wire,status", [
    (b"zz\r\nhello\r\n", 400),
    (b"5\r\nhelloXX", 400),
    (b"400\r\n" + b"x" * 1024 + b"\r\n", 413),
])
def test_a_bad_or_oversized_chunked_body_is_refused(wire, status):
    with pytest.raises(HttpError) as raised:
        ChunkedBody(1000).feed(bytearray(wire))
    assert raised.value.status == status
