"""The ``soap`` connector: calls one operation of a source's SOAP service through zeep, page by page.

zeep reads the source's WSDL and builds each request; the reply is not deserialized by zeep
(``raw_response``): its body is written as received to ``page-0001.xml``, ``page-0002.xml``...
and only looked into for what paging needs (record count, next token, total pages) and for
faults. The parse step reads the records from those files: every page holds the whole SOAP
envelope, and the records are the elements named by the last step of ``paging.records_path``
(``Listing`` for ``Listings/Listing``): use that name as the parse spec's ``record``.

Download spec (``kind = "soap"``):

============================  ==================================================================
``wsdl``                      URL (or local path) of the WSDL; required
``operation``                 the operation to call, e.g. ``GetListings``; required
``service``, ``port``         which service and port of the WSDL (default: the first of each)
``endpoint``                  call this address instead of the WSDL's ``soap:address``
``username``, ``password``    credentials, sent as HTTP Basic unless ``wsse`` is set
``wsse``                      ``"text"`` or ``"digest"``: a WS-Security UsernameToken with
                              PasswordText or PasswordDigest instead of HTTP Basic
``arguments``                 static arguments of every call, e.g. ``{Class = "RES"}``
``since_arg``                 the argument that takes ``since`` on incremental runs (omitted on
                              full runs); passed as an xsd:dateTime in UTC, or as text
                              formatted with ``since_format`` (strftime, in UTC) when that is set
``timeout``                   seconds for the WSDL and for each call (default 120)
``paging``                    how the operation pages (below); default: one call, one page
============================  ==================================================================

``paging`` (paths are element local names joined by ``/`` or ``.``, matched anywhere below
the SOAP Body, so ``Listings/Listing`` finds ``.../GetListingsResult/Listings/Listing``):

- ``style``: ``"page"`` (page numbers), ``"offset"`` (record offsets), ``"token"`` (the reply
  carries the argument of the next call) or ``"none"`` (the default);
- ``records_path``: the record elements, e.g. ``Listings/Listing``; required for page and
  offset paging, which end on a page with fewer than ``page_size`` records;
- ``page_size`` (default 100) and ``size_arg`` (the argument that takes it; without one the
  service's own page size must be given as ``page_size``). Never more than the service returns
  per page: a service that silently caps it would make the first page look like the last;
- page: ``page_arg`` (required), ``first_page`` (default 1), ``total_pages_path`` (optional: the
  element giving the page count, which saves the final short or empty call);
- offset: ``offset_arg`` (required; ``page_arg`` is accepted for it), offsets start at 0;
- token: ``token_arg`` (required; omitted on the first call) and ``next_token_path`` (required:
  an absent or empty token ends paging; a token seen before is a FeedFormatError);
- ``max_pages`` (default 100000): a service that never stops paging fails the run;
- ``total_path`` (optional): the element giving how many records the whole result holds
  (e.g. ``TotalCount``), read from the first reply. Fewer records across the pages (a short
  page that ended paging early, empty pages) make the payload ``incomplete``: a full run then
  removes nothing. Without it, a short page is taken as the end.

A page with no records after the first is not written; no state is kept between runs
(incremental runs rely on ``since`` alone). Errors: a fault whose code or text is
about authentication, and HTTP 401/403, raise SourceAuthError; a ``Client`` fault
SourceConfigError; a ``Server`` fault that says to come back later (busy, timeout,
unavailable...) SourceUnavailable, another PermanentError; timeouts, refused connections,
HTTP 408/429/5xx SourceUnavailable (with the Retry-After the service sent); a WSDL or endpoint
answering 404 FeedNotFound.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.wsse.username import UsernameToken

from pipeline.connectors import FetchRequest, Payload, PayloadFile, _spec, retry_after_seconds, shortfall
from pipeline.errors import (
    FeedFormatError, FeedNotFound, PermanentError, PipelineError, SourceAuthError, SourceConfigError,
    SourceUnavailable,
)

STYLES = ("none", "page", "offset", "token")
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
_AUTH_CODE = re.compile(r"auth|login|credential|password|unauthori[sz]ed|forbidden|access.?denied|"
                        r"securitytoken|invalidsecurity", re.I)
_AUTH_TEXT = re.compile(r"authenticat|unauthori[sz]ed|not authori[sz]ed|access denied|invalid (user|login|"
                        r"credential|password)|bad (user|login|credential|password)|security token", re.I)
_TRANSIENT_TEXT = re.compile(r"time.?out|timed out|temporar|unavailable|busy|try again|maintenance|overload", re.I)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True)
class Paging:
    """How an operation pages; see the module docstring."""

    style: str = "none"
    records_path: str | None = None
    page_size: int = 100
    size_arg: str | None = None
    page_arg: str | None = None
    first_page: int = 1
    total_pages_path: str | None = None
    offset_arg: str | None = None
    token_arg: str | None = None
    next_token_path: str | None = None
    max_pages: int = 100_000
    total_path: str | None = None

    @classmethod
    def from_spec(cls, table: dict[str, Any]) -> Paging:
        """The ``paging`` table, checked."""
        return cls(
            style=_spec.text(table, "style", "none"),
            records_path=_spec.text(table, "records_path", None),
            page_size=_spec.integer(table, "page_size", 100, minimum=1),
            size_arg=_spec.text(table, "size_arg", None),
            page_arg=_spec.text(table, "page_arg", None),
            first_page=_spec.integer(table, "first_page", 1),
            total_pages_path=_spec.text(table, "total_pages_path", None),
            offset_arg=_spec.text(table, "offset_arg", None) or _spec.text(table, "page_arg", None),
            token_arg=_spec.text(table, "token_arg", None),
            next_token_path=_spec.text(table, "next_token_path", None),
            max_pages=_spec.integer(table, "max_pages", 100_000, minimum=1),
            total_path=_spec.text(table, "total_path", None),
        )

    def __post_init__(self):
        if self.style not in STYLES:
            raise SourceConfigError(f"soap paging.style {self.style!r}: use one of {', '.join(STYLES)}")
        for name in _REQUIRED[self.style]:
            if not getattr(self, name):
                raise SourceConfigError(f"soap paging style {self.style!r} needs paging.{name}")
        if self.total_path and not self.records_path:
            raise SourceConfigError("soap paging.total_path needs paging.records_path (the records to count)")

    def first(self) -> Any:
        """The cursor of the first call."""
        return {"page": self.first_page, "offset": 0}.get(self.style)

    def arguments(self, cursor: Any) -> dict[str, Any]:
        """The paging arguments of the call at ``cursor``."""
        size = {self.size_arg: self.page_size} if self.size_arg else {}
        if self.style == "page":
            return {self.page_arg: cursor, **size}
        if self.style == "offset":
            return {self.offset_arg: cursor, **size}
        if self.style == "token":
            return {self.token_arg: cursor, **size} if cursor else size
        return {}

    def next(self, cursor: Any, reply: _Reply) -> Any:
        """The cursor of the call after ``cursor``, or None when that was the last page."""
        if self.style == "token":
            return _next_token(cursor, reply.text(self.next_token_path))
        if self.style == "page" and self.total_pages_path and reply.text(self.total_pages_path):
            last = _whole_number(reply.text(self.total_pages_path), self.total_pages_path) + self.first_page - 1
            return cursor + 1 if cursor < last else None
        if self.style == "none" or reply.count(self.records_path) < self.page_size:
            return None
        return cursor + (1 if self.style == "page" else self.page_size)


_REQUIRED = {
    "none": (), "page": ("page_arg", "records_path"), "offset": ("offset_arg", "records_path"),
    "token": ("token_arg", "next_token_path"),
}


def _whole_number(text: str, path: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FeedFormatError(f"{path} is {text!r}, not a number of pages") from None


def _next_token(previous: str | None, token: str | None) -> str | None:
    if token and token == previous:
        raise FeedFormatError(f"the service sent the same paging token twice ({token!r})")
    return token or None


@dataclass(frozen=True)
class SoapSpec:
    """The ``[download]`` table of a soap source; see the module docstring."""

    wsdl: str
    operation: str
    service: str | None = None
    port: str | None = None
    endpoint: str | None = None
    username: str | None = None
    password: str | None = None
    wsse: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    since_arg: str | None = None
    since_format: str | None = None
    timeout: float = 120
    paging: Paging = field(default_factory=Paging)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SoapSpec:
        """The ``[download]`` table, checked."""
        return cls(
            wsdl=_spec.text(spec, "wsdl"),
            operation=_spec.text(spec, "operation"),
            **{key: _spec.text(spec, key, None) for key in _OPTIONAL_TEXT},
            arguments=_table(spec, "arguments"),
            timeout=_spec.number(spec, "timeout", 120.0),
            paging=Paging.from_spec(_table(spec, "paging")),
        )

    def since_value(self, since: dt.datetime | None) -> dict[str, Any]:
        """``{since_arg: value}`` for an incremental run, else nothing."""
        if since is None or not self.since_arg:
            return {}
        utc = since.astimezone(dt.timezone.utc) if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
        return {self.since_arg: utc.strftime(self.since_format) if self.since_format else utc}


_OPTIONAL_TEXT = ("service", "port", "endpoint", "username", "password", "wsse", "since_arg", "since_format")


def _table(spec: dict[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise SourceConfigError(f"download.{key} must be a table, got {value!r}")
    return value


class SoapConnector:
    """Fetches a SOAP feed page by page; see the module docstring for the spec."""

    kind: ClassVar[str] = "soap"

    def fetch(self, request: FetchRequest) -> Payload:
        """Calls the operation until the last page; one file per page, as received."""
        spec = SoapSpec.from_spec(request.spec)
        with requests.Session() as http:
            operation = _operation(spec, http)
            files, announced = _download(operation, spec, request)
        received = sum(f.meta.get("records", 0) for f in files)
        incomplete = shortfall(request, "the SOAP service", spec.paging.total_path, announced, received)
        return Payload(files, incomplete=incomplete, announced=announced)


def _download(operation, spec: SoapSpec, request: FetchRequest) -> tuple[list[PayloadFile], int | None]:
    """The pages, and the total the first one announced (``paging.total_path``), if any."""
    paging, cursor, files, announced = spec.paging, spec.paging.first(), [], None
    arguments = {**spec.arguments, **spec.since_value(request.since)}
    for number in range(1, paging.max_pages + 1):
        reply = _call(operation, {**arguments, **paging.arguments(cursor)})
        records = reply.count(paging.records_path) if paging.records_path else None
        if number == 1 and paging.total_path:
            announced = _announced(reply, paging.total_path)
        if number == 1 or records != 0:
            files.append(_write(request.workdir / f"page-{number:04d}.xml", reply, number, records))
            request.progress(f"page {number}: {records if records is not None else '?'} records")
        cursor = paging.next(cursor, reply)
        if cursor is None:
            return files, announced
    raise FeedFormatError(f"paging did not end after {paging.max_pages} pages")


def _announced(reply: _Reply, path: str) -> int | None:
    text = reply.text(path)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FeedFormatError(f"{path} is {text!r}, not a number of records") from None


def _write(path: Path, reply: _Reply, number: int, records: int | None) -> PayloadFile:
    path.write_bytes(reply.body)
    meta = {"page": number} if records is None else {"page": number, "records": records}
    return PayloadFile(path=path, size=len(reply.body), format="xml", meta=meta)


# -- zeep -----------------------------------------------------------------------------------------

def _operation(spec: SoapSpec, http: requests.Session):
    """The zeep operation proxy, bound to the chosen service, port and endpoint."""
    client = _client(spec, http)
    try:
        service = client.wsdl.services[spec.service] if spec.service else next(iter(client.wsdl.services.values()))
        port = service.ports[spec.port] if spec.port else next(iter(service.ports.values()))
        address = spec.endpoint or port.binding_options["address"]
        return client.create_service(port.binding.name, address)[spec.operation]
    except (KeyError, StopIteration, AttributeError, ValueError) as exc:
        raise SourceConfigError(f"soap: the WSDL has no {_wanted(spec)}: {exc}") from exc


def _wanted(spec: SoapSpec) -> str:
    where = " ".join(f"{k} {v!r}" for k, v in (("service", spec.service), ("port", spec.port)) if v)
    return f"operation {spec.operation!r}" + (f" in {where}" if where else "")


def _client(spec: SoapSpec, http: requests.Session) -> zeep.Client:
    wsse = _wsse(spec)
    if wsse is None and spec.username:
        http.auth = (spec.username, spec.password or "")
    transport = zeep.Transport(session=http, timeout=spec.timeout, operation_timeout=spec.timeout)
    settings = zeep.Settings(raw_response=True)
    try:
        return zeep.Client(spec.wsdl, transport=transport, wsse=wsse, settings=settings)
    except requests.HTTPError as exc:
        raise _status_error(exc.response, f"WSDL {spec.wsdl}") from exc
    except requests.RequestException as exc:
        raise SourceUnavailable(f"WSDL {spec.wsdl}: {exc}") from exc
    except FileNotFoundError as exc:
        raise FeedNotFound(f"WSDL {spec.wsdl} does not exist") from exc
    except zeep.exceptions.Error as exc:
        raise FeedFormatError(f"not a usable WSDL: {exc}", where=spec.wsdl) from exc


def _wsse(spec: SoapSpec) -> UsernameToken | None:
    if spec.wsse in (None, "", "none"):
        return None
    if spec.wsse not in ("text", "digest") or not spec.username:
        raise SourceConfigError('soap: wsse must be "text" or "digest", with a username and password')
    return UsernameToken(spec.username, spec.password or "", use_digest=spec.wsse == "digest")


def _call(operation, arguments: dict[str, Any]) -> _Reply:
    try:
        response = operation(**arguments)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"soap call failed: {exc}") from exc
    except (TypeError, zeep.exceptions.ValidationError) as exc:
        raise SourceConfigError(f"soap: arguments {sorted(arguments)} do not fit the operation: {exc}") from exc
    reply = _Reply(response.content)
    if reply.fault is not None:
        raise _fault_error(*reply.fault)
    if response.status_code != 200:
        raise _status_error(response, f"soap endpoint {response.url}")
    if reply.root is None:
        raise FeedFormatError("the reply is not XML", where=response.url)
    return reply


# -- replies and errors ---------------------------------------------------------------------------

class _Reply:
    """A reply body as received, and what paging needs from it."""

    def __init__(self, body: bytes):
        self.body = body
        try:
            self.root = etree.fromstring(body, _PARSER) if body else None
        except etree.XMLSyntaxError:
            self.root = None
        self.fault = _fault_of(self.root) if self.root is not None else None

    def count(self, path: str) -> int:
        return int(self.root.xpath(f"count({_xpath(path)})"))

    def text(self, path: str) -> str | None:
        found = self.root.xpath(_xpath(path))
        return (found[0].text or "").strip() if found else None


def _xpath(path: str) -> str:
    """``Listings/Listing`` -> any Listing child of a Listings element, whatever the namespaces."""
    steps = [s for s in re.split(r"[/.]", path) if s]
    if not steps or not all(_NAME.match(s) for s in steps):
        raise SourceConfigError(f"soap: {path!r} is not a path of element names")
    return "//" + "/".join(f"*[local-name()='{step}']" for step in steps)


def _fault_of(root) -> tuple[str, str] | None:
    """(code, text) of a SOAP 1.1 or 1.2 Fault in the Body, if there is one."""
    faults = root.xpath("/*[local-name()='Envelope']/*[local-name()='Body']/*[local-name()='Fault']")
    if not faults:
        return None
    fault = faults[0]
    code = fault.xpath("string(*[local-name()='faultcode'])") or " ".join(
        fault.xpath(".//*[local-name()='Code']//*[local-name()='Value']/text()"))
    text = fault.xpath("string(*[local-name()='faultstring'])") or fault.xpath(
        "string(.//*[local-name()='Reason']/*[local-name()='Text'])")
    return code.strip(), text.strip()


def _fault_error(code: str, text: str) -> PipelineError:
    message = f"soap fault {code}: {text}"
    local = code.rpartition(":")[2]
    if _AUTH_CODE.search(local) or _AUTH_TEXT.search(text):
        return SourceAuthError(message)
    if local.startswith(("Client", "Sender")):
        return SourceConfigError(message)
    if _TRANSIENT_TEXT.search(text):
        return SourceUnavailable(message)
    return PermanentError(message)


def _status_error(response: requests.Response, what: str) -> PipelineError:
    status, retry_after = response.status_code, response.headers.get("Retry-After")
    message = f"{what}: HTTP {status}"
    if status in (401, 403):
        return SourceAuthError(message)
    if status in (404, 410):
        return FeedNotFound(message)
    if status in (408, 429) or status >= 500:
        return SourceUnavailable(message + (f" (Retry-After: {retry_after})" if retry_after else ""),
                                 retry_after=retry_after_seconds(retry_after))
    return SourceConfigError(message)


CONNECTOR = SoapConnector()
