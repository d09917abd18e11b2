"""Raw HTTP over a socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass

from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:mlsfeeds:soap:1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def fault(self) -> tuple[str, str]:
        """(faultcode without its prefix, faultstring) of a SOAP fault reply."""
        root = etree.fromstring(self.body)
        fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
        assert fault is not None, f"not a SOAP fault: {self.body[:300]!r}"
        return fault.findtext("faultcode").split(":", 1)[1], fault.findtext("faultstring")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def envelope(body: str, header: str = "", namespace: str = SOAP11) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{namespace}" xmlns:m="{NS}">'
            f"{f'<s:Header>{header}</s:Header>' if header else ''}<s:Body>{body}</s:Body></s:Envelope>").encode()


def post(port: int, body: bytes, headers: dict[str, str] | None = None, path: str = "/soap",
         timeout: float = 30) -> Reply:
    """POST ``body`` as is, with Content-Length and the given headers (text/xml by default)."""
    fields = {"Host": f"127.0.0.1:{port}", "Content-Type": "text/xml; charset=utf-8",
              "Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return exchange(port, head.encode() + b"\r\n" + body, timeout)


def exchange(port: int, data: bytes, timeout: float = 30) -> Reply:
    """Send ``data`` and read one response until the server closes or its Content-Length is in."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_reply(sock)


_leftovers: dict[int, bytes] = {}  # bytes read past one response, by socket (pipelining)


def read_reply(sock: socket.socket) -> Reply:
    buffer = _leftovers.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection without a response: {buffer!r}")
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if status == 100:
        if body:
            _leftovers[sock.fileno()] = body
        return Reply(100, headers, b"")
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if length >= 0 and len(body) > length:
        _leftovers[sock.fileno()] = body[length:]
    return Reply(status, headers, body[:length] if length >= 0 else body)
