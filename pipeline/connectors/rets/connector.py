"""The RETS connector (download kind ``rets``): log in, search, page into files, log out.

Download spec keys, with their defaults:

``url`` (required)
    the Login URL; the other transaction URLs come from the login reply.
``username`` (required), ``password`` ("")
``user_agent`` ("mlsfeeds/0.1"), ``user_agent_password`` (none)
    with a user-agent password, every request carries RETS-UA-Authorization.
``rets_version`` ("RETS/1.7.2")
``auth`` ("auto")
    "digest", "basic", or "auto": whatever the server's 401 challenge asks (Digest preferred).
``resource`` ("Property"), ``class`` (required)
``query`` (every record: ``(<modification_field>=<full_since>+)``)
    a DMQL2 query, e.g. ``(Status=|A,P)``; incremental runs AND it with the modification window.
``select`` (none: every field)
    a field name or a list; the key field is added when missing.
``format`` ("COMPACT-DECODED")
    or "COMPACT" (lookup codes, for the source's ``[values]`` maps to translate).
``page_size`` (2500)
``modification_field`` ("ModificationTimestamp")
``key_field`` (the resource's KeyField from the metadata, else "ListingKey")
``server_timezone`` ("UTC")
    the zone of the server's timestamps (an IANA name); windows are written in it.
``timestamp_format`` ("%Y-%m-%dT%H:%M:%S")
    how a window's timestamps are written (strftime).
``full_since`` ("1900-01-01T00:00:00")
    the oldest modification time a full run asks for (server time).
``paging`` ("auto")
    "offset", "window" or "auto" (see :mod:`pipeline.connectors.rets.search`).
``method`` ("GET")
    or "POST" for Search, for servers (or queries) that need it.
``timeout`` (60)
    seconds, for connecting and for each read of every request.

Each Search reply is stored unchanged as ``page-0001.xml``, ``page-0002.xml``... (format
``rets-compact``), its meta saying the page number, rows, COUNT, MAXROWS and the query or window.
Fewer rows than the server's COUNT announced (a server that answers 20201 in the middle of
paging, a window that comes short) make the payload ``incomplete``: a full run then removes
nothing. A server that sends no COUNT cannot be checked this way.
An incremental run that finds nothing is ``not_modified``. The state kept for the next run: ``window_end`` (when this run started, UTC: the next incremental
run's ``since`` can start there), ``paging`` (the mode that worked) and ``key_field``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from pipeline.connectors import FetchRequest, Payload, _spec, shortfall
from pipeline.connectors.rets import metadata
from pipeline.connectors.rets.search import FORMATS, PAGING_MODES, SearchSettings, search
from pipeline.connectors.rets.session import AUTH_SCHEMES, LoginSettings, RetsSession
from pipeline.errors import SourceConfigError

DEFAULT_KEY_FIELD = "ListingKey"
HttpFactory = Callable[[], requests.Session]


@dataclass(frozen=True)
class RetsSettings:
    """A ``rets`` download spec, checked."""

    login: LoginSettings
    search: SearchSettings

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "RetsSettings":
        if spec.get("kind", "rets") != "rets":
            raise SourceConfigError(f"the RETS connector cannot fetch download kind {spec.get('kind')!r}")
        return cls(login=_login(spec), search=_search(spec))


class RetsConnector:
    """Downloads a RETS 1.7.2 search, page by page, into the work directory."""

    kind: ClassVar[str] = "rets"

    def __init__(self, http: requests.Session | HttpFactory = requests.Session):
        # A Session given is used as is (and left open); a factory makes one per fetch.
        self._http = http

    def fetch(self, request: FetchRequest) -> Payload:
        settings = RetsSettings.from_spec(request.spec)
        started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        http, owned = (self._http, False) if isinstance(self._http, requests.Session) else (self._http(), True)
        try:
            session = RetsSession(http, settings.login, request.progress)
            with session.opened():
                search_settings = _with_key_field(session, settings.search)
                result = search(session, search_settings, request.workdir, since=request.since,
                                until=started, paging=_paging(settings.search, request.state))
        finally:
            if owned:
                http.close()
        state = {"window_end": started.isoformat(), "paging": result.paging, "key_field": search_settings.key_field}
        nothing_new = request.since is not None and not any(f.meta["rows"] for f in result.files)
        incomplete = shortfall(request, "the RETS server", "COUNT", result.announced, result.received, result.ended)
        return Payload(files=result.files, state=state, not_modified=nothing_new, incomplete=incomplete,
                       announced=result.announced)


def _with_key_field(session: RetsSession, settings: SearchSettings) -> SearchSettings:
    if settings.key_field:
        return settings
    return replace(settings, key_field=metadata.key_field_or(session, settings.resource, DEFAULT_KEY_FIELD))


def _paging(settings: SearchSettings, state: dict[str, Any]) -> str:
    """The configured mode; "auto" starts where the last run ended up (window, if Offset failed)."""
    remembered = state.get("paging") if isinstance(state, dict) else None
    if settings.paging == "auto" and remembered == "window":
        return "window"
    return settings.paging


def _login(spec: dict[str, Any]) -> LoginSettings:
    url = _spec.text(spec, "url")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise SourceConfigError(f"download.url must be the RETS Login URL (http or https), got {url!r}")
    return LoginSettings(
        url=url,
        username=_spec.text(spec, "username"),
        password=_spec.text(spec, "password", ""),
        user_agent=_spec.text(spec, "user_agent", "mlsfeeds/0.1"),
        user_agent_password=_spec.text(spec, "user_agent_password", None),
        rets_version=_spec.text(spec, "rets_version", "RETS/1.7.2"),
        auth=_choice(spec, "auth", "auto", AUTH_SCHEMES),
        timeout=_spec.number(spec, "timeout", 60.0),
    )


def _search(spec: dict[str, Any]) -> SearchSettings:
    return SearchSettings(
        resource=_spec.text(spec, "resource", "Property"),
        class_name=_spec.text(spec, "class"),
        query=_spec.text(spec, "query", None),
        select=_spec.strings(spec, "select", None),
        format=_choice(spec, "format", "COMPACT-DECODED", FORMATS).upper(),
        page_size=_spec.integer(spec, "page_size", 2500, minimum=1),
        modification_field=_spec.text(spec, "modification_field", "ModificationTimestamp"),
        key_field=_spec.text(spec, "key_field", None),
        server_timezone=_zone(_spec.text(spec, "server_timezone", "UTC")),
        timestamp_format=_spec.text(spec, "timestamp_format", "%Y-%m-%dT%H:%M:%S"),
        full_since=_naive_time(_spec.text(spec, "full_since", "1900-01-01T00:00:00"), "full_since"),
        paging=_choice(spec, "paging", "auto", PAGING_MODES),
        method=_choice(spec, "method", "GET", ("GET", "POST")).upper(),
    )


def _choice(spec: dict[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _spec.text(spec, key, default)
    if value.lower() not in {a.lower() for a in allowed}:
        raise SourceConfigError(f"download.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value.lower() if key in ("auth", "paging") else value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceConfigError(f"download.server_timezone {name!r} is not an IANA time zone") from None


def _naive_time(value: str, key: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        raise SourceConfigError(f"download.{key} must be an ISO date-time, got {value!r}") from None
