"""Password storage: a slow salted hash (scrypt), and a sealed copy for PasswordDigest.

WS-Security PasswordDigest is SHA1(nonce + created + password): the server must know the
password itself to check it. So besides the scrypt hash (used for HTTP Basic and
PasswordText) each client's password is kept sealed (Fernet, keyed from MLSFEEDS_SECRET_KEY).
A leaked database alone reveals neither; a leaked database *and* secret reveal the sealed ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(_N, _R, _P, _b64(salt), _b64(digest))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.urlsafe_b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.urlsafe_b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def seal(password: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(password.encode()).decode()


def unseal(sealed: str, secret_key: str) -> str | None:
    """The password, or None if it was sealed under another secret key."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def _fernet(secret_key: str) -> Fernet:
    key = hashlib.sha256(b"mlsfeeds:seal:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()
