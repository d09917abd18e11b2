"""The US Census batch geocoder (online; off unless configured).

POSTs a CSV of ``id,street,city,state,zip`` (at most 10,000 rows) as ``addressFile`` and reads
the CSV reply: ``id, input, Match|No_Match|Tie, Exact|Non_Exact, matched address, "lon,lat", ...``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import requests

from pipeline.errors import SourceUnavailable
from pipeline.geocode import GeoQuery, GeoResult

DEFAULT_URL = "https://geocoding.geo.census.gov/geocoder/locations/addressbatch"
MAX_BATCH = 10_000


class CensusGeocoder:
    name = "census"

    def __init__(self, session: requests.Session, url: str = DEFAULT_URL, timeout: float = 300):
        self.session = session
        self.url = url
        self.timeout = timeout

    def geocode(self, queries: Sequence[GeoQuery]) -> dict[int, GeoResult]:
        results: dict[int, GeoResult] = {}
        for start in range(0, len(queries), MAX_BATCH):
            results.update(self._batch(queries[start:start + MAX_BATCH]))
        return results

    def _batch(self, queries: Sequence[GeoQuery]) -> dict[int, GeoResult]:
        upload = io.StringIO()
        writer = csv.writer(upload)
        for q in queries:
            writer.writerow([q.id, q.street or "", q.city or "", q.state or "", q.postal_code or ""])
        try:
            reply = self.session.post(
                self.url,
                data={"benchmark": "Public_AR_Current"},
                files={"addressFile": ("addresses.csv", upload.getvalue(), "text/csv")},
                timeout=self.timeout,
            )
            reply.raise_for_status()
        except requests.RequestException as exc:
            raise SourceUnavailable(f"census geocoder: {exc}") from exc
        return parse_reply(reply.text)


def parse_reply(text: str) -> dict[int, GeoResult]:
    results = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 6 or row[2] != "Match":
            continue
        try:
            lon, lat = (float(v) for v in row[5].split(","))
            results[int(row[0])] = GeoResult(lat, lon, "address", "census")
        except ValueError:
            continue
    return results
