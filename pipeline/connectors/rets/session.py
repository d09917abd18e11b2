"""RETS sessions (RETS 1.7.2 sections 3-4): login, every transaction's headers, logout.

A ``RetsSession`` wraps a ``requests.Session`` handed in by its owner (cookies, connection
pool) and:

- logs in with HTTP Digest or Basic authentication: ``auth = "auto"`` sends the first login
  request without credentials and answers the server's 401 challenge with the scheme it names
  (Digest preferred), so a password never travels in Basic to a server that does Digest; the
  scheme and the Digest challenge are remembered for the session's life, so neither a new login
  nor any request from any thread (the logout included) meets a 401 again;
- sends ``User-Agent``, ``RETS-Version`` and, when the source has a user-agent password,
  ``RETS-UA-Authorization`` on every request (see ``ua_authorization``);
- keeps the server's cookies, among them ``RETS-Session-ID``;
- reads the capability URLs of the login reply, relative ones resolved against the login URL,
  keeps its ``Info=`` lines (every one: RETS 1.8 sends one per item) and requests the ``Action``
  URL when there is one (best effort);
- when the server has forgotten the session (reply 20701, or HTTP 401 once logged in), logs in
  again and repeats the transaction once (``with_relogin``);
- logs out at the end, best effort.

Transport errors become SourceUnavailable (timeouts, refused or cut connections); HTTP and RETS
error codes are mapped by :mod:`pipeline.connectors.rets.replies`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth
from requests.utils import parse_dict_header

from pipeline.connectors.rets.replies import Reply, SessionExpired, check, http_error, parse_reply
from pipeline.errors import FeedFormatError, PipelineError, SourceAuthError, SourceConfigError, SourceUnavailable

T = TypeVar("T")
SESSION_COOKIE = "RETS-Session-ID"
CAPABILITIES = ("Login", "Logout", "Search", "GetMetadata", "GetObject", "Action", "ChangePassword",
                "ServerInformation", "Update", "PostObject", "LoginComplete", "GetPayloadList")
AUTH_SCHEMES = ("auto", "digest", "basic")


@dataclass(frozen=True)
class LoginSettings:
    """How to reach and log in to one RETS server."""

    url: str
    username: str
    password: str
    user_agent: str = "mlsfeeds/0.1"
    user_agent_password: str | None = None
    rets_version: str = "RETS/1.7.2"
    auth: str = "auto"
    timeout: float = 60.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc or self.url


def ua_authorization(user_agent: str, ua_password: str, request_id: str, session_id: str, version: str) -> str:
    """The RETS-UA-Authorization header value of RETS 1.7.2 section 3.10.

    ``Digest `` + hex MD5 of ``hex MD5(user_agent:ua_password) : request_id : session_id : version``,
    where ``request_id`` is the RETS-Request-ID sent (empty when none) and ``session_id`` the
    RETS-Session-ID cookie (empty before login).
    """
    a1 = _md5(f"{user_agent}:{ua_password}")
    return "Digest " + _md5(f"{a1}:{request_id}:{session_id}:{version}")


def capability_urls(reply: Reply, login_url: str) -> dict[str, str]:
    """The transaction URLs a login reply lists, made absolute against the login URL."""
    urls = {}
    for name in CAPABILITIES:
        value = reply.get(name)
        if value:
            urls[name] = urljoin(login_url, value.strip())
    return urls


class RetsSession:
    """One logged-in conversation with a RETS server."""

    def __init__(self, http: requests.Session, settings: LoginSettings,
                 progress: Callable[[str], None] = lambda message: None):
        self.http = http
        self.settings = settings
        self.progress = progress
        self.capabilities: dict[str, str] = {}
        self.logged_in = False
        self.logins = 0
        self.info: list[str] = []  # the login reply's Info= lines, in order
        self._scheme = settings.auth
        self._challenge: str | None = None
        self._credentials: AuthBase | None = None  # made at the first login, kept for the session's life

    # -- login and logout -----------------------------------------------------------------------

    @contextmanager
    def opened(self) -> Iterator["RetsSession"]:
        """Log in; log out when the block ends, however it ends."""
        self.login()
        try:
            yield self
        finally:
            self.logout()

    def login(self) -> Reply:
        """Log in (again): authenticate, read the capability URLs, visit the Action URL."""
        self.http.cookies.clear()
        self.logged_in = False
        where = self.where("Login")
        response = self._authenticated_login()
        reply = check(parse_reply(response.content, where), where)
        self.capabilities = {"Login": self.settings.url, **capability_urls(reply, self.settings.url)}
        self.info = reply.get_all("Info")
        self.logged_in = True
        self.logins += 1
        self._visit_action()
        return reply

    def logout(self) -> None:
        """Log out, best effort: a failure here must not hide the run's outcome."""
        if not self.logged_in:
            return
        self.logged_in = False
        if "Logout" not in self.capabilities:
            return
        try:
            self.transaction("Logout").close()
        except PipelineError as exc:
            self.progress(f"RETS logout failed (ignored): {exc}")

    def _authenticated_login(self) -> requests.Response:
        if self._scheme == "auto":
            probe = self._send("GET", self.settings.url, None, "Login", auth=None, allow_401=True)
            if probe.status_code != 401:
                return probe
            self._scheme, self._challenge = _scheme_of(probe, self.where("Login"))
        if self._credentials is None:  # made once: a new login keeps the Digest state it learned
            self._credentials = self._auth(self._scheme)
        self.http.auth = self._credentials
        return self._send("GET", self.settings.url, None, "Login")

    def _auth(self, scheme: str) -> AuthBase:
        if scheme == "digest":
            return SessionDigestAuth(self.settings.username, self.settings.password, self._challenge)
        return HTTPBasicAuth(self.settings.username, self.settings.password)

    def _visit_action(self) -> None:
        if "Action" not in self.capabilities:
            return
        try:
            self.transaction("Action").close()
        except PipelineError as exc:
            self.progress(f"RETS Action URL failed (ignored): {exc}")

    # -- transactions ---------------------------------------------------------------------------

    def call(self, capability: str, params: dict[str, Any] | None = None) -> Reply:
        """A transaction whose reply is a small RETS envelope; error codes raise."""
        return self.with_relogin(lambda: self._call_once(capability, params))

    def transaction(self, capability: str, params: dict[str, Any] | None = None, *,
                    stream: bool = False, method: str = "GET") -> requests.Response:
        """Send one transaction; the response is returned once its HTTP status is known to be good.

        The caller reads (and, with ``stream``, closes) the response. RETS reply codes in the body
        are the caller's to check.
        """
        return self._send(method, self.url(capability), params, capability, stream=stream)

    def with_relogin(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt``; if the server forgot the session, log in again and run it once more."""
        try:
            return attempt()
        except SessionExpired as expired:
            self.progress(f"RETS session ended ({expired}); logging in again")
            self.login()
        try:
            return attempt()
        except SessionExpired as again:
            raise again.then from again

    def url(self, capability: str) -> str:
        """The URL of a transaction the login reply listed."""
        if capability not in self.capabilities:
            listed = ", ".join(sorted(self.capabilities)) or "none"
            raise FeedFormatError(f"the login reply lists no {capability} URL (it lists {listed})",
                                  where=self.where("Login"))
        return self.capabilities[capability]

    def session_id(self) -> str:
        """The RETS-Session-ID cookie's value, or "" before login."""
        values = [cookie.value for cookie in self.http.cookies if cookie.name == SESSION_COOKIE]
        return values[-1] if values and values[-1] else ""

    def _call_once(self, capability: str, params: dict[str, Any] | None) -> Reply:
        where = self.where(capability)
        with self.transaction(capability, params) as response:
            body = response.content
        return check(parse_reply(body, where), where)

    def _send(self, method: str, url: str, params: dict[str, Any] | None, capability: str, *,
              stream: bool = False, auth: Any = False, allow_401: bool = False) -> requests.Response:
        where = self.where(capability)
        options: dict[str, Any] = {"params": params} if method == "GET" else {"data": params}
        if auth is not False:  # False: the session's own auth; None: none at all (the login probe)
            options["auth"] = auth
        with transport_errors(where):
            response = self.http.request(method, url, headers=self._headers(), timeout=self._timeout(),
                                         stream=stream, **options)
        if response.status_code >= 400 and not (allow_401 and response.status_code == 401):
            reason = _reason(response)
            response.close()
            raise http_error(response.status_code, reason, where, logged_in=self.logged_in)
        return response

    def _headers(self) -> dict[str, str]:
        settings = self.settings
        headers = {"User-Agent": settings.user_agent, "RETS-Version": settings.rets_version, "Accept": "*/*"}
        if settings.user_agent_password:
            headers["RETS-UA-Authorization"] = ua_authorization(
                settings.user_agent, settings.user_agent_password, "", self.session_id(), settings.rets_version,
            )
        return headers

    def _timeout(self) -> tuple[float, float]:
        return (self.settings.timeout, self.settings.timeout)

    def where(self, capability: str) -> str:
        return f"RETS {capability} at {self.settings.host}"


@contextmanager
def transport_errors(where: str) -> Iterator[None]:
    """Translate what requests raises while connecting or reading into the pipeline's errors."""
    try:
        yield
    except requests.Timeout as exc:
        raise SourceUnavailable(f"{where}: timed out ({exc.__class__.__name__})") from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise SourceConfigError(f"{where}: bad URL: {exc}") from exc
    except requests.RequestException as exc:
        raise SourceUnavailable(f"{where}: {exc.__class__.__name__}: {exc}") from exc


def _scheme_of(response: requests.Response, where: str) -> tuple[str, str | None]:
    """The scheme a 401 challenges with (Digest preferred), and the Digest challenge itself."""
    challenge = response.headers.get("WWW-Authenticate", "")
    response.close()
    if "digest" in challenge.lower():
        return "digest", challenge
    if "basic" in challenge.lower():
        return "basic", None
    raise SourceAuthError(f"{where}: HTTP 401 with no Digest or Basic challenge ({challenge or 'none'})")


class SessionDigestAuth(HTTPDigestAuth):
    """HTTP Digest for one RETS session: one state for every thread, primed from a challenge.

    ``requests`` keeps a Digest nonce per thread, so a request from another thread than the
    login's (the photo job's logout, its other workers) went out without credentials, met a 401
    and was sent again. Here the state is the session's, under a lock. Given the challenge of
    the login probe (``auth = "auto"``), the login itself goes out with credentials at once.
    """

    def __init__(self, username: str, password: str, challenge: str | None = None):
        super().__init__(username, password)
        self._lock = threading.RLock()
        self._thread_local = _SharedState()  # deliberately not thread-local
        self.init_per_thread_state()
        if challenge and challenge.lower().lstrip().startswith("digest"):
            self._thread_local.chal = parse_dict_header(challenge.lstrip()[len("digest"):].strip())
            self._thread_local.last_nonce = "-"  # any value but the nonce: the next request signs

    def __call__(self, r):
        with self._lock:
            return super().__call__(r)

    def handle_401(self, r, **kwargs):
        with self._lock:
            return super().handle_401(r, **kwargs)


class _SharedState:
    """A plain attribute holder standing in for requests' ``threading.local``."""


def _reason(response: requests.Response) -> str:
    reason = response.reason or ""
    if response.headers.get("Content-Type", "").startswith(("image/", "multipart/")):
        return reason
    try:
        body = next(response.iter_content(2048), b"")
    except requests.RequestException:  # only decorates a message about an error already found
        return reason
    text = " ".join(body.decode("utf-8", "replace").split())[:200]
    return f"{reason}: {text}" if text else reason


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()
