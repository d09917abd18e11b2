"""Connectors: one module per protocol. A connector only fetches.

It writes what the source sent, unchanged, to files in a work directory and describes them;
parsers read them later (from the object store, so a crashed run can re-parse without
re-downloading). A connector never interprets records beyond what paging requires.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class FetchRequest:
    """What one download step asks of a connector."""

    source_id: str
    spec: dict[str, Any]                 # the source's [download] table, secrets resolved
    workdir: Path                        # write payload files here (it exists and is empty)
    since: dt.datetime | None = None     # incremental: only records modified at/after this (UTC)
    state: dict[str, Any] = field(default_factory=dict)  # what the last successful run left
    progress: Callable[[str], None] = lambda message: None


@dataclass(frozen=True)
class PayloadFile:
    path: Path
    size: int
    format: str | None = None            # a parse format the connector implies (rets-compact, odata...)
    meta: dict[str, Any] = field(default_factory=dict)  # ETag, Last-Modified, remote name, page number


@dataclass(frozen=True)
class Payload:
    files: list[PayloadFile]
    state: dict[str, Any] = field(default_factory=dict)  # to keep for the next run (ETag, seen files...)
    not_modified: bool = False           # the source says nothing changed since last time
    # The files hold everything the source publishes. False when some were skipped as already
    # fetched (only_new, 304s): then listings missing from the payload are not removed.
    complete: bool = True
    # Why the files are known to hold less than the source announced ("COUNT said 40, 15 rows
    # came"): a full run removes nothing then. None: whole as far as the source lets us tell.
    incomplete: str | None = None
    # How many records the source announced for this pull (RETS COUNT, @odata.count, a SOAP
    # total), when it did: the load checks the parsed records against it too.
    announced: int | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class Connector(Protocol):
    kind: ClassVar[str]

    def fetch(self, request: FetchRequest) -> Payload: ...


def shortfall(request: FetchRequest, who: str, by: str, announced: int | None, received: int,
              detail: str = "") -> str | None:
    """Why a pull holds fewer records than its source announced, said once to ``progress`` too
    (``"the RETS server announced 40 records (COUNT) and sent 15; ..."``); None when it holds
    them all, or when the source announced nothing."""
    if announced is None or received >= announced:
        return None
    reason = f"{who} announced {announced:,} records ({by}) and sent {received:,}" + (f"; {detail}" if detail else "")
    request.progress(f"incomplete: {reason}")
    return reason


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - dt.datetime.now(dt.timezone.utc)).total_seconds(), 0.0)


def connector_for(kind: str) -> Connector:
    """The connector of a download kind (ftp, ftps, sftp, http, soap, rets, reso, sql)."""
    from importlib import import_module

    from pipeline.errors import SourceConfigError

    module_name = {"ftps": "ftp"}.get(kind, kind)
    if module_name not in KINDS:
        raise SourceConfigError(f"unknown download kind {kind!r}; use one of {', '.join(sorted(KINDS))}")
    module = import_module(f"pipeline.connectors.{module_name}")
    return module.CONNECTOR


KINDS = {"ftp", "sftp", "http", "soap", "rets", "reso", "sql"}
