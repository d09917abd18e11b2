"""Offline geocoding to the centroid of a US ZIP code, from the ``zipcodes`` package."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pipeline.geocode import GeoQuery, GeoResult


@lru_cache(maxsize=1)
def _centroids() -> dict[str, tuple[float, float]]:
    import zipcodes

    return {
        z["zip_code"]: (float(z["lat"]), float(z["long"]))
        for z in zipcodes.list_all()
        if z.get("lat") and z.get("long")
    }


class ZipCentroidGeocoder:
    name = "zip-centroid"

    def geocode(self, queries: Sequence[GeoQuery]) -> dict[int, GeoResult]:
        table = _centroids()
        results = {}
        for query in queries:
            point = table.get((query.postal_code or "").strip()[:5])
            if point:
                results[query.id] = GeoResult(point[0], point[1], "zip", self.name)
        return results
