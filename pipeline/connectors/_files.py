"""Which remote files a file-server connector (ftp, ftps, sftp) downloads, and what it remembers.

Spec keys, with their defaults:

``pattern``
    a glob (``listings_*.txt``) or a list of globs, matched case-sensitively against the file
    names in ``directory``; required.
``newest_first`` (true)
    order by modification time, newest first (then by name); false: oldest first.
``max_files`` (none)
    at most this many files per run.
``only_new`` (true)
    skip files an earlier successful run fetched, unless their size or modification time
    changed since.
``incremental_pattern`` (none)
    on incremental runs (``FetchRequest.since`` set) use this glob instead of ``pattern``,
    taking every new file oldest first, without ``max_files``: the MLS's change files are
    applied in the order they were written. No change file at all is "not modified" there.
``since_margin_seconds`` (86400)
    on incremental runs, a file whose modification time is more than this before ``since``
    is skipped. The margin is wide on purpose: servers that report local time as UTC are off
    by up to 14 hours, and ``only_new`` already skips what was fetched. Files without a
    known modification time are never skipped this way.
``missing_ok`` (false)
    when nothing matches the pattern, return a not-modified payload instead of FeedNotFound
    (for a feed whose change files appear only when something changed).

The rule, in order:

1. keep the files that match a pattern;
2. newest first: take the ``max_files`` newest of those, then drop the ones already fetched
   (and, on incremental runs, the ones older than ``since``). An older file never stands in for
   a newer one already fetched: "the latest full file" stays the latest.
3. oldest first: drop the ones already fetched or too old, then take the ``max_files`` oldest,
   so a backlog drains ``max_files`` per run.

State kept between runs: ``{"files": {name: [size, mtime ISO-8601 UTC or null]}}``: the files
fetched so far that are still on the server (entries of files that were removed are dropped, so
a file put back is fetched again).
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pipeline.connectors import Payload, PayloadFile
from pipeline.connectors import _spec
from pipeline.errors import FeedNotFound, SourceConfigError, SourceUnavailable

DEFAULT_SINCE_MARGIN = 86400
_OLDEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class RemoteFile:
    """A file as the server lists it."""

    name: str
    size: int | None = None
    mtime: dt.datetime | None = None  # aware, UTC

    @property
    def signature(self) -> list[Any]:
        """What the state remembers of a fetched file: a change in either means a new file."""
        return [self.size, self.mtime.isoformat() if self.mtime else None]


@dataclass(frozen=True)
class FileRules:
    """The selection settings of one run (see the module docstring)."""

    patterns: tuple[str, ...]
    newest_first: bool = True
    max_files: int | None = None
    only_new: bool = True
    missing_ok: bool = False
    since: dt.datetime | None = None
    since_margin: dt.timedelta = dt.timedelta(seconds=DEFAULT_SINCE_MARGIN)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], since: dt.datetime | None = None) -> "FileRules":
        """The rules for a full run, or for an incremental one when ``since`` is given."""
        incremental = _spec.strings(spec, "incremental_pattern", None) if since else None
        return cls(
            patterns=incremental or _spec.strings(spec, "pattern"),
            newest_first=False if incremental else _spec.flag(spec, "newest_first", True),
            max_files=None if incremental else _spec.integer(spec, "max_files", None, minimum=1),
            only_new=_spec.flag(spec, "only_new", True),
            missing_ok=bool(incremental) or _spec.flag(spec, "missing_ok", False),
            since=since if since is None or since.tzinfo else since.replace(tzinfo=dt.timezone.utc),
            since_margin=dt.timedelta(seconds=_spec.integer(spec, "since_margin_seconds", DEFAULT_SINCE_MARGIN)),
        )

    def matches(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class Selection:
    """The outcome of applying the rules to a listing."""

    chosen: list[RemoteFile]   # to download, in order
    matched: list[RemoteFile]  # every listed file that matches a pattern
    state: dict[str, Any]      # to return in the payload once the chosen files are fetched
    complete: bool = True      # nothing the rules would take was skipped as already fetched


def select_files(listing: Iterable[RemoteFile], rules: FileRules, state: dict[str, Any]) -> Selection:
    """Apply ``rules`` to a directory listing, given the previous run's ``state``."""
    matched = _unique(f for f in listing if rules.matches(f.name))
    seen = _seen(state)
    ordered = sorted(matched, key=_order_key, reverse=rules.newest_first)
    if rules.newest_first:
        window = ordered[: rules.max_files]
        chosen = [f for f in window if _wanted(f, rules, seen)]
        complete = len(chosen) == len(window)
    else:
        chosen = [f for f in ordered if _wanted(f, rules, seen)][: rules.max_files]
        complete = len(chosen) == len(ordered)
    return Selection(chosen, matched, _next_state(seen, rules, matched, chosen), complete)


def empty_payload(selection: Selection, rules: FileRules, where: str) -> Payload:
    """The payload when nothing is to be downloaded; FeedNotFound if nothing even matched."""
    if not selection.matched and not rules.missing_ok:
        patterns = ", ".join(rules.patterns)
        raise FeedNotFound(f"no file matching {patterns} in {where}")
    return Payload(files=[], state=selection.state, not_modified=True)


def local_path(workdir: Path, remote_name: str) -> Path:
    """Where a remote file lands: its base name in ``workdir``, never outside it."""
    name = posixpath.basename(remote_name.replace("\\", "/"))
    if name in ("", ".", "..") or any(c in name for c in "\x00\r\n"):
        raise SourceConfigError(f"remote file name {remote_name!r} cannot be stored safely")
    return workdir / name


def payload_file(path: Path, remote: RemoteFile) -> PayloadFile:
    """Describe a downloaded file, after checking it has the size the server listed."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise SourceUnavailable(
            f"{remote.name}: got {size} bytes, the server listed {remote.size} (changed or cut during transfer)"
        )
    mtime = remote.mtime.isoformat() if remote.mtime else None
    return PayloadFile(path=path, size=size, meta={"remote": remote.name, "mtime": mtime, "size": size})


def _unique(files: Iterable[RemoteFile]) -> list[RemoteFile]:
    return list({f.name: f for f in files}.values())


def _order_key(remote: RemoteFile) -> tuple[dt.datetime, str]:
    return (remote.mtime or _OLDEST, remote.name)


def _seen(state: dict[str, Any]) -> dict[str, list[Any]]:
    files = state.get("files") if isinstance(state, dict) else None
    return {name: list(sig) for name, sig in files.items()} if isinstance(files, dict) else {}


def _wanted(remote: RemoteFile, rules: FileRules, seen: dict[str, list[Any]]) -> bool:
    if rules.only_new and seen.get(remote.name) == remote.signature:
        return False
    if rules.since and remote.mtime and remote.mtime < rules.since - rules.since_margin:
        return False
    return True


def _next_state(seen, rules: FileRules, matched: list[RemoteFile], chosen: list[RemoteFile]) -> dict[str, Any]:
    on_server = {f.name for f in matched}
    # Entries of other patterns (the full file, on an incremental run) are kept as they are.
    kept = {name: sig for name, sig in seen.items() if name in on_server or not rules.matches(name)}
    kept.update({f.name: f.signature for f in chosen})
    return {"files": kept}
