"""Simulated MLS servers, one module per connector kind, each with its own dialect.

A feed module exposes ``FEED``, an object with:

- ``kind``: the download kind it plays (ftp, sftp, http, soap, rets, reso, sql);
- ``publish(listings, root)``: (re)write what the server serves, under ``root``, from RESO-named
  listing dicts (sandbox.listings); called again by ``sandbox mutate`` while the server runs,
  so the server must read ``root`` per request (or per connection), never cache it;
- ``start(root) -> Running``: start the server on 127.0.0.1, a free port, serving ``root``;
- ``source(running, source_id) -> dict``: the ``[[source]]`` table of sources.toml (download,
  parse, fields, values, images) that makes our pipeline read this feed correctly;
- ``expected(listing) -> dict``: the RESO fields, as our pipeline must store them, that this
  dialect carries for a listing (a dialect may carry fewer fields than the full listing).

The sandbox must not know our database schema: it speaks RESO names and its own dialects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Running:
    """A started server: where it listens, and how to stop it."""

    url: str
    stop: Callable[[], None]
    details: dict[str, Any] = field(default_factory=dict)  # credentials, ports, paths...
