"""The whole sandbox (one simulated MLS per connector kind) and our CLI against it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from core.models import Listing
from core.reso import LISTING_FIELDS
from sandbox.feeds._common import write_quirks
from sandbox.world import World, start_servers

ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "mlsfeeds", *args], cwd=ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"mlsfeeds {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def expected(root: Path) -> dict[str, dict[str, dict]]:
    return json.loads((root / "expected.json").read_text())


def mismatches(session, source_id: str, wanted: dict[str, dict]) -> list[str]:
    """Differences between what the sandbox published and what the database holds (not removed)."""
    rows = {r.listing_key: r for r in session.scalars(
        select(Listing).where(Listing.source_id == source_id, Listing.removed_at.is_(None)))}
    problems = [f"{source_id}: missing {k}" for k in sorted(set(wanted) - set(rows))[:5]]
    problems += [f"{source_id}: unexpected {k}" for k in sorted(set(rows) - set(wanted))[:5]]
    for key in sorted(set(wanted) & set(rows)):
        for name, value in wanted[key].items():
            if name in LISTING_FIELDS and not same(LISTING_FIELDS[name][1], value, getattr(rows[key], LISTING_FIELDS[name][0])):
                problems.append(f"{source_id}/{key}.{name}: published {value!r}, stored {getattr(rows[key], LISTING_FIELDS[name][0])!r}")
    return problems


def same(kind: str, published, stored) -> bool:
    if published is None or stored is None:
        return published is None and stored is None
    if kind == "decimal":
        return Decimal(str(published)) == Decimal(str(stored))
    if kind == "float":
        return abs(float(published) - float(stored)) < 1e-6
    if kind == "timestamp":
        return dt.datetime.fromisoformat(str(published)) == stored
    if kind == "int":
        return int(published) == int(stored)
    return str(published) == str(stored)


@contextmanager
def running_world(root: Path, **create) -> Iterator[World]:
    """A sandbox World (``World.create(root, **create)``) with its servers started, stopped after."""
    world = World.create(root, **create)
    running, _ = start_servers(world)
    try:
        yield world
    finally:
        for server in running:
            server.stop()


@contextmanager
def quirks_for(root: Path, kind: str, known: dict[str, str]) -> Iterator[Callable[..., None]]:
    """A setter of the ``kind`` feed's quirks under ``root``; the quirks are cleared afterwards."""
    try:
        yield lambda **chosen: write_quirks(root, kind, chosen, known)
    finally:
        write_quirks(root, kind, {}, known)
