"""Geocoding: source coordinates are kept; the rest go through a chain of geocoders.

The chain is: the cache (normalized address → coordinates, in the database), then the
offline ZIP-centroid geocoder (the ``zipcodes`` package; no network), then — only when
configured — the US Census batch geocoder. Every listing records the precision it got:
``source`` (the feed's own), ``address`` (rooftop/interpolated), ``zip`` (ZIP centroid) or
``none``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GeoQuery:
    id: int                      # the listing row id
    street: str | None
    city: str | None
    state: str | None
    postal_code: str | None

    @property
    def address(self) -> str:
        return normalize_address(self.street, self.city, self.state, self.postal_code)


@dataclass(frozen=True)
class GeoResult:
    latitude: float
    longitude: float
    precision: str               # address | zip
    provider: str


class Geocoder(Protocol):
    name: str

    def geocode(self, queries: Sequence[GeoQuery]) -> dict[int, GeoResult]:
        """Results for the queries it could place, by query id; the others are left out."""
        ...


def normalize_address(street, city, state, postal_code) -> str:
    parts = [p for p in (street, city, state, (postal_code or "")[:5]) if p]
    text = ", ".join(str(p) for p in parts).upper()
    text = re.sub(r"[^\w#, ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()[:255]
