"""RETS replies: the ``<RETS ReplyCode ReplyText>`` envelope and what each reply code means to us.

Every RETS transaction answers ``<RETS ReplyCode="0" ReplyText="...">``; a body may also carry a
``<RETS-STATUS>`` element (a second code, e.g. 20208 in a successful search) and a
``<RETS-RESPONSE>`` block of ``key=value`` lines (login, logout). A non-zero code is translated
into the pipeline's error tree here, in one table:

    success         0, 20208 (maximum records exceeded: rows came, more exist)
    empty result    20201 no records, 20403 no object, 20503 no metadata   -> no error, handled by callers
    SessionExpired  20701 not logged in (and HTTP 401 once logged in)      -> one new login, then retried
    SourceUnavailable   10000, 20022, 20050, 20209, 20210, 20408, 20409, 20411-20413,
                        20508, 20509, 20511-20513, 20702; HTTP 408, 425, 429, 5xx
    SourceAuthError     20003, 20012, 20013, 20036, 20037, 20207, 20407, 20507; HTTP 401, 403
    FeedNotFound        20400-20402, 20500-20502; HTTP 404
    SourceConfigError   20200, 20202-20206, 20211-20213, 20406, 20410, 20506, 20510, 20514; other HTTP 4xx
    PermanentError      any other code (named in the message)

Errors raised from a reply carry ``reply_code`` (an int, or None for HTTP-level errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from pipeline.errors import (
    FeedFormatError,
    FeedNotFound,
    PermanentError,
    PipelineError,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
)

SUCCESS = 0
MAXIMUM_RECORDS_EXCEEDED = 20208
NO_RECORDS = 20201
NO_OBJECT = 20403
NO_METADATA = 20503
NOT_LOGGED_IN = 20701
EMPTY_RESULTS = frozenset({NO_RECORDS, NO_OBJECT, NO_METADATA})

_TRANSIENT = {10000, 20022, 20050, 20209, 20210, 20408, 20409, 20411, 20412, 20413,
              20508, 20509, 20511, 20512, 20513, 20702}
_AUTH = {20003, 20012, 20013, 20036, 20037, 20207, 20407, 20507}
_NOT_FOUND = {20400, 20401, 20402, 20500, 20501, 20502}
_CONFIG = {20200, 20202, 20203, 20204, 20205, 20206, 20211, 20212, 20213, 20406, 20410, 20506, 20510, 20514}
_TRANSIENT_HTTP = {408, 425, 429}
_HTML = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<(!doctype\s+html|html)", re.IGNORECASE)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class SessionExpired(SourceUnavailable):
    """The server no longer knows our session: log in again and repeat the transaction once.

    ``then`` is the error to raise if the transaction fails the same way right after a new login.
    """

    def __init__(self, message: str, *, then: PipelineError | None = None, reply_code: int | None = None):
        super().__init__(message)
        self.reply_code = reply_code
        self.then = then or SourceUnavailable(f"{message} (again, right after a new login)")


@dataclass(frozen=True)
class Reply:
    """One parsed RETS envelope."""

    code: int
    text: str
    status: "Reply | None" = None                       # the RETS-STATUS element, if any
    response: dict[str, str] = field(default_factory=dict)  # RETS-RESPONSE key=value lines (last of a key)
    lines: tuple[tuple[str, str], ...] = ()             # every key=value line, repeated keys too

    @property
    def ok(self) -> bool:
        return self.code in (SUCCESS, MAXIMUM_RECORDS_EXCEEDED)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A RETS-RESPONSE value by name, ignoring case (servers vary: ``GetMetadata``/``getmetadata``)."""
        wanted = key.lower()
        return next((v for k, v in self.response.items() if k.lower() == wanted), default)

    def get_all(self, key: str) -> list[str]:
        """Every value of a RETS-RESPONSE key, in order (RETS 1.8 logins send many ``Info=`` lines)."""
        wanted = key.lower()
        return [v for k, v in self.lines if k.lower() == wanted]


def parse_reply(body: bytes, where: str = "RETS reply") -> Reply:
    """Parse a small RETS reply body (login, logout, metadata, an object part, an error).

    An HTML page, an empty body or something that is not a ``<RETS>`` document raises
    FeedFormatError saying so.
    """
    root = _xml_root(body, where)
    if root.tag != "RETS":
        raise FeedFormatError(f"expected a <RETS> reply, got <{root.tag}>", where=where)
    status = root.find("RETS-STATUS")
    response = root.find("RETS-RESPONSE")
    lines = key_value_lines(response.text or "") if response is not None else []
    return Reply(
        code=_code(root, where),
        text=root.get("ReplyText", "").strip(),
        status=Reply(_code(status, where), status.get("ReplyText", "").strip()) if status is not None else None,
        response=dict(lines),
        lines=tuple(lines),
    )


def parse_key_values(text: str) -> dict[str, str]:
    """The ``key=value`` lines of a RETS-RESPONSE (spaces around ``=`` allowed, blank lines skipped)."""
    return dict(key_value_lines(text))


def key_value_lines(text: str) -> list[tuple[str, str]]:
    """Every ``key=value`` line of a RETS-RESPONSE in order, a key repeated as often as it comes."""
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs


def check(reply: Reply, where: str) -> Reply:
    """Return ``reply`` if it is a success or an empty result; raise the mapped error otherwise."""
    if reply.ok or reply.code in EMPTY_RESULTS:
        return reply
    raise error_for(reply.code, reply.text, where)


def error_for(code: int, text: str, where: str) -> PipelineError:
    """The pipeline error for a non-zero RETS reply code (see the module docstring)."""
    message = f"{where}: RETS reply {code}" + (f" {text}" if text else "")
    if code == NOT_LOGGED_IN:
        return SessionExpired(message, reply_code=code)
    error = _error_class(code)(message)
    error.reply_code = code  # type: ignore[attr-defined]
    return error


def _error_class(code: int) -> type[PipelineError]:
    if code in _TRANSIENT:
        return SourceUnavailable
    if code in _AUTH:
        return SourceAuthError
    if code in _NOT_FOUND:
        return FeedNotFound
    if code in _CONFIG:
        return SourceConfigError
    return PermanentError


def http_error(status: int, reason: str, where: str, *, logged_in: bool = False) -> PipelineError:
    """The pipeline error for an HTTP status of 400 or more.

    Once logged in, a 401 usually means the server dropped our session: it becomes
    SessionExpired, which turns into SourceAuthError if a new login does not cure it.
    """
    message = f"{where}: HTTP {status}" + (f" {reason}" if reason else "")
    if status == 401 and logged_in:
        return SessionExpired(message, then=SourceAuthError(f"{message} (again, right after a new login)"))
    if status in (401, 403):
        return SourceAuthError(message)
    if status == 404:
        return FeedNotFound(message)
    if status in _TRANSIENT_HTTP or status >= 500:
        return SourceUnavailable(message)
    return SourceConfigError(message)


def looks_like_html(body: bytes) -> bool:
    """True when a body is an HTML page (a login wall, a maintenance page) rather than XML."""
    return bool(_HTML.match(body[:512].lstrip(b"\xef\xbb\xbf")))


def _xml_root(body: bytes, where: str) -> etree._Element:
    if not body.strip():
        raise FeedFormatError("empty reply where RETS XML was expected", where=where)
    if looks_like_html(body):
        title = _TITLE.search(body)
        shown = f" ({title[1].decode('utf-8', 'replace').strip()[:80]})" if title else ""
        raise FeedFormatError(f"the server sent an HTML page{shown} where RETS XML was expected", where=where)
    try:
        return etree.fromstring(body.strip(), _strict_parser())
    except etree.XMLSyntaxError as exc:
        # Small replies are sometimes sloppy (a bare & in ReplyText); recover them if lxml can.
        root = etree.fromstring(body.strip(), _lenient_parser())
        if root is None:
            raise FeedFormatError(f"not well-formed XML: {exc}", where=where, line=exc.lineno) from exc
        return root


def _code(element: etree._Element, where: str) -> int:
    raw = (element.get("ReplyCode") or "").strip()
    try:
        return int(raw)
    except ValueError:
        raise FeedFormatError(f"<{element.tag}> has no numeric ReplyCode (got {raw!r})", where=where) from None


def _strict_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def _lenient_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True)
