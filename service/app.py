"""The WSGI application: spyne's SOAP 1.1 endpoint at /soap, its WSDL at /soap?wsdl, /healthz.

Everything a request needs is built once per process from Settings and handed down; the only
per-call state is a database session and the authenticated caller, on ``ctx.udc``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from spyne import Application
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.settings import Settings
from service.api import ListingService
from service.auth import Authenticator, Caller
from service.errors import ServiceError
from service.faults import fault_envelope, on_exception, to_fault
from service.paging import PageTokens
from service.photos import PhotoUrls
from service.types import NS


log = logging.getLogger(__name__)

SOAP_PATH = "/soap"
MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Runtime:
    """What the operations need besides a session, built once per process."""

    sessions: sessionmaker[Session]
    authenticator: Authenticator
    tokens: PageTokens
    photo_urls: PhotoUrls


@dataclass
class CallContext:
    """What one SOAP call carries on ``ctx.udc``."""

    session: Session
    caller: Caller
    tokens: PageTokens
    photo_urls: PhotoUrls


class MlsfeedsApplication(Application):
    """A spyne Application whose every call is authenticated and runs in one session."""

    def __init__(self, runtime: Runtime | None):
        """``runtime`` is None only to render the WSDL, which needs no database."""
        super().__init__(
            [ListingService],
            tns=NS,
            name="MlsFeeds",
            in_protocol=Soap11(validator="lxml"),
            out_protocol=Soap11(),
        )
        self._runtime = runtime
        self.event_manager.add_listener("method_exception_object", on_exception)

    def call_wrapper(self, ctx):
        runtime = self._runtime
        with runtime.sessions() as session:
            try:
                environ = ctx.transport.req_env
                caller = runtime.authenticator.authenticate(session, environ, ctx.in_document)
                ctx.udc = CallContext(session, caller, runtime.tokens, runtime.photo_urls)
                result = super().call_wrapper(ctx)
                session.commit()
                return result
            except ServiceError as exc:
                raise to_fault(exc) from exc


def build_soap_app(settings: Settings, sessions: sessionmaker[Session], photo_urls: PhotoUrls | None = None):
    """The spyne WSGI app and the WSDL it publishes, addressed at ``{public_url}/soap``."""
    runtime = Runtime(
        sessions,
        Authenticator(settings.secret_key, settings.wss_created_window),
        PageTokens(settings.secret_key),
        photo_urls or PhotoUrls(settings.photo_base_url),
    )
    soap = WsgiApplication(MlsfeedsApplication(runtime), max_content_length=MAX_REQUEST_BYTES)
    from service.wsdl import render_wsdl

    return soap, render_wsdl(soap, settings.public_url + SOAP_PATH)


class Dispatcher:
    """Routes /soap (POST: SOAP, GET ?wsdl: the prebuilt WSDL), /photos/ (local store) and /healthz."""

    def __init__(self, soap: WsgiApplication, wsdl: bytes, photo_files=None):
        self._soap = soap
        self._wsdl = wsdl
        self._photo_files = photo_files

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path.rstrip("/") == SOAP_PATH:
            if environ.get("REQUEST_METHOD") == "GET" and _asks_for_wsdl(environ):
                return _respond(start_response, "200 OK", self._wsdl, "text/xml; charset=utf-8")
            if environ.get("REQUEST_METHOD") == "POST" and _anonymous(environ):
                return _challenge(start_response)
            return self._soap(environ, start_response)
        if self._photo_files is not None and path.startswith("/photos/"):
            return self._photo_files(environ, start_response)
        if path == "/healthz":
            return _respond(start_response, "200 OK", b"ok\n", "text/plain")
        return _respond(start_response, "404 Not Found", b"not found: the SOAP endpoint is /soap\n", "text/plain")


def _anonymous(environ) -> bool:
    """No HTTP credentials and no UsernameToken in the body (which is read and put back)."""
    if environ.get("HTTP_AUTHORIZATION"):
        return False
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False  # let spyne answer the malformed request
    body = environ["wsgi.input"].read(min(length, MAX_REQUEST_BYTES + 1)) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return b"UsernameToken" not in body


def _challenge(start_response):
    """401 with a Basic challenge (clients such as suds only send credentials when asked),
    and the declared fault in the body for clients that read it."""
    body = fault_envelope("AuthenticationFailed",
                          "no credentials: send HTTP Basic authentication or a WS-Security UsernameToken")
    start_response("401 Unauthorized", [
        ("Content-Type", "text/xml; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("WWW-Authenticate", 'Basic realm="mlsfeeds", charset="UTF-8"'),
    ])
    return [body]


def _asks_for_wsdl(environ) -> bool:
    query = environ.get("QUERY_STRING", "")
    return query.split("=")[0].split("&")[0].lower() == "wsdl"


def _respond(start_response, status: str, body: bytes, content_type: str):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def create_app(settings: Settings | None = None) -> Dispatcher:
    """The WSGI entry point (gunicorn: ``service.app:create_app()``)."""
    settings = settings or Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    logging.getLogger("spyne").setLevel(logging.WARNING)
    sessions = session_factory(make_engine(settings.database_url))
    photo_urls, photo_files = photo_links(settings)
    soap, wsdl = build_soap_app(settings, sessions, photo_urls)
    return Dispatcher(soap, wsdl, photo_files)


def photo_links(settings: Settings):
    """Stored photos' URLs: under the public photo base URL when set; else presigned by S3;
    else signed links to /photos/ that this service answers from the local folder."""
    from core.storage import LocalObjectStore, open_store
    from service.photos import PhotoFiles, SignedPhotoLinks

    if settings.photo_base_url:
        return PhotoUrls(settings.photo_base_url), None
    store = open_store(settings.storage_url, settings.s3_endpoint_url)
    if isinstance(store, LocalObjectStore):
        links = SignedPhotoLinks(settings.secret_key, settings.public_url, settings.photo_url_ttl)
        return PhotoUrls(presign=links.url), PhotoFiles(store, links)
    return PhotoUrls(presign=lambda key: store.presigned_url(key, settings.photo_url_ttl)), None
