"""Synthetic listings with RESO Data Dictionary names, deterministic for a given seed.

Each source covers one state, as a real MLS covers a region; addresses use real US cities and
ZIP codes with their coordinates (the ``zipcodes`` package, offline), jittered within a mile
or so. Prices, sizes and statuses follow plausible distributions per property type.

``synthetic_listings`` gives records as dicts with their photos; ``synthetic_rows`` the same
listings as tuples in ``FIELDS`` order, several times quicker, for writers of millions. A seed
fixes the data set for good: the order of the random draws is part of it, and
tests/unit/test_sandbox_listings.py holds digests of what each seed gave.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate

import zipcodes

PHOTO_URL_TEMPLATE = "https://photos.example.com/{SourceId}/{ListingId}/{n}.jpg"
ANCHOR = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)  # fixed, so a seed means one data set

STATUSES = [
    ("Active", 60), ("Pending", 9), ("Active Under Contract", 8), ("Closed", 14),
    ("Coming Soon", 3), ("Withdrawn", 2), ("Expired", 2), ("Canceled", 1), ("Hold", 1),
]
PROPERTY_TYPES = [
    ("Residential", 68), ("Residential Lease", 9), ("Land", 8), ("Commercial Sale", 4),
    ("Residential Income", 6), ("Farm", 2), ("Manufactured In Park", 3),
]
SUB_TYPES = {
    "Residential": ["Single Family Residence", "Condominium", "Townhouse", "Villa"],
    "Residential Lease": ["Single Family Residence", "Apartment", "Condominium"],
    "Residential Income": ["Duplex", "Triplex", "Quadruplex"],
    "Land": ["Unimproved Land"],
    "Commercial Sale": ["Office", "Retail", "Warehouse"],
    "Farm": ["Farm"],
    "Manufactured In Park": ["Manufactured Home"],
}
STREETS = [
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Sunset", "Park",
    "Magnolia", "Palm", "Willow", "Highland", "River", "Meadow", "Bay", "Harbor", "Cypress",
    "Forest", "Spring", "Ridge", "Valley", "Orchard", "Mill", "Church", "Main", "Lincoln",
]
SUFFIXES = ["St", "Ave", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Cir", "Rd"]
STATES = ["FL", "TX", "CA", "NC", "GA", "AZ", "CO", "WA", "OH", "TN", "NY", "IL", "VA", "MI", "OR"]
FIRST = ["Maria", "James", "Linda", "Robert", "Patricia", "John", "Jennifer", "Michael", "Ana", "David"]
LAST = ["Garcia", "Smith", "Johnson", "Brown", "Lee", "Martinez", "Davis", "Clark", "Lopez", "Walker"]
OFFICES = ["Coastal Realty", "Keystone Homes", "Summit Properties", "Harbor Real Estate", "Blue Oak Brokers"]
FEATURES = ["updated kitchen", "quiet cul-de-sac", "new roof", "open floor plan", "large lanai",
            "walk to schools", "screened pool", "hardwood floors", "two-car garage", "mountain views"]


# A record's fields in order. Land has no building, so its records lack BUILDING_ONLY.
FIELDS = (
    "SourceId", "ListingKey", "ListingId", "StandardStatus", "PropertyType", "PropertySubType",
    "ListPrice", "ModificationTimestamp", "StreetNumber", "StreetName", "UnitNumber",
    "UnparsedAddress", "City", "StateOrProvince", "PostalCode", "CountyOrParish", "Latitude",
    "Longitude", "BedroomsTotal", "BathroomsTotalInteger", "LivingArea", "LotSizeAcres",
    "YearBuilt", "ListAgentFullName", "ListOfficeName", "PublicRemarks", "PhotosCount",
    "PhotosChangeTimestamp",
)
BUILDING_ONLY = ("BedroomsTotal", "BathroomsTotalInteger", "LivingArea", "YearBuilt")
PHOTO_COUNTS = [0, 1, 3, 5, 8, 12, 18, 25]
BEDROOMS = [(1, 8), (2, 22), (3, 35), (4, 22), (5, 9), (6, 4)]
BATH_OFFSETS = [-1, 0, 0, 1]
PRICE_BASE = {"Land": 11.6, "Commercial Sale": 13.4, "Farm": 13.3, "Manufactured In Park": 11.4}
JITTER = 0.015  # degrees, about a mile


def state_for(source_id: str, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{source_id}".encode()).digest()
    return STATES[digest[0] % len(STATES)]


@lru_cache(maxsize=None)
def _zips(state: str) -> tuple[dict, ...]:
    return tuple(
        z for z in zipcodes.filter_by(state=state)
        if z["zip_code_type"] == "STANDARD" and z["active"] and z["lat"] and z["long"]
    )


@lru_cache(maxsize=None)
def _places(state: str) -> tuple[tuple, ...]:
    """A state's ZIP codes as (city, state, zip, county, lat, long), coordinates parsed once."""
    return tuple(
        (z["city"], z["state"], z["zip_code"], z["county"], float(z["lat"]), float(z["long"]))
        for z in _zips(state)
    )


def synthetic_listings(count: int, sources: Sequence[str], seed: int = 1) -> Iterator[dict]:
    """``count`` listings spread round-robin over ``sources``; the same seed gives the same listings."""
    for row in synthetic_rows(count, sources, seed):
        record = dict(zip(FIELDS, row))
        if record["PropertyType"] == "Land":
            for name in BUILDING_ONLY:
                del record[name]
        record["Media"] = [{"Order": i, "MediaURL": url} for i, url in enumerate(photo_urls(record), 1)]
        yield record


def synthetic_rows(count: int, sources: Sequence[str], seed: int = 1) -> Iterator[tuple]:
    """The listings of :func:`synthetic_listings` as tuples in ``FIELDS`` order (None where a
    record lacks the field), without their photos: several times quicker, for bulk writers."""
    draws = _Draws(random.Random(seed))
    sites = [_Source(source_id, seed) for source_id in sources]
    for n in range(count):
        yield draws.listing(sites[n % len(sites)], n)


def listing_key(source_id: str, n: int, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{source_id}:{n}".encode()).hexdigest()
    return str(int(digest[:15], 16) % 10**12).zfill(12)


def photo_urls(record: dict) -> list[str]:
    """The URLs of a listing's ``PhotosCount`` photos, in order, from ``PHOTO_URL_TEMPLATE``."""
    # Formatting the template once per listing, not once per photo: the photos differ only in n.
    head, tail = (part.format_map(record) for part in PHOTO_URL_TEMPLATE.split("{n}", 1))
    return [f"{head}{i}{tail}" for i in range(1, record["PhotosCount"] + 1)]


class _Source:
    """What every listing of one source shares: its seed, id prefix and ZIP codes."""

    def __init__(self, source_id: str, seed: int) -> None:
        self.id = source_id
        self.seed = seed
        self.prefix = f"{source_id[:3].upper()}{seed % 100:02d}"
        self.places = _places(state_for(source_id, seed))


class _Weighted:
    """``rng.choices(values, weights)[0]`` with the cumulative weights summed once.

    It draws exactly what ``random.Random.choices`` draws (one ``random()``, then a bisection),
    so a seed keeps its listings; ``choices`` itself re-sums the weights on every call.
    """

    def __init__(self, options) -> None:
        self.values, weights = zip(*options)
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1] + 0.0
        self.hi = len(self.values) - 1

    def pick(self, random_value: float):
        return self.values[bisect(self.cumulative, random_value * self.total, 0, self.hi)]


STATUS_PICK = _Weighted(STATUSES)
TYPE_PICK = _Weighted(PROPERTY_TYPES)
BEDROOM_PICK = _Weighted(BEDROOMS)
KINDS = {sub: sub.lower() for subs in SUB_TYPES.values() for sub in subs}


class _Draws:
    """One listing's draws from the seed's generator, in the order the data set was defined with.

    The order of the draws *is* the data set: each method draws what the original
    ``rng.choice``/``randrange``/``uniform``/``sample`` calls drew, in the same sequence, through
    ``Random._randbelow`` and ``Random.random`` directly (the public wrappers cost more than the
    draws themselves). ``gauss`` and ``lognormvariate`` stay public: they keep state or loop.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.below = rng._randbelow  # what choice() and randrange() use underneath
        self.random = rng.random

    def listing(self, source: _Source, n: int) -> tuple:
        below, rnd = self.below, self.random
        place = source.places[below(len(source.places))]
        property_type = TYPE_PICK.pick(rnd())
        modified = ANCHOR - dt.timedelta(seconds=below(90 * 86400))
        status = STATUS_PICK.pick(rnd())
        subs = SUB_TYPES[property_type]
        sub_type = subs[below(len(subs))]
        price = self.price(property_type)
        address = self.address(place)
        building = self.building(property_type)
        agent = f"{FIRST[below(len(FIRST))]} {LAST[below(len(LAST))]}"
        office = OFFICES[below(len(OFFICES))]
        remarks = f"Welcome to this {KINDS[sub_type]} in {place[0]}: {self.features()}."
        photos = PHOTO_COUNTS[below(len(PHOTO_COUNTS))]
        photos_changed = modified - dt.timedelta(hours=below(72))
        return (
            source.id, listing_key(source.id, n, source.seed), f"{source.prefix}{n:07d}", status,
            property_type, sub_type, price, modified, *address, *building, agent, office, remarks,
            photos, photos_changed,
        )

    def price(self, property_type: str) -> Decimal:
        if property_type == "Residential Lease":
            return Decimal(round(self.rng.lognormvariate(7.8, 0.4), -1))
        price = self.rng.lognormvariate(PRICE_BASE.get(property_type, 12.9), 0.55)
        return Decimal(int(round(price, -3)))

    def address(self, place: tuple) -> tuple:
        below, rnd = self.below, self.random
        number = str(100 + below(19999 - 100))
        street = f"{STREETS[below(len(STREETS))]} {SUFFIXES[below(len(SUFFIXES))]}"
        unit = str(1 + below(40 - 1)) if rnd() < 0.12 else None
        city, state, postal, county, lat, long = place
        line = f"{number} {street} #{unit}" if unit else f"{number} {street}"
        return (
            number, street, unit, f"{line}, {city}, {state} {postal}", city, state, postal, county,
            round(lat + self.uniform(-JITTER, JITTER), 6), round(long + self.uniform(-JITTER, JITTER), 6),
        )

    def building(self, property_type: str) -> tuple:
        """(BedroomsTotal, BathroomsTotalInteger, LivingArea, LotSizeAcres, YearBuilt)."""
        if property_type == "Land":
            return None, None, None, Decimal(str(round(self.uniform(0.2, 40), 2))), None
        below = self.below
        beds = BEDROOM_PICK.pick(self.random())
        baths = max(1, min(beds + BATH_OFFSETS[below(len(BATH_OFFSETS))], 6))
        area = Decimal(max(int(self.rng.gauss(500 + beds * 420, 250)), 400))
        lot = Decimal(str(round(self.uniform(0.08, 1.5), 2)))
        return beds, baths, area, lot, 1925 + below(2026 - 1925)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def features(self) -> str:
        """Three of FEATURES, drawn as ``rng.sample(FEATURES, 3)`` draws them."""
        pool, below, last = FEATURES.copy(), self.below, len(FEATURES) - 1
        picked = []
        for i in range(3):
            j = below(last + 1 - i)
            picked.append(pool[j])
            pool[j] = pool[last - i]
        return ", ".join(picked)
