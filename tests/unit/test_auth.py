"""Authentication against an in-memory SQLite database (no server, no socket)."""

import base64
import datetime as dt
import hashlib

import pytest
from lxml import etree

from core import db
from core.clients import upsert_client
from core.models import Base, Source
from service.auth import PASSWORD_DIGEST, WSSE, WSU, Authenticator
from service.errors import AuthenticationFailed

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def session():
    engine = db.make_engine("sqlite://")
    Base.metadata.create_all(engine)
    with db.session_factory(engine)() as session:
        session.add_all([Source(id="a", name="A"), Source(id="b", name="B")])
        upsert_client(session, "alice", "pw", secret_key="s", sources=["a"])
        session.commit()
        yield session


def envelope(username, password, *, digest=False, nonce=b"n1", created="2026-11-30T12:00:00Z"):
    value = password
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    ptype = PASSWORD_DIGEST if digest else PASSWORD_DIGEST.replace("Digest", "Text")
    return etree.fromstring(f"""
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}">
 <s:Header><wsse:Security s:mustUnderstand="1"><wsse:UsernameToken>
  <wsse:Username>{username}</wsse:Username>
  <wsse:Password Type="{ptype}">{value}</wsse:Password>
  <wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>
 </wsse:UsernameToken></wsse:Security></s:Header><s:Body/></s:Envelope>""")


def basic(user, password):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def authenticator():
    return Authenticator("s", 300, clock=lambda: NOW)


def test_basic_authentication_gives_the_clients_entitlements(session):
    caller = authenticator().authenticate(session, basic("alice", "pw"), None)
    assert caller.sources == frozenset({"a"}) and caller.can_see("a") and not caller.can_see("b")


def test_password_text_and_digest_tokens_are_accepted(session):
    auth = authenticator()
    assert auth.authenticate(session, {}, envelope("alice", "pw")).name == "alice"
    assert auth.authenticate(session, {}, envelope("alice", "pw", digest=True)).name == "alice"


def test_a_digest_nonce_is_accepted_once(session):
    auth = authenticator()
    auth.authenticate(session, {}, envelope("alice", "pw", digest=True, nonce=b"same"))
    with pytest.raises(AuthenticationFailed, match="replay"):
        auth.authenticate(session, {}, envelope("alice", "pw", digest=True, nonce=b"same"))


@pytest.mark.parametrize("created", ["2026-11-30T11:50:00Z", "2026-11-30T12:10:00Z", "yesterday"])
def test_a_digest_outside_the_created_window_is_refused(session, created):
    with pytest.raises(AuthenticationFailed, match="Created"):
        authenticator().authenticate(session, {}, envelope("alice", "pw", digest=True, created=created))


@pytest.mark.parametrize("environ,env", [
    ({}, None),
    (basic("alice", "nope"), None),
    (basic("mallory", "pw"), None),
    ({"HTTP_AUTHORIZATION": "Basic !!!"}, None),
    ({}, envelope("alice", "nope", digest=True)),
])
def test_bad_credentials_fail(session, environ, env):
    with pytest.raises(AuthenticationFailed):
        authenticator().authenticate(session, environ, env)


def test_a_disabled_client_cannot_authenticate(session):
    from core.models import Client

    session.query(Client).update({"enabled": False})
    with pytest.raises(AuthenticationFailed):
        authenticator().authenticate(session, basic("alice", "pw"), None)
