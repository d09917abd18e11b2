"""HTTP downloads (download kind ``http``), with requests.

Spec keys, with their defaults:

``url`` or ``urls`` (one URL or a list; required)
``username`` and ``password``: HTTP Basic; or ``token``: ``Authorization: Bearer ...``
``headers`` ({}): more request headers, e.g. an API key (they win over ours)
``timeout`` (60): seconds to wait for each read; ``connect_timeout`` (15)
``verify_tls`` (true); ``ca_file`` (none): a PEM file of certificates to trust instead
``conditional`` (true): send ``If-None-Match`` / ``If-Modified-Since`` with the ETag and
    Last-Modified the previous run kept; a 304 leaves that URL out of the payload

Each URL is streamed to the work directory in 1 MiB chunks, exactly as sent: a gzip
``Content-Encoding`` is kept (the parsers recognise gzip by its first bytes), and the size is
checked against ``Content-Length`` when the server gives one. When every URL answers 304 the
payload is empty and ``not_modified``; otherwise it holds the URLs that changed.

State kept between runs: ``{"urls": {url: {"etag": ..., "last_modified": ...}}}``.
``FetchRequest.since`` is not used: a URL names a whole document, and the validators already
say whether it changed.

No retries here (the balancer retries): refused or timed-out connections, cut transfers,
408/425/429 and 5xx are SourceUnavailable (with the server's Retry-After in the message);
401/403 are SourceAuthError; 404/410 are FeedNotFound; an untrusted certificate and other
4xx replies are SourceConfigError.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from pipeline.connectors import FetchRequest, Payload, PayloadFile, retry_after_seconds
from pipeline.connectors import _spec
from pipeline.connectors._files import local_path
from pipeline.errors import (
    FeedNotFound,
    PipelineError,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
)

CHUNK_SIZE = 1 << 20
KEPT_ENCODINGS = ("", "identity", "gzip", "x-gzip")  # stored as sent; anything else is decoded
TRANSIENT = {408, 425, 429}


@dataclass(frozen=True)
class HttpSettings:
    """A download spec, checked."""

    urls: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    timeout: tuple[float, float] = (15.0, 60.0)
    verify: bool | str = True
    conditional: bool = True

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "HttpSettings":
        urls = _spec.strings(spec, "urls", None) or _spec.strings(spec, "url")
        return cls(
            urls=urls,
            headers=_headers(spec),
            auth=_basic_auth(spec),
            timeout=(_spec.number(spec, "connect_timeout", 15.0), _spec.number(spec, "timeout", 60.0)),
            verify=_spec.text(spec, "ca_file", None) or _spec.flag(spec, "verify_tls", True),
            conditional=_spec.flag(spec, "conditional", True),
        )


class HttpConnector:
    """GETs one or more URLs, conditionally, streaming each to a file.

    ``session`` is for tests and for sharing a connection pool; by default every fetch opens
    its own ``requests.Session`` and closes it.
    """

    kind: ClassVar[str] = "http"

    def __init__(self, session: requests.Session | None = None):
        self._session = session

    def fetch(self, request: FetchRequest) -> Payload:
        settings = HttpSettings.from_spec(request.spec)
        previous = _previous(request.state)
        names = _local_names(settings.urls)
        with self._opened() as session:
            results = [
                _get(session, settings, url, name, previous.get(url, {}), request)
                for url, name in zip(settings.urls, names)
            ]
        files = [file for _, file, _ in results if file is not None]
        state = {"urls": {url: validators for url, _, validators in results}}
        # Some URLs answering 304 leave a partial payload: not a snapshot to remove listings by.
        return Payload(files=files, state=state, not_modified=not files, complete=len(files) == len(results))

    @contextmanager
    def _opened(self) -> Iterator[requests.Session]:
        if self._session is not None:
            yield self._session
            return
        with requests.Session() as session:
            yield session


def _headers(spec: dict[str, Any]) -> dict[str, str]:
    extra = spec.get("headers") or {}
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise SourceConfigError(f"download.headers must be a table of strings, got {extra!r}")
    token = _spec.text(spec, "token", None)
    if token and spec.get("username"):
        raise SourceConfigError("download: give either token (Bearer) or username/password (Basic), not both")
    ours = {"Accept-Encoding": "gzip"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return ours | extra


def _basic_auth(spec: dict[str, Any]) -> tuple[str, str] | None:
    username = _spec.text(spec, "username", None)
    return (username, _spec.text(spec, "password", "")) if username else None


def _previous(state: dict[str, Any]) -> dict[str, dict[str, str]]:
    urls = state.get("urls") if isinstance(state, dict) else None
    return urls if isinstance(urls, dict) else {}


def _local_names(urls: tuple[str, ...]) -> list[str]:
    """A file name per URL: the last path segment, numbered when there are several URLs."""
    names = [posixpath.basename(unquote(urlsplit(url).path)) or "download" for url in urls]
    return names if len(urls) == 1 else [f"{i:02d}-{name}" for i, name in enumerate(names, 1)]


def _conditional_headers(validators: dict[str, str]) -> dict[str, str]:
    headers = {}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    return headers


def _get(session: requests.Session, settings: HttpSettings, url: str, name: str,
         validators: dict[str, str], request: FetchRequest) -> tuple[str, PayloadFile | None, dict[str, str]]:
    """One GET: (url, the file written or None on 304, the validators to keep)."""
    headers = settings.headers | (_conditional_headers(validators) if settings.conditional else {})
    with _translated(url):
        with session.get(url, headers=headers, auth=settings.auth, timeout=settings.timeout,
                         verify=settings.verify, stream=True) as response:
            _check_status(response, url)
            kept = _validators(response, validators)
            if response.status_code == 304:
                request.progress(f"{url}: not modified")
                return url, None, kept
            request.progress(f"downloading {url}")
            return url, _save(response, url, local_path(request.workdir, name)), kept


def _check_status(response: requests.Response, url: str) -> None:
    code = response.status_code
    if code < 400:
        return
    message = f"{url}: HTTP {code} {response.reason or ''}".rstrip()
    if code in (401, 403):
        raise SourceAuthError(message)
    if code in (404, 410):
        raise FeedNotFound(message)
    if code in TRANSIENT or code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise SourceUnavailable(message + (f" (Retry-After: {retry_after})" if retry_after else ""),
                                retry_after=retry_after_seconds(retry_after))
    raise SourceConfigError(message)


def _validators(response: requests.Response, previous: dict[str, str]) -> dict[str, str]:
    """ETag and Last-Modified to send next time; a 304 may omit them, then the old ones stay."""
    fresh = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
    if response.status_code == 304:
        return {**previous, **{k: v for k, v in fresh.items() if v}}
    return {k: v for k, v in fresh.items() if v}


def _save(response: requests.Response, url: str, path: Path) -> PayloadFile:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decode = encoding not in KEPT_ENCODINGS
    with open(path, "wb") as out:
        for chunk in response.raw.stream(CHUNK_SIZE, decode_content=decode):
            out.write(chunk)
    size = path.stat().st_size
    _check_length(response, url, size, decode)
    meta = {
        "url": url, "final_url": response.url, "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
        "content_type": response.headers.get("Content-Type"),
        "content_encoding": None if decode else encoding or None, "size": size,
    }
    return PayloadFile(path=path, size=size, meta=meta)


def _check_length(response: requests.Response, url: str, size: int, decoded: bool) -> None:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and not decoded and int(declared) != size:
        raise SourceUnavailable(f"{url}: got {size} bytes, Content-Length said {declared} (transfer cut)")


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """requests' and urllib3's errors, as pipeline errors."""
    try:
        yield
    except PipelineError:
        raise
    except requests.exceptions.SSLError as exc:
        raise _tls_error(url, exc) from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, requests.exceptions.TooManyRedirects) as exc:
        raise SourceConfigError(f"{url}: {exc}") from exc
    except requests.exceptions.Timeout as exc:
        raise SourceUnavailable(f"{url}: timed out ({exc})") from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise SourceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc


def _tls_error(url: str, exc: requests.exceptions.SSLError) -> PipelineError:
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "hostname" in str(exc).lower():
        return SourceConfigError(f"{url}: TLS certificate not trusted ({exc}); name its CA in download.ca_file")
    return SourceUnavailable(f"{url}: TLS failed: {exc}")


CONNECTOR = HttpConnector()
