"""A seeded database served by gunicorn, and SOAP clients for it."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

import requests
import zeep
from lxml import etree
from zeep.wsse.username import UsernameToken

from core.clients import upsert_client
from core.db import make_engine, session_factory
from mlsfeeds.seed import seed

SECRET = "test-secret-key"
CONSUMER = ("alice", "alice-password")  # entitled to source a
OPERATOR = ("ops", "ops-password")  # sees everything
SOURCES = ["a", "b", "c"]
NS = "urn:mlsfeeds:soap:1"


@dataclass
class Deployment:
    base_url: str
    database_url: str
    public_url: str
    log_path: Path | None = None  # gunicorn's output, access lines included

    @property
    def wsdl_url(self) -> str:
        return self.base_url + "/soap?wsdl"

    def sessions(self):
        return session_factory(make_engine(self.database_url))

    def client(self, user: tuple[str, str] | None = CONSUMER, wsse=None) -> zeep.Client:
        session = requests.Session()
        if user and wsse is None:
            session.auth = user
        transport = zeep.Transport(session=session)
        client = zeep.Client(self.wsdl_url, transport=transport, wsse=wsse)
        # The WSDL names the public URL; the test talks to the local port.
        return client.create_service("{urn:mlsfeeds:soap:1}MlsFeeds", self.base_url + "/soap")


def prepare_database(url: str, listings: int = 3000) -> None:
    sessions = session_factory(make_engine(url))
    with sessions() as session:
        seed(session, listings, SOURCES, 7)
        upsert_client(session, *CONSUMER, secret_key=SECRET, sources=["a"])
        upsert_client(session, *OPERATOR, secret_key=SECRET, role="operator", all_sources=True)
        session.commit()


def search_in_process(app, body: str, user=OPERATOR):
    """A SearchListings call (``body``: the operation element) through the WSGI app itself, no
    socket; the SearchListingsResponse element."""
    payload = (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{NS}"><s:Body>'
               f"{body}</s:Body></s:Envelope>").encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/soap", "CONTENT_TYPE": "text/xml; charset=utf-8",
               "CONTENT_LENGTH": str(len(payload)), "wsgi.input": io.BytesIO(payload),
               "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(":".join(user).encode()).decode()}
    status = []
    answer = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), answer[:500]
    return etree.fromstring(answer).find(f".//{{{NS}}}SearchListingsResponse")


def total(answer) -> int:
    return int(answer.findtext(f"{{{NS}}}TotalCount"))


def keys(answer) -> list[str]:
    return [e.text for e in answer.iterfind(f".//{{{NS}}}ListingKey")]


def service_env(database_url: str, public_url: str) -> dict[str, str]:
    return {
        "MLSFEEDS_DATABASE_URL": database_url,
        "MLSFEEDS_SECRET_KEY": SECRET,
        "MLSFEEDS_PUBLIC_URL": public_url,
        "MLSFEEDS_LOG_LEVEL": "WARNING",
    }


def digest_token(user: str, password: str, nonce: str, created: dt.datetime) -> UsernameToken:
    """A PasswordDigest token whose nonce and Created stay fixed: every call replays it."""
    return UsernameToken(user, password, use_digest=True, nonce=nonce, created=created)


def random_nonce() -> str:
    return os.urandom(12).hex()
