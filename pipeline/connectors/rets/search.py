"""Search (RETS 1.7.2 section 7) with DMQL2, paged into files, one file per reply.

The query is the source's ``query`` (default: every record, ``(<modification_field>=1900-01-01T00:00:00+)``),
AND-ed on incremental runs with ``(<modification_field>=<since>+)``; timestamps are written in the
server's time zone with ``timestamp_format``.

Paging, by ``paging`` mode:

``offset``
    ``Limit=page_size`` and ``Offset=1, 1+n, ...`` (RETS offsets count from 1), asking COUNT on the
    first page. A page goes on while the reply has ``<MAXROWS/>`` (or 20208), or fewer rows
    arrived than COUNT said; a server whose cap is below ``page_size`` still pages, by the rows it
    actually sent.
``window``
    Offset-free paging, for servers that refuse Offset. The time axis (``full_since`` or ``since``,
    up to a day past now) is cut into ModificationTimestamp windows ``(<field>=<lo>-<hi>)``,
    whole seconds, inclusive, adjacent windows not overlapping; each window's size is asked first
    (``Count=2``, no rows) and a window holding more than a page is halved, until every window
    fits in one page, which is then fetched without Offset. Windows partition the records, so each
    record arrives exactly once, in whatever order the server likes, and no key ordering is
    assumed. It costs about two small count requests per page, plus about log2(range / busiest
    window) for the empty stretches of the axis. It assumes the server compares timestamps at
    whole seconds (a record stamped 10:00:05.5 falls between ``..-10:00:05`` and ``10:00:06-..``);
    more records than a page modified within one second is reported as SourceConfigError.
``auto`` (default)
    ``offset``, switching to ``window`` for the rest of the run (files so far discarded) when the
    server refuses Offset: an error reply to a request with ``Offset`` after the first page
    succeeded, or a page that repeats the first page (Offset ignored). The mode that worked is
    kept in the source's state and used on the next run.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.connectors import PayloadFile
from pipeline.connectors.rets.compact import CompactReader
from pipeline.connectors.rets.session import RetsSession, transport_errors
from pipeline.errors import FeedNotFound, SourceConfigError

CHUNK_SIZE = 64 * 1024
PAGING_MODES = ("auto", "offset", "window")
FORMATS = ("COMPACT-DECODED", "COMPACT")
UTC = dt.timezone.utc
ONE_SECOND = dt.timedelta(seconds=1)
SLACK = dt.timedelta(days=1)  # past "now": a server clock or zone that is off still loses nothing


@dataclass(frozen=True)
class SearchSettings:
    """What to search and how to page it (see the connector's spec keys)."""

    resource: str
    class_name: str
    query: str | None = None
    select: tuple[str, ...] | None = None
    format: str = "COMPACT-DECODED"
    page_size: int = 2500
    modification_field: str = "ModificationTimestamp"
    key_field: str | None = None
    server_timezone: ZoneInfo = ZoneInfo("UTC")
    timestamp_format: str = "%Y-%m-%dT%H:%M:%S"
    full_since: dt.datetime = dt.datetime(1900, 1, 1)  # naive, server time
    paging: str = "auto"
    method: str = "GET"

    def stamp(self, moment: dt.datetime) -> str:
        """``moment`` (aware; naive means UTC) as the server writes its timestamps."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(self.server_timezone).strftime(self.timestamp_format)

    def full_start(self) -> dt.datetime:
        """``full_since`` as an aware UTC moment."""
        return self.full_since.replace(tzinfo=self.server_timezone).astimezone(UTC)

    def fields_to_select(self) -> str | None:
        if not self.select:
            return None
        names = list(self.select)
        if self.key_field and self.key_field not in names:
            names.append(self.key_field)  # the key is what mapping and photos hang on
        return ",".join(names)


@dataclass
class PageSummary:
    """What paging needs to know of a reply stored on disk."""

    rows: int
    count: int | None
    maxrows: bool
    reply_code: int
    first_row: tuple | None = None


@dataclass
class SearchResult:
    files: list[PayloadFile]
    paging: str
    announced: int | None = None   # what the server said the search holds (COUNT), when it said
    received: int = 0              # rows that arrived
    ended: str = ""                # how paging ended, for the message of a short pull


class OffsetRefused(SourceConfigError):
    """The server does not page with Offset (an error reply, or the first page again)."""


def build_query(settings: SearchSettings, since: dt.datetime | None) -> str:
    """The DMQL2 query of a run: the source's query, AND the modification window when incremental."""
    if since is None:
        return settings.query or since_clause(settings, settings.full_start())
    return combine(settings.query, since_clause(settings, since))


def since_clause(settings: SearchSettings, since: dt.datetime) -> str:
    return f"({settings.modification_field}={settings.stamp(since)}+)"


def window_clause(settings: SearchSettings, lo: dt.datetime, hi: dt.datetime) -> str:
    return f"({settings.modification_field}={settings.stamp(lo)}-{settings.stamp(hi)})"


def combine(*clauses: str | None) -> str:
    """AND DMQL2 clauses with ``,``; a clause with a top-level OR is parenthesized first."""
    return ",".join(_grouped(clause) for clause in clauses if clause)


def _grouped(clause: str) -> str:
    depth = 0
    for index, character in enumerate(clause):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and (character == "|" or clause[index:index + 4].upper() == " OR "):
            return f"({clause})"
    return clause


def search(session: RetsSession, settings: SearchSettings, workdir: Path, *, since: dt.datetime | None,
           until: dt.datetime, paging: str | None = None) -> SearchResult:
    """Run the source's search into page files in ``workdir``; ``paging`` overrides ``settings.paging``."""
    return _Pager(session, settings, _PageStore(workdir)).run(since, until, paging or settings.paging)


class _PageStore:
    """Numbers the page files (page-0001.xml, ...) and describes the ones kept."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.files: list[PayloadFile] = []
        self._number = 0

    def next_path(self) -> Path:
        return self.workdir / f"page-{self._number + 1:04d}.xml"

    def keep(self, path: Path, summary: PageSummary, meta: dict[str, Any]) -> None:
        self._number += 1
        described = {"page": self._number, "rows": summary.rows, "count": summary.count,
                     "maxrows": summary.maxrows, "reply_code": summary.reply_code, **meta}
        self.files.append(PayloadFile(path=path, size=path.stat().st_size, format="rets-compact", meta=described))

    def discard_all(self) -> None:
        for payload_file in self.files:
            payload_file.path.unlink(missing_ok=True)
        self.files.clear()
        self._number = 0


@dataclass
class _Pager:
    session: RetsSession
    settings: SearchSettings
    store: _PageStore
    limit: int = 0
    progress: Callable[[str], None] = field(init=False)

    def __post_init__(self) -> None:
        self.limit = self.settings.page_size
        self.progress = self.session.progress

    def run(self, since: dt.datetime | None, until: dt.datetime, paging: str) -> SearchResult:
        if paging != "window":
            try:
                return self.by_offset(build_query(self.settings, since))
            except OffsetRefused as refused:
                if paging == "offset":
                    raise
                self.progress(f"{refused}; paging by time windows instead")
                self.store.discard_all()
        start = since if since is not None else self.settings.full_start()
        return self.by_window(start, until + SLACK)

    # -- offset paging --------------------------------------------------------------------------

    def by_offset(self, query: str) -> SearchResult:
        offset, received, first = 1, 0, None
        while True:
            summary, path = self._offset_page(query, offset)
            if offset == 1:
                first = summary
            elif summary.first_row is not None and summary.first_row == first.first_row:
                path.unlink(missing_ok=True)
                raise OffsetRefused(f"{self._where()}: the server ignored Offset={offset} (the first page came again)")
            received += summary.rows
            self._keep_or_drop(path, summary, {"offset": offset, "query": query}, first_page=offset == 1)
            if not self._more(summary, received, first.count):
                ended = f"paging ended at Offset={offset} with reply {summary.reply_code} and {summary.rows} rows"
                return SearchResult(self.store.files, "offset", first.count, received, ended)
            offset += summary.rows

    def _offset_page(self, query: str, offset: int) -> tuple[PageSummary, Path]:
        params = self._params(query, offset=offset if offset > 1 else None, count="1" if offset == 1 else None)
        path = self.store.next_path()
        try:
            return self._fetch(params, path), path
        except (SourceConfigError, FeedNotFound) as exc:
            if offset == 1:
                raise
            path.unlink(missing_ok=True)
            raise OffsetRefused(f"{self._where()}: the server refused Offset={offset} ({exc})") from exc

    def _more(self, summary: PageSummary, received: int, count: int | None) -> bool:
        if summary.rows == 0:
            return False
        if summary.maxrows:
            return True
        if count is not None:
            return received < count
        return summary.rows >= self.limit

    # -- window paging --------------------------------------------------------------------------

    def by_window(self, start: dt.datetime, end: dt.datetime) -> SearchResult:
        result = SearchResult(self.store.files, "window", announced=0)
        pending = [(_whole(start), _whole(end))]
        while pending:
            lo, hi = pending.pop()
            outcome = self._window(lo, hi, result)
            if outcome == "split":
                pending.extend(reversed(self._halves(lo, hi)))
            elif outcome == "again":
                pending.append((lo, hi))
        return result

    def _window(self, lo: dt.datetime, hi: dt.datetime, result: SearchResult) -> str:
        """Fetch one window if it fits a page: "done", "split" it, or try it "again" (smaller limit).

        A window fetched adds its count (what the server announced for it) and its rows to ``result``.
        """
        query = combine(self.settings.query, window_clause(self.settings, lo, hi))
        count = self._count(query)
        if count == 0:
            return "done"
        if count > self.limit:
            return "split"
        path = self.store.next_path()
        summary = self._fetch(self._params(query, count="1"), path)
        if not summary.maxrows:
            self._keep_or_drop(path, summary, {"window": [lo.isoformat(), hi.isoformat()], "query": query})
            result.announced += count
            result.received += summary.rows
            if summary.rows < count:
                result.ended = f"the window {self.settings.stamp(lo)} to {self.settings.stamp(hi)} came short"
            return "done"
        path.unlink(missing_ok=True)
        if 0 < summary.rows < self.limit:
            self.limit = summary.rows  # the server caps pages below page_size: learn its cap
            return "again"
        return "split"

    def _halves(self, lo: dt.datetime, hi: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        if hi - lo < ONE_SECOND:
            raise SourceConfigError(
                f"{self._where()}: more than {self.limit} records have {self.settings.modification_field} "
                f"{self.settings.stamp(lo)}; a page cannot hold them and the server refuses Offset "
                f"(raise page_size, up to the server's limit)"
            )
        middle = lo + dt.timedelta(seconds=(hi - lo).total_seconds() // 2)
        return [(lo, middle), (middle + ONE_SECOND, hi)]

    def _count(self, query: str) -> int:
        params = self._params(query, count="2")
        params.pop("Limit", None)

        def attempt() -> int:
            with self.session.transaction("Search", params, method=self.settings.method) as response:
                with transport_errors(self._where()):
                    body = response.content
            reader = CompactReader(io.BytesIO(body), where=self._where())
            for _ in reader.rows():
                pass
            if reader.count is None:
                raise SourceConfigError(f"{self._where()}: the server answered Count=2 without a COUNT")
            return reader.count

        return self.session.with_relogin(attempt)

    # -- one page -------------------------------------------------------------------------------

    def _params(self, query: str, *, offset: int | None = None, count: str | None = None) -> dict[str, str]:
        settings = self.settings
        params = {
            "SearchType": settings.resource, "Class": settings.class_name, "QueryType": "DMQL2",
            "Query": query, "Format": settings.format, "StandardNames": "0", "Limit": str(self.limit),
        }
        optional = {"Offset": str(offset) if offset else None, "Count": count, "Select": settings.fields_to_select()}
        params.update({name: value for name, value in optional.items() if value})
        return params

    def _fetch(self, params: dict[str, str], path: Path) -> PageSummary:
        """Stream one reply to ``path`` unchanged, then read it back for what paging needs."""
        def attempt() -> PageSummary:
            with self.session.transaction("Search", params, stream=True, method=self.settings.method) as response:
                with transport_errors(self._where()), open(path, "wb") as out:
                    for chunk in response.iter_content(CHUNK_SIZE):
                        out.write(chunk)
            return summarize(path, self._where())

        return self.session.with_relogin(attempt)

    def _keep_or_drop(self, path: Path, summary: PageSummary, meta: dict[str, Any], first_page: bool = False) -> None:
        # An empty reply is kept only as the first page of a run, so an empty result is still on record.
        if summary.rows or (first_page and not self.store.files):
            self.store.keep(path, summary, meta)
            self.progress(f"RETS page {len(self.store.files)}: {summary.rows} rows")
        else:
            path.unlink(missing_ok=True)

    def _where(self) -> str:
        return f"{self.session.where('Search')} {self.settings.resource}:{self.settings.class_name}"


def summarize(path: Path, where: str) -> PageSummary:
    """Read a stored reply once: its rows, COUNT, MAXROWS and first row; error codes raise."""
    with open(path, "rb") as stream:
        reader = CompactReader(stream, where=where)
        first = None
        for row in reader.rows():
            if first is None:
                first = tuple(row)
    code = reader.reply.code if reader.reply else 0
    return PageSummary(reader.rows_read, reader.count, reader.maxrows, code, first)


def _whole(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(microsecond=0)
