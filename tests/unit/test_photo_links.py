"""Signed links to photos the service serves from a local object store."""

import io

from core.storage import LocalObjectStore
from service.photos import PhotoFiles, SignedPhotoLinks


def get(app, url):
    path, _, query = url.partition("?")
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO()}, start_response))
    return captured["status"], body


def setup(tmp_path, now=1_000_000.0):
    store = LocalObjectStore(tmp_path)
    store.put_bytes("photos/a/K1/1-abcdef12.jpg", b"\xff\xd8jpeg-bytes")
    store.put_bytes("raw/a/2026-11-30/1/page-0001.xml", b"<secret/>")
    clock = {"now": now}
    links = SignedPhotoLinks("secret", "https://feeds.example.com", 3600, clock=lambda: clock["now"])
    return PhotoFiles(store, links), links, clock


def test_a_signed_link_returns_the_stored_bytes(tmp_path):
    app, links, _ = setup(tmp_path)
    url = links.url("photos/a/K1/1-abcdef12.jpg")
    assert url.startswith("https://feeds.example.com/photos/a/K1/1-abcdef12.jpg?expires=")
    assert get(app, url.removeprefix("https://feeds.example.com")) == ("200 OK", b"\xff\xd8jpeg-bytes")


def test_expired_or_edited_links_are_refused(tmp_path):
    app, links, clock = setup(tmp_path)
    url = links.url("photos/a/K1/1-abcdef12.jpg").removeprefix("https://feeds.example.com")
    assert get(app, url.replace("K1", "K2"))[0].startswith("403")
    clock["now"] += 3601
    assert get(app, url)[0].startswith("403")


def test_only_photo_objects_can_be_reached(tmp_path):
    app, links, _ = setup(tmp_path)
    forged = links.url("raw/a/2026-11-30/1/page-0001.xml").removeprefix("https://feeds.example.com")
    assert get(app, forged)[0].startswith("403")
    assert get(app, "/photos/../raw/a/2026-11-30/1/page-0001.xml")[0].startswith("403")
