"""Synthetic listings with RESO Data Dictionary names, deterministic for a given seed.

Each source covers one state, as a real MLS covers a region; addresses use real US cities and
ZIP codes with their coordinates (the ``zipcodes`` package, offline), jittered within a mile
or so. Prices, sizes and statuses follow plausible distributions per property type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import lru_cache

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


def state_for(source_id: str, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{source_id}".encode()).digest()
    return STATES[digest[0] % len(STATES)]


@lru_cache(maxsize=None)
def _zips(state: str) -> tuple[dict, ...]:
    return tuple(
        z for z in zipcodes.filter_by(state=state)
        if z["zip_code_type"] == "STANDARD" and z["active"] and z["lat"] and z["long"]
    )


def synthetic_listings(count: int, sources: Sequence[str], seed: int = 1) -> Iterator[dict]:
    """``count`` listings spread round-robin over ``sources``; the same seed gives the same listings."""
    rng = random.Random(seed)
    for n in range(count):
        source_id = sources[n % len(sources)]
        yield _listing(rng, source_id, n, seed)


def listing_key(source_id: str, n: int, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{source_id}:{n}".encode()).hexdigest()
    return str(int(digest[:15], 16) % 10**12).zfill(12)


def _listing(rng: random.Random, source_id: str, n: int, seed: int) -> dict:
    place = rng.choice(_zips(state_for(source_id, seed)))
    property_type = _weighted(rng, PROPERTY_TYPES)
    modified = ANCHOR - dt.timedelta(seconds=rng.randrange(0, 90 * 86400))
    record = {
        "SourceId": source_id,
        "ListingKey": listing_key(source_id, n, seed),
        "ListingId": f"{source_id[:3].upper()}{seed % 100:02d}{n:07d}",
        "StandardStatus": _weighted(rng, STATUSES),
        "PropertyType": property_type,
        "PropertySubType": rng.choice(SUB_TYPES[property_type]),
        "ListPrice": _price(rng, property_type),
        "ModificationTimestamp": modified,
        **_address(rng, place),
        **_building(rng, property_type),
        "ListAgentFullName": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "ListOfficeName": rng.choice(OFFICES),
    }
    record["PublicRemarks"] = _remarks(rng, record)
    record["PhotosCount"] = rng.choice([0, 1, 3, 5, 8, 12, 18, 25])
    record["PhotosChangeTimestamp"] = modified - dt.timedelta(hours=rng.randrange(0, 72))
    record["Media"] = [
        {"Order": i, "MediaURL": PHOTO_URL_TEMPLATE.format(n=i, **record)}
        for i in range(1, record["PhotosCount"] + 1)
    ]
    return record


def _weighted(rng: random.Random, options) -> str:
    values, weights = zip(*options)
    return rng.choices(values, weights=weights)[0]


def _price(rng: random.Random, property_type: str) -> Decimal:
    if property_type == "Residential Lease":
        return Decimal(round(rng.lognormvariate(7.8, 0.4), -1))
    base = {"Land": 11.6, "Commercial Sale": 13.4, "Farm": 13.3, "Manufactured In Park": 11.4}
    price = rng.lognormvariate(base.get(property_type, 12.9), 0.55)
    return Decimal(int(round(price, -3)))


def _address(rng: random.Random, place: dict) -> dict:
    number = str(rng.randrange(100, 19999))
    street = f"{rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
    unit = str(rng.randrange(1, 40)) if rng.random() < 0.12 else None
    city, state, postal = place["city"], place["state"], place["zip_code"]
    line = f"{number} {street}" + (f" #{unit}" if unit else "")
    return {
        "StreetNumber": number,
        "StreetName": street,
        "UnitNumber": unit,
        "UnparsedAddress": f"{line}, {city}, {state} {postal}",
        "City": city,
        "StateOrProvince": state,
        "PostalCode": postal,
        "CountyOrParish": place["county"],
        "Latitude": round(float(place["lat"]) + rng.uniform(-0.015, 0.015), 6),
        "Longitude": round(float(place["long"]) + rng.uniform(-0.015, 0.015), 6),
    }


def _building(rng: random.Random, property_type: str) -> dict:
    if property_type == "Land":
        return {"LotSizeAcres": Decimal(str(round(rng.uniform(0.2, 40), 2)))}
    beds = rng.choices([1, 2, 3, 4, 5, 6], weights=[8, 22, 35, 22, 9, 4])[0]
    baths = max(1, min(beds + rng.choice([-1, 0, 0, 1]), 6))
    return {
        "BedroomsTotal": beds,
        "BathroomsTotalInteger": baths,
        "LivingArea": Decimal(int(rng.gauss(500 + beds * 420, 250)) if beds else 900).max(Decimal(400)),
        "LotSizeAcres": Decimal(str(round(rng.uniform(0.08, 1.5), 2))),
        "YearBuilt": rng.randrange(1925, 2026),
    }


def _remarks(rng: random.Random, record: dict) -> str:
    features = ", ".join(rng.sample(FEATURES, 3))
    kind = record["PropertySubType"].lower()
    return f"Welcome to this {kind} in {record['City']}: {features}."
