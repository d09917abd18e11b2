"""``sandbox serve`` and ``sandbox mutate``: one simulated MLS per connector kind, in a folder.

DIR/state.json holds what each source publishes (RESO-named listings) and its quirks; each feed
renders it in its own dialect under DIR/<kind>/ and its server reads that per request, so
``mutate`` and ``set_quirks`` change what the running servers publish and how. DIR/sources.toml points our pipeline at the servers
and DIR/expected.json says what every source's listings must become.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandbox.feeds._common import save_ports, write_quirks
from sandbox.listings import synthetic_listings
from sandbox.toml import dumps_sources

KINDS = ("ftp", "sftp", "http", "soap", "rets", "reso", "sql")
DECIMALS = {"ListPrice", "LivingArea", "LotSizeAcres"}
TIMESTAMPS = {"ModificationTimestamp", "PhotosChangeTimestamp"}


def source_id(kind: str) -> str:
    return f"{kind}mls"


def feed(kind: str):
    return import_module(f"sandbox.feeds.{kind}").FEED


def quirks_of(kind: str) -> dict[str, str]:
    """The quirks a kind's sandbox server knows: name -> what it does (none for most kinds)."""
    return getattr(import_module(f"sandbox.feeds.{kind}"), "QUIRKS", {})


@dataclass
class World:
    root: Path
    state: dict[str, Any]

    @classmethod
    def create(cls, root: Path, listings: int, seed: int, kinds=KINDS) -> "World":
        state = {"seed": seed, "generation": 0, "sources": {}}
        for n, kind in enumerate(kinds):
            sid = source_id(kind)
            records = list(synthetic_listings(listings, [sid], seed * 100 + n))
            state["sources"][sid] = {"kind": kind, "listings": records}
        world = cls(Path(root), state)
        world.publish()
        return world

    @classmethod
    def open(cls, root: Path) -> "World":
        path = Path(root) / "state.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: not a sandbox folder (run `mlsfeeds sandbox serve --dir {root}` first)")
        return cls(Path(root), json.loads(path.read_text(), object_hook=_revive))

    def publish(self) -> None:
        for sid, entry in self.state["sources"].items():
            feed(entry["kind"]).publish(entry["listings"], self.root)
            if entry.get("quirks") is not None:
                write_quirks(self.root, entry["kind"], entry["quirks"], quirks_of(entry["kind"]))
        _write_json(self.root / "state.json", self.state)
        self.write_expected()

    def set_quirks(self, source_id: str, **quirks: Any) -> None:
        """Make a source's server behave as some real server does (its feed module's QUIRKS);
        no quirks: back to the textbook. Running servers take it at their next request."""
        entry = self.state["sources"][source_id]
        write_quirks(self.root, entry["kind"], quirks, quirks_of(entry["kind"]))
        entry["quirks"] = quirks
        _write_json(self.root / "state.json", self.state)

    def write_expected(self) -> None:
        expected = {
            sid: {r["ListingKey"]: _expected(feed(entry["kind"]), r) for r in entry["listings"]}
            for sid, entry in self.state["sources"].items()
        }
        _write_json(self.root / "expected.json", expected)

    def mutate(self, add: int = 0, change: int = 0, remove: int = 0,
               change_photos: int = 0) -> dict[str, dict[str, list[str]]]:
        """Change every source's data; returns {source: {added, changed, removed, photos: [keys]}}."""
        self.state["generation"] += 1
        generation, seed = self.state["generation"], self.state["seed"]
        rng = random.Random(seed * 1000 + generation)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        report = {}
        for n, (sid, entry) in enumerate(sorted(self.state["sources"].items())):
            report[sid] = _mutate_source(entry, sid, rng, now, add, change, remove, seed * 100 + 50 + generation * 10 + n)
            report[sid]["photos"] = _change_photos(entry["listings"], rng, now, change_photos)
        self.publish()
        self._publish_changes(report, now)
        return report

    def _publish_changes(self, report: dict, now: dt.datetime) -> None:
        """Feeds that also publish change files (FTP's daily deltas) get one for this mutation."""
        for sid, entry in self.state["sources"].items():
            publish_incremental = getattr(feed(entry["kind"]), "publish_incremental", None)
            touched = set(report[sid]["added"]) | set(report[sid]["changed"]) | set(report[sid]["photos"])
            if publish_incremental and touched:
                publish_incremental([r for r in entry["listings"] if r["ListingKey"] in touched], self.root, at=now)


def _expected(f, listing: dict) -> dict:
    """The RESO fields a listing must yield, and its photos in order ("corrupt" ones rejected)."""
    photos = getattr(f, "expected_photos", None)
    return {**f.expected(listing), "Photos": photos(listing)} if photos else f.expected(listing)


def _mutate_source(entry, sid, rng, now, add, change, remove, new_seed) -> dict[str, list[str]]:
    listings = entry["listings"]
    removed = rng.sample(listings, min(remove, len(listings)))
    gone = {r["ListingKey"] for r in removed}
    listings[:] = [r for r in listings if r["ListingKey"] not in gone]
    changed = rng.sample(listings, min(change, len(listings)))
    for record in changed:
        record["ListPrice"] = (record["ListPrice"] * Decimal("0.97")).quantize(Decimal(1))
        record["ModificationTimestamp"] = now
    added = list(synthetic_listings(add, [sid], new_seed))
    for record in added:
        record["ModificationTimestamp"] = now
    listings.extend(added)
    return {"added": [r["ListingKey"] for r in added], "changed": [r["ListingKey"] for r in changed],
            "removed": sorted(gone)}


def _change_photos(listings: list[dict], rng: random.Random, now: dt.datetime, count: int) -> list[str]:
    """New photo bytes for ``count`` listings that have photos: a new version and change time."""
    with_photos = [r for r in listings if r.get("PhotosCount")]
    chosen = rng.sample(with_photos, min(count, len(with_photos)))
    for record in chosen:
        record["PhotoVersion"] = record.get("PhotoVersion", 0) + 1
        record["PhotosChangeTimestamp"] = now
        record["ModificationTimestamp"] = now
    return sorted(r["ListingKey"] for r in chosen)


def start_servers(world: World) -> tuple[list, str]:
    """Start every source's server; returns (running servers, sources.toml text).

    Each server gets the port it had the last time this folder's sandbox ran, when it is free
    (``ports.json``): sources.toml, and photo links the database holds, stay right."""
    running, tables, ports = [], [], {}
    try:
        for sid, entry in world.state["sources"].items():
            f = feed(entry["kind"])
            server = f.start(world.root)
            running.append(server)
            tables.append(f.source(server, sid))
            ports[entry["kind"]] = urlsplit(server.url).port or 0
    except BaseException:
        for server in running:
            server.stop()
        raise
    save_ports(world.root, {kind: port for kind, port in ports.items() if port})
    text = dumps_sources(tables)
    (world.root / "sources.toml").write_text(text, encoding="utf-8")
    return running, text


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=_encode, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def _revive(obj: dict[str, Any]) -> dict[str, Any]:
    for name in DECIMALS & obj.keys():
        if isinstance(obj[name], str):
            obj[name] = Decimal(obj[name])
    for name in TIMESTAMPS & obj.keys():
        if isinstance(obj[name], str):
            obj[name] = dt.datetime.fromisoformat(obj[name])
    return obj
