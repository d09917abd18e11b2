"""The ``reso`` connector: a RESO Web API (OData v4) resource, page by page through ``@odata.nextLink``.

Each page is streamed to ``page-0001.json``, ``page-0002.json``... as received (an OData JSON
object whose ``value`` holds the records), ``PayloadFile(format="odata")``.

Download spec (``kind = "reso"``):

=================================  ===============================================================
``url``                            the service root, e.g. ``https://api.example.com/odata``; required
``resource``                       the entity set (default ``Property``)
``token``                          a static bearer token, or:
``client_id``, ``client_secret``,  OAuth2 client credentials: a token is fetched from ``token_url``
``token_url``, ``scope``           (form-encoded POST; ``scope`` optional) before the first request,
                                   and again once when a request is answered 401
``token_auth``                     how the client credentials go to ``token_url``: ``"body"``
                                   (form fields, the default) or ``"basic"`` (HTTP Basic)
``filter``                         an extra ``$filter`` expression, ANDed with the incremental one
``select``                         ``$select``: a field name or a list of them
``expand``                         ``$expand`` (default ``"Media"``; ``""`` for none)
``page_size``                      sent as ``$top`` and as ``Prefer: odata.maxpagesize``: RESO
                                   servers take ``$top`` as the page size and still send nextLinks
``orderby``                        ``$orderby`` (optional)
``timestamp_field``                the field incremental runs filter on (default
                                   ``ModificationTimestamp``): ``ModificationTimestamp ge
                                   2026-01-01T00:00:00Z``, at/after ``since`` as FetchRequest says
``timeout``                        seconds to connect and between bytes (default 60)
``max_pages``                      a nextLink chain longer than this fails the run (default 100000)
``count``                          ask ``$count=true`` (default true): the server's
                                   ``@odata.count`` on the first page is what the pull must hold
=================================  ===============================================================

Completeness: when the first page carries ``@odata.count``, a pull whose pages hold fewer
records (a page without the ``@odata.nextLink`` it needed, a short page) is ``incomplete``: a
full run then removes nothing. Without a count the chain of nextLinks is all there is to trust.

Errors: 401 after a token refresh (or with a static token) and 403 -> SourceAuthError; 404 ->
FeedNotFound; 408, 429, 5xx, timeouts, refused or dropped connections -> SourceUnavailable; 400
and other 4xx -> SourceConfigError (the spec's filter or select is wrong); a page that is not a
JSON object, or a nextLink seen before -> FeedFormatError.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urljoin

import requests

from pipeline.connectors import FetchRequest, Payload, PayloadFile, _spec, retry_after_seconds, shortfall
from pipeline.errors import (
    FeedFormatError, FeedNotFound, PipelineError, SourceAuthError, SourceConfigError, SourceUnavailable,
)

CHUNK = 1 << 20


@dataclass(frozen=True)
class ResoSpec:
    """The ``[download]`` table of a reso source; see the module docstring."""

    url: str
    resource: str = "Property"
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    scope: str | None = None
    token_auth: str = "body"
    filter: str | None = None
    select: tuple[str, ...] | None = None
    expand: str | None = "Media"
    page_size: int | None = None
    orderby: str | None = None
    timestamp_field: str = "ModificationTimestamp"
    timeout: float = 60
    max_pages: int = 100_000
    count: bool = True

    def __post_init__(self):
        if not self.token and not (self.client_id and self.client_secret and self.token_url):
            raise SourceConfigError("reso: give a token, or client_id, client_secret and token_url")
        if self.token_auth not in ("body", "basic"):
            raise SourceConfigError(f'download.token_auth must be "body" or "basic", got {self.token_auth!r}')

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ResoSpec:
        """The ``[download]`` table, checked."""
        return cls(
            url=_spec.text(spec, "url"),
            resource=_spec.text(spec, "resource", "Property"),
            token_auth=_spec.text(spec, "token_auth", "body"),
            **{key: _spec.text(spec, key, None) for key in _OPTIONAL_TEXT},
            select=_spec.strings(spec, "select", None),
            expand=_expand(spec),
            page_size=_spec.integer(spec, "page_size", None, minimum=1),
            timestamp_field=_spec.text(spec, "timestamp_field", "ModificationTimestamp"),
            timeout=_spec.number(spec, "timeout", 60.0),
            max_pages=_spec.integer(spec, "max_pages", 100_000, minimum=1),
            count=_spec.flag(spec, "count", True),
        )

    def first_url(self, since: dt.datetime | None) -> str:
        """The URL of the first page: the resource with its query options."""
        options = {
            "$filter": _filter(self.filter, self.timestamp_field, since),
            "$select": ",".join(self.select) if self.select else None,
            "$expand": self.expand,
            "$orderby": self.orderby,
            "$top": self.page_size,
            "$count": "true" if self.count else None,
        }
        query = urlencode({k: v for k, v in options.items() if v}, quote_via=quote, safe="$,()'/:")
        return f"{self.url.rstrip('/')}/{self.resource}" + (f"?{query}" if query else "")


_OPTIONAL_TEXT = ("token", "client_id", "client_secret", "token_url", "scope", "filter", "orderby")


def _expand(spec: dict[str, Any]) -> str | None:
    """``$expand``: Media unless the spec says otherwise; ``""`` for none."""
    value = spec.get("expand", "Media")
    if value is not None and not isinstance(value, str):
        raise SourceConfigError(f"download.expand must be a string, got {value!r}")
    return value or None


def _filter(extra: str | None, timestamp_field: str, since: dt.datetime | None) -> str | None:
    incremental = f"{timestamp_field} ge {_odata_timestamp(since)}" if since else None
    if extra and incremental:
        return f"({extra}) and {incremental}"
    return extra or incremental


def _odata_timestamp(value: dt.datetime) -> str:
    utc = value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    text = utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class ResoConnector:
    """Fetches a RESO Web API resource; see the module docstring for the spec."""

    kind: ClassVar[str] = "reso"

    def fetch(self, request: FetchRequest) -> Payload:
        """Follows ``@odata.nextLink`` from the first page to the last; one file per page."""
        spec = ResoSpec.from_spec(request.spec)
        with requests.Session() as http:
            client = _Client(http, spec)
            files, announced, received = _download(client, spec, request)
        incomplete = shortfall(request, "the RESO server", "@odata.count", announced, received,
                               f"the last page, {files[-1].meta['url']}, has no @odata.nextLink")
        return Payload(files, incomplete=incomplete, announced=announced)


def _download(client: _Client, spec: ResoSpec, request: FetchRequest) -> tuple[list[PayloadFile], int | None, int]:
    """The pages, the count the first one announced (or None) and the records they held."""
    url, seen, files, announced, received = spec.first_url(request.since), set(), [], None, 0
    for number in range(1, spec.max_pages + 1):
        path = request.workdir / f"page-{number:04d}.json"
        size = client.save(url, path)
        files.append(PayloadFile(path=path, size=size, format="odata", meta={"page": number, "url": url}))
        request.progress(f"page {number}: {size} bytes")
        seen.add(url)
        page = _page(path, url)
        received += page.records
        announced = page.count if number == 1 else announced
        url = page.next_link
        if url is None:
            return files, announced, received
        if url in seen:
            raise FeedFormatError(f"@odata.nextLink points back to {url}", where=path.name)
    raise FeedFormatError(f"paging did not end after {spec.max_pages} pages")


@dataclass(frozen=True)
class _Page:
    next_link: str | None
    records: int
    count: int | None


def _page(path: Path, url: str) -> _Page:
    """What paging needs of a stored page: its nextLink (absolute), its records, @odata.count."""
    try:
        with path.open("rb") as page:
            body = json.load(page)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedFormatError(f"not JSON: {exc}", where=path.name) from exc
    if not isinstance(body, dict):
        raise FeedFormatError("not an OData JSON object", where=path.name)
    link, values, count = body.get("@odata.nextLink"), body.get("value"), body.get("@odata.count")
    return _Page(urljoin(url, link) if link else None, len(values) if isinstance(values, list) else 0,
                 count if isinstance(count, int) and not isinstance(count, bool) else None)


class _Client:
    """GETs with the bearer token; fetches (and on a 401, refetches) OAuth2 tokens."""

    def __init__(self, http: requests.Session, spec: ResoSpec):
        self._http, self._spec = http, spec
        self._token = spec.token
        self._headers = {"Accept": "application/json"}
        if spec.page_size:
            self._headers["Prefer"] = f"odata.maxpagesize={spec.page_size}"

    def save(self, url: str, path: Path) -> int:
        """Streams the page at ``url`` to ``path``; returns its size in bytes."""
        try:
            with self._get(url) as response, path.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
            return path.stat().st_size
        except requests.RequestException as exc:
            raise SourceUnavailable(f"reso: GET {url}: {exc}") from exc

    def _get(self, url: str) -> requests.Response:
        fresh = self._token is None
        response = self._send(url)
        if response.status_code == 401 and self._spec.client_id and not fresh:
            response.close()
            self._token = None
            response = self._send(url)
        if response.status_code != 200:
            with response:
                raise _status_error(response, f"reso: GET {url}")
        return response

    def _send(self, url: str) -> requests.Response:
        if self._token is None:
            self._token = self._fetch_token()
        headers = {**self._headers, "Authorization": f"Bearer {self._token}"}
        return self._http.get(url, headers=headers, stream=True, timeout=self._spec.timeout)

    def _fetch_token(self) -> str:
        spec = self._spec
        credentials = {"client_id": spec.client_id, "client_secret": spec.client_secret}
        form = {"grant_type": "client_credentials", **({"scope": spec.scope} if spec.scope else {})}
        basic = (spec.client_id, spec.client_secret) if spec.token_auth == "basic" else None
        try:
            response = self._http.post(spec.token_url, data=form if basic else {**form, **credentials},
                                       auth=basic, timeout=spec.timeout)
        except requests.RequestException as exc:
            raise SourceUnavailable(f"reso: token endpoint {spec.token_url}: {exc}") from exc
        if response.status_code in (400, 401):
            raise SourceAuthError(f"reso: token endpoint {spec.token_url} refused the client: {_detail(response)}")
        if response.status_code != 200:
            raise _status_error(response, f"reso: token endpoint {spec.token_url}")
        return _access_token(response, spec.token_url)


def _access_token(response: requests.Response, token_url: str) -> str:
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        raise FeedFormatError("the token endpoint sent no access_token", where=token_url)
    return token


def _status_error(response: requests.Response, what: str) -> PipelineError:
    status = response.status_code
    message = f"{what}: HTTP {status} {_detail(response)}".rstrip()
    if status in (401, 403):
        return SourceAuthError(message)
    if status in (404, 410):
        return FeedNotFound(message)
    if status in (408, 429) or status >= 500:
        retry_after = response.headers.get("Retry-After")
        return SourceUnavailable(message + (f" (Retry-After: {retry_after})" if retry_after else ""),
                                 retry_after=retry_after_seconds(retry_after))
    return SourceConfigError(message)


def _detail(response: requests.Response) -> str:
    """The OData or OAuth error message of a reply, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")
    return str(body.get("error_description") or error or "")


CONNECTOR = ResoConnector()
