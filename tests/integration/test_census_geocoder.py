"""The Census batch geocoder client against a local server speaking its CSV protocol."""

import csv
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from pipeline.errors import SourceUnavailable
from pipeline.geocode import GeoQuery
from pipeline.geocode.census import CensusGeocoder

KNOWN = {"1600 PENNSYLVANIA AVE NW": "-77.036543,38.897675"}


class CensusLike(BaseHTTPRequestHandler):
    """Answers a multipart POST with ``addressFile`` as the Census batch endpoint does."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b'name="benchmark"' not in body or b"Public_AR_Current" not in body:
            self.send_error(400)
            return
        start = body.index(b"text/csv\r\n\r\n") + len(b"text/csv\r\n\r\n")
        upload = body[start:body.index(b"\r\n--", start)].decode()
        out = io.StringIO()
        writer = csv.writer(out)
        for row_id, street, city, state, zip_code in csv.reader(io.StringIO(upload)):
            point = KNOWN.get(street.upper())
            given = f"{street}, {city}, {state}, {zip_code}"
            if point:
                writer.writerow([row_id, given, "Match", "Exact", given.upper(), point, "76225813", "L"])
            else:
                writer.writerow([row_id, given, "No_Match"])
        reply = out.getvalue().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def census_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CensusLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/geocoder/locations/addressbatch"
    server.shutdown()
    server.server_close()


def test_matches_come_back_with_address_precision_and_misses_are_left_out(census_url):
    geocoder = CensusGeocoder(requests.Session(), census_url)
    results = geocoder.geocode([
        GeoQuery(1, "1600 Pennsylvania Ave NW", "Washington", "DC", "20500"),
        GeoQuery(2, "1 Nowhere Rd", "Nowhere", "KS", "00000"),
    ])
    assert set(results) == {1}
    assert (results[1].latitude, results[1].longitude, results[1].precision) == (38.897675, -77.036543, "address")


def test_an_unreachable_geocoder_is_transient():
    geocoder = CensusGeocoder(requests.Session(), "http://127.0.0.1:9/addressbatch", timeout=2)
    with pytest.raises(SourceUnavailable):
        geocoder.geocode([GeoQuery(1, "1 Main St", "Naples", "FL", "34102")])
