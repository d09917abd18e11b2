"""Who is calling: HTTP Basic, or a WS-Security UsernameToken in the SOAP header.

spyne ignores ``wsse:Security`` entirely, so this module reads it from the envelope itself.
PasswordDigest is checked against the sealed password; its nonce is recorded in the database,
so a replay is refused by every worker and every host, and its Created time must fall inside a
window (default ±300 s), which bounds how long nonces must be kept.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import random
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from core.models import Client, WsNonce
from core.passwords import unseal, verify_password
from core.types import utcnow
from service.errors import AuthenticationFailed

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
BAD_CREDENTIALS = "invalid username or password"
_URLSAFE = str.maketrans("-_", "+/")
RECENT = 30  # seconds a verified password (and the caller it gave) is trusted without a lookup


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


class Authenticator:
    """Turns the credentials of a request into a Caller, or raises AuthenticationFailed."""

    def __init__(self, secret_key: str, created_window: int = 300, clock=utcnow):
        self._secret = secret_key.encode()
        self._window = dt.timedelta(seconds=created_window)
        self._clock = clock
        self._verified: dict[bytes, tuple[float, Caller]] = {}  # see _recent
        self._lock = threading.Lock()

    def authenticate(self, session: Session, environ: dict, envelope) -> Caller:
        credentials = from_ws_security(envelope) or from_basic(environ)
        if credentials is None:
            raise AuthenticationFailed(
                "no credentials: send HTTP Basic authentication or a WS-Security UsernameToken"
            )
        if not credentials.digest and (known := self._recent(credentials)) is not None:
            return known
        client = session.scalar(
            select(Client)
            .where(Client.name == credentials.username, Client.enabled.is_(True))
            .options(selectinload(Client.sources))
        )
        if client is None:
            raise AuthenticationFailed(BAD_CREDENTIALS)
        if credentials.digest:
            self._check_digest(session, client, credentials)
        elif not self._check_password(client, credentials.password):
            raise AuthenticationFailed(BAD_CREDENTIALS)
        sources = None if client.all_sources else frozenset(s.source_id for s in client.sources)
        caller = Caller(name=client.name, role=client.role, sources=sources)
        if not credentials.digest:
            self._remember(credentials, caller)
        return caller

    def _recent(self, credentials: Credentials) -> Caller | None:
        """A caller these exact credentials authenticated less than RECENT seconds ago.

        A slow hash on every call would cap the service at a few dozen requests per second per
        core, and the client lookup costs a query; so a verified password is trusted briefly.
        A disabled client, a new password or new entitlements take effect within RECENT seconds.
        """
        with self._lock:
            entry = self._verified.get(self._cache_key(credentials))
        return entry[1] if entry and entry[0] > time.monotonic() else None

    def _remember(self, credentials: Credentials, caller: Caller) -> None:
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[self._cache_key(credentials)] = (time.monotonic() + RECENT, caller)

    def _cache_key(self, credentials: Credentials) -> bytes:
        return hmac.digest(self._secret, f"{credentials.username}\0{credentials.password}".encode(), "sha256")

    def _check_password(self, client: Client, password: str) -> bool:
        return verify_password(password, client.password_hash)

    def _check_digest(self, session: Session, client: Client, cred: Credentials) -> None:
        if cred.nonce is None or cred.created is None:
            raise AuthenticationFailed("PasswordDigest needs a Nonce and a Created time")
        self._check_created(cred.created)
        password = unseal(client.password_sealed, self._secret.decode()) if client.password_sealed else None
        if password is None:
            raise AuthenticationFailed(BAD_CREDENTIALS)
        expected = base64.b64encode(
            hashlib.sha1(cred.nonce + cred.created.encode() + password.encode()).digest()
        ).decode()
        if not hmac.compare_digest(expected, cred.password):
            raise AuthenticationFailed(BAD_CREDENTIALS)
        self._remember_nonce(session, client.name, cred.nonce)

    def _check_created(self, created: str) -> None:
        try:
            when = dt.datetime.fromisoformat(created.strip())
        except ValueError:
            raise AuthenticationFailed(f"the UsernameToken's Created is not a time: {created!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        if abs(self._clock() - when) > self._window:
            raise AuthenticationFailed(
                "the UsernameToken's Created time is outside the accepted window "
                f"of {int(self._window.total_seconds())} seconds; check the client's clock"
            )

    def _remember_nonce(self, session: Session, username: str, nonce: bytes) -> None:
        key = hashlib.sha256(username.encode() + b"\0" + nonce).hexdigest()
        try:
            session.execute(insert(WsNonce).values(nonce=key, seen_at=self._clock()))
            session.commit()
        except IntegrityError:
            session.rollback()
            raise AuthenticationFailed("this UsernameToken nonce was already used (replay refused)") from None
        if random.random() < 0.01:
            self._forget_old_nonces(session)

    def _forget_old_nonces(self, session: Session) -> None:
        # Tokens older than the window are refused by their Created time, so their nonces can go.
        session.execute(delete(WsNonce).where(WsNonce.seen_at < self._clock() - 2 * self._window))
        session.commit()


def from_basic(environ: dict) -> Credentials | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        # Some clients (suds) encode with the URL-safe alphabet; accept both.
        decoded = base64.b64decode(value.strip().translate(_URLSAFE), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("malformed HTTP Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationFailed("malformed HTTP Basic credentials")
    return Credentials(username, password)


def from_ws_security(envelope) -> Credentials | None:
    """The UsernameToken of the envelope's wsse:Security header, if there is one."""
    if envelope is None:
        return None
    tokens = envelope.findall(f"./{{*}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if not tokens:
        return None
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
