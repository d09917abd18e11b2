"""A RETS server that answers with the real recordings of tests/fixtures/rets, byte for byte.

Login (HTTP Basic after a 401, the reply with relative capability URLs), GetMetadata (the
STANDARD-XML recordings, whatever Format is asked), Search (the recorded whole result: one page
of 3 listings, no COUNT, no DELIMITER), GetObject (one recorded reply for every ID, sent with
its recorded Content-Type) and Logout (the recorded HTML page where XML was expected).

``Replay.search_ends_early`` plays the server of issue 9 instead: the recorded first page of a
paged result (COUNT 6, 3 rows, MAXROWS), then the recorded 20201 reply for the next Offset.
(The recorded second page repeats the first row for row, as a server ignoring Offset would, so
it is not used.) ``Replay.getobject`` names the GetObject recording.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.rets_fixtures import fixture, recording

USERNAME, PASSWORD = "replay", "replay-password"
METADATA = {"METADATA-SYSTEM": "system", "METADATA-RESOURCE": "resources", "METADATA-CLASS": "classes",
            "METADATA-TABLE": "table", "METADATA-LOOKUP_TYPE": "lookup", "METADATA-OBJECT": "objects"}


@dataclass
class Replay:
    """What the replaying server answers; change it while it runs."""

    search_ends_early: bool = False
    getobject: str = "librets/get-object-response-rapattoni.txt"
    getobject_type: str | None = None  # the Content-Type for a recording without an HTTP head
    stats: Counter = field(default_factory=Counter)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        transaction = url.path.rsplit("/", 1)[-1].removesuffix(".ashx").lower()
        if not self._authorized():
            self.server.replay.stats["challenged"] += 1
            return self._send(401, b"", "text/plain", {"WWW-Authenticate": 'Basic realm="replay"'})
        self.server.replay.stats[transaction] += 1
        getattr(self, f"_{transaction}", self._not_found)(params)

    def _authorized(self) -> bool:
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    def _login(self, params):
        self._file("refindly/Login_relative_url.xml", "text/xml")

    def _getmetadata(self, params):
        self._file(f"refindly/STANDARD-XML/GetMetadata_{METADATA.get(params.get('Type'), 'system')}.xml", "text/xml")

    def _search(self, params):
        if not self.server.replay.search_ends_early:
            return self._file("refindly/COMPACT-DECODED/Search.xml", "text/xml")
        if params.get("Offset", "1") == "1":
            return self._file("refindly/COMPACT-DECODED/Search_1of2.xml", "text/xml")
        self._file("librets/search-response-no-records.xml", "text/xml")

    def _getobject(self, params):
        replay = self.server.replay
        _, headers, body = recording(replay.getobject)
        content_type = headers.get("Content-Type") or replay.getobject_type or "application/octet-stream"
        self._send(200, body, content_type)

    def _logout(self, params):
        self._file("refindly/Logout.html", "text/html")

    def _not_found(self, params):
        self._send(404, b"not found", "text/plain")

    def _file(self, relative: str, content_type: str) -> None:
        self._send(200, fixture(relative).read_bytes(), content_type)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replay: Replay):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replay = replay


class ReplayServer:
    """``with ReplayServer() as server:`` serves on 127.0.0.1; ``server.login_url``, ``server.replay``."""

    def __init__(self, replay: Replay | None = None):
        self.replay = replay or Replay()
        self._server = _Server(self.replay)
        self.login_url = f"http://127.0.0.1:{self._server.server_port}/rets/Login.ashx"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="rets-replay")

    def __enter__(self) -> "ReplayServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
