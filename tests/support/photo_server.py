"""A local HTTP server that hosts sandbox photos, counting the requests it answers."""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.photos import photo_bytes


class PhotoHost:
    """Serves /p/{listing_key}/{order}.jpg as sandbox.photos renders it at the key's version."""

    def __init__(self):
        self.versions: dict[str, int] = {}
        self.hits: Counter = Counter()
        self.url = ""

    def link(self, listing_key: str, order: int) -> str:
        return f"{self.url}/p/{listing_key}/{order}.jpg"

    def body(self, path: str) -> bytes | None:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "p":
            return None
        key, order = parts[1], int(parts[2].split(".")[0])
        self.hits[key] += 1
        return photo_bytes(key, order, self.versions.get(key, 0))


@contextmanager
def photo_host():
    host = PhotoHost()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = host.body(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
