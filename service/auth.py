"""Who is calling: HTTP Basic, or a WS-Security UsernameToken in the SOAP header.

spyne ignores ``wsse:Security`` entirely, so this module reads it from the envelope itself.
PasswordDigest is checked against the sealed password; its nonce is recorded in the database,
so a replay is refused by every worker and every host, and its Created time must fall inside a
window (default ±300 s), which bounds how long nonces must be kept.

Passwords (HTTP Basic, PasswordText) are checked against the sealed copy as well: unsealing
costs microseconds where the scrypt hash costs about 100 ms, so nobody can make the service
burn a core by sending wrong passwords. This reveals nothing new: whoever has the database and
the secret key can unseal the passwords anyway (PasswordDigest needs them). A client whose
password is not sealed under the current key is checked against its scrypt hash.

Nothing here tells a caller whether a user exists: an unknown user is checked against a dummy
sealed password, the same work as a wrong password, and gets the same message; the checks of a
digest token that do not depend on the user (Nonce, Created) come before the user is looked
up. Wrong credentials are remembered for a short while, so repeating them costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import hashlib
import hmac
import random
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from core.models import Client, WsNonce
from core.passwords import seal, unseal, verify_password
from core.types import utcnow
from service.errors import AuthenticationFailed, shown

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SECURITY = f"{{{WSSE}}}Security"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
BAD_CREDENTIALS = "invalid username or password"
NO_CREDENTIALS = "no credentials: send HTTP Basic authentication or a WS-Security UsernameToken"
_URLSAFE = str.maketrans("-_", "+/")
RECENT = 30  # seconds a verified password (and the caller it gave) is trusted without a lookup
FAILED = 30  # seconds wrong credentials are refused without being checked again
_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Caller:
    """An authenticated client. ``sources`` is None for a client that sees every source."""

    name: str
    role: str
    sources: frozenset[str] | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def can_see(self, source_id: str) -> bool:
        return self.sources is None or source_id in self.sources


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    digest: bool = False
    nonce: bytes | None = None
    created: str | None = None


class NonceStore:
    """WS-Security nonces in the database, each written in a short transaction of its own.

    On SQLite that transaction starts with ``BEGIN IMMEDIATE`` (pass sessions of an engine made
    with ``immediate=True``): a transaction that read first and then writes cannot wait for the
    write lock and fails with "database is locked" when another process wrote in between.
    """

    def __init__(self, sessions: sessionmaker[Session], window: dt.timedelta):
        self._sessions = sessions
        self._window = window

    def first_use(self, username: str, nonce: bytes, now: dt.datetime) -> bool:
        """Record the nonce; False if it was seen before (a replay)."""
        with self._sessions() as session:
            return record_nonce(session, username, nonce, now, self._window)


def record_nonce(session: Session, username: str, nonce: bytes, now: dt.datetime, window: dt.timedelta) -> bool:
    """Insert the nonce and commit the session; False if it was there already."""
    key = hashlib.sha256(username.encode() + b"\0" + nonce).hexdigest()
    try:
        session.execute(insert(WsNonce).values(nonce=key, seen_at=now))
        if random.random() < 0.01:
            # Tokens older than the window are refused by their Created time: their nonces can go.
            session.execute(delete(WsNonce).where(WsNonce.seen_at < now - 2 * window))
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


class _Expiring:
    """A bounded map whose entries expire; safe to share between threads."""

    def __init__(self, seconds: float, size: int = _CACHE_SIZE):
        self._seconds, self._size = seconds, size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._items.get(key)
            if entry is None or entry[0] <= time.monotonic():
                return None
            return entry[1]

    def put(self, key, value=True) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (time.monotonic() + self._seconds, value)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, key) -> None:
        with self._lock:
            self._items.pop(key, None)


class Authenticator:
    """Turns the credentials of a request into a Caller, or raises AuthenticationFailed."""

    def __init__(self, secret_key: str, created_window: int = 300, clock=utcnow,
                 nonces: NonceStore | None = None):
        self._secret = secret_key.encode()
        self._window = dt.timedelta(seconds=created_window)
        self._clock = clock
        self._nonces = nonces
        self._recent = _Expiring(RECENT)
        self._failed = _Expiring(FAILED)
        # What an unknown user is checked against: the same work as a known one.
        self._dummy_sealed = seal(secrets.token_urlsafe(16), secret_key)

    def authenticate(self, session: Session, environ: dict, envelope) -> Caller:
        """The caller of a whole request: its UsernameToken if it has one, else HTTP Basic."""
        header = envelope.find("./{*}Header") if envelope is not None else None
        credentials = from_ws_security(header) or from_basic(environ)
        if credentials is None:
            raise AuthenticationFailed(NO_CREDENTIALS)
        return self.check(session, credentials)

    def check(self, session: Session, credentials: Credentials) -> Caller:
        if credentials.digest:
            return self._check_digest(session, credentials)
        return self._check_password(session, credentials)

    # -- passwords (HTTP Basic, PasswordText) ---------------------------------------------------

    def _check_password(self, session: Session, credentials: Credentials) -> Caller:
        """A verified password is trusted for RECENT seconds (no client lookup per call); a
        disabled client, a new password or new entitlements take effect within RECENT seconds."""
        key = self._cache_key(credentials)
        if (caller := self._recent.get(key)) is not None:
            return caller
        if self._failed.get(key):
            raise AuthenticationFailed(BAD_CREDENTIALS)
        client = self._client(session, credentials.username)
        if client is None or not self._password_matches(client, credentials.password):
            self._failed.put(key)
            raise AuthenticationFailed(BAD_CREDENTIALS)
        caller = _caller(client)
        self._recent.put(key, caller)
        return caller

    def _password_matches(self, client: Client | None, password: str) -> bool:
        actual = None
        if client is None or client.password_sealed:
            actual = unseal(client.password_sealed if client else self._dummy_sealed, self._secret.decode())
        if actual is None and client is not None:
            # Not sealed, or sealed under another secret key: only the slow hash can tell.
            return verify_password(password, client.password_hash)
        same = hmac.compare_digest(hashlib.sha256(password.encode()).digest(),
                                   hashlib.sha256((actual or "").encode()).digest())
        return client is not None and same

    def _cache_key(self, credentials: Credentials) -> bytes:
        return hmac.digest(self._secret, f"{credentials.username}\0{credentials.password}".encode(), "sha256")

    # -- PasswordDigest -------------------------------------------------------------------------

    def _check_digest(self, session: Session, cred: Credentials) -> Caller:
        if cred.nonce is None or cred.created is None:
            raise AuthenticationFailed("PasswordDigest needs a Nonce and a Created time")
        self._check_created(cred.created)
        client = self._client(session, cred.username)
        sealed = client.password_sealed if client is not None and client.password_sealed else self._dummy_sealed
        password = unseal(sealed, self._secret.decode())
        expected = base64.b64encode(
            hashlib.sha1(cred.nonce + cred.created.encode() + (password or "").encode()).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), cred.password.encode()) or client is None or password is None:
            raise AuthenticationFailed(BAD_CREDENTIALS)
        caller = _caller(client)
        if not self._first_use(session, client.name, cred.nonce):
            raise AuthenticationFailed("this UsernameToken nonce was already used (replay refused)")
        return caller

    def _first_use(self, session: Session, username: str, nonce: bytes) -> bool:
        if self._nonces is not None:
            return self._nonces.first_use(username, nonce, self._clock())
        # No store of its own (a unit test, the spyne reference): the call's session records it.
        return record_nonce(session, username, nonce, self._clock(), self._window)

    def _check_created(self, created: str) -> None:
        try:
            when = dt.datetime.fromisoformat(created.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AuthenticationFailed(f"the UsernameToken's Created is not a time: {shown(created)}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        if abs(self._clock() - when) > self._window:
            raise AuthenticationFailed(
                "the UsernameToken's Created time is outside the accepted window "
                f"of {int(self._window.total_seconds())} seconds; check the client's clock"
            )

    @staticmethod
    def _client(session: Session, username: str) -> Client | None:
        return session.scalar(
            select(Client)
            .where(Client.name == username, Client.enabled.is_(True))
            .options(selectinload(Client.sources))
        )


def _caller(client: Client) -> Caller:
    sources = None if client.all_sources else frozenset(s.source_id for s in client.sources)
    return Caller(name=client.name, role=client.role, sources=sources)


def from_basic(environ: dict) -> Credentials | None:
    """HTTP Basic credentials; None without an Authorization header. Another scheme is refused:
    it would otherwise be silently ignored and the call treated as anonymous."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationFailed(f"the Authorization scheme {shown(scheme)} is not supported: use Basic, "
                                   "or a WS-Security UsernameToken")
    try:
        # Some clients (suds) encode with the URL-safe alphabet; accept both.
        decoded = base64.b64decode(value.strip().translate(_URLSAFE), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("malformed HTTP Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationFailed("malformed HTTP Basic credentials")
    return Credentials(username, password)


def from_ws_security(header) -> Credentials | None:
    """The UsernameToken of a SOAP Header's wsse:Security entry, if there is one."""
    if header is None:
        return None
    tokens = header.findall(f"./{SECURITY}/{{{WSSE}}}UsernameToken")
    if not tokens:
        return None
    if len(tokens) > 1 or len(header.findall(f"./{SECURITY}")) > 1:
        raise AuthenticationFailed("the request carries more than one UsernameToken")
    token = tokens[0]
    username = _text(token, f"{{{WSSE}}}Username")
    password_el = token.find(f"{{{WSSE}}}Password")
    if not username or password_el is None:
        raise AuthenticationFailed("the UsernameToken needs a Username and a Password")
    nonce = _text(token, f"{{{WSSE}}}Nonce")
    return Credentials(
        username=username,
        password=(password_el.text or "").strip(),
        digest=password_el.get("Type") == PASSWORD_DIGEST,
        nonce=_decode_nonce(nonce) if nonce else None,
        created=_text(token, f"{{{WSU}}}Created") or _text(token, f"{{{WSSE}}}Created"),
    )


def _text(parent, tag: str) -> str | None:
    element = parent.find(tag)
    return element.text.strip() if element is not None and element.text else None


def _decode_nonce(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise AuthenticationFailed("the UsernameToken's Nonce is not base64") from None
