"""The baseline side of bench/soap_search.py: a WSGI app that answers every request with one
canned response, captured from the real service for the benchmark's SearchListings request.

It runs under the same gunicorn and the same gunicorn.conf.py as the service, so the difference
between the two sides is what mlsfeeds does per request (SOAP parsing and validation, auth,
SQL, serialization), not HTTP, gunicorn or the load generator.

``MLSFEEDS_BENCH_RESPONSE`` names a JSON file: ``{"status": "200 OK", "headers": [[name, value],
...], "body_file": "/path/to/body.xml"}``, written by bench/soap_search.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESPONSE_ENV = "MLSFEEDS_BENCH_RESPONSE"


def load_response(path: str | os.PathLike) -> tuple[str, list[tuple[str, str]], bytes]:
    meta = json.loads(Path(path).read_text())
    body = Path(meta["body_file"]).read_bytes()
    return meta["status"], [(str(k), str(v)) for k, v in meta["headers"]], body


def create_app():
    """The WSGI entry point (gunicorn: ``bench.bare_app:create_app()``)."""
    status, headers, body = load_response(os.environ[RESPONSE_ENV])

    def app(environ, start_response):
        # Read the request body as the real service does (it is small: one SOAP envelope).
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit():
            environ["wsgi.input"].read(int(length))
        start_response(status, list(headers))
        return [body]

    return app
