"""The WSGI application: the SOAP 1.1 endpoint at /soap, its WSDL at /soap?wsdl, and the
operator's side: /status (and / redirecting there), /metrics, /healthz and /readyz.

Everything a request needs is built once per process from Settings and handed down; the only
per-call state is a database session and the authenticated caller.

The endpoint (service/endpoint.py) answers SOAP calls itself. spyne declares the contract
(service/api.py, service/types.py): the WSDL is spyne's, and :class:`MlsfeedsApplication` is the
spyne application the tests hold the endpoint's answers against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from spyne import Application
from spyne.protocol.soap import Soap11
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.settings import Settings
from service.api import ListingService
from service.auth import Authenticator, NonceStore
from service.endpoint import Observer, SoapEndpoint
from service.errors import ServiceError
from service.faults import on_exception, to_fault
from service.operations import CallContext
from service.paging import PageTokens
from service.photos import PhotoUrls
from service.reader import Reader
from service.cache import AnswerCache, CountCache
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
    reader: Reader
    max_request_bytes: int = MAX_REQUEST_BYTES
    counts: CountCache = field(default_factory=CountCache)
    answers: AnswerCache | None = field(default_factory=AnswerCache)

    def call(self, session: Session, caller) -> CallContext:
        return CallContext(session, caller, self.tokens, self.photo_urls, self.reader.session(), self.counts)


class MlsfeedsApplication(Application):
    """The contract as a spyne Application: it writes the WSDL, and, given a runtime, answers
    calls the way spyne would (the reference for tests/unit/test_encode.py)."""

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
                caller = runtime.authenticator.authenticate(session, ctx.transport.req_env, ctx.in_document)
                ctx.udc = runtime.call(session, caller)
                return super().call_wrapper(ctx)
            except ServiceError as exc:
                raise to_fault(exc) from exc
            finally:
                if ctx.udc is not None:
                    ctx.udc.close()


def build_runtime(settings: Settings, engine: Engine, photo_urls: PhotoUrls | None = None,
                  nonce_engine: Engine | None = None) -> Runtime:
    """What the service needs per process. ``nonce_engine`` writes WS-Security nonces (on SQLite,
    one made with ``immediate=True``); by default ``engine``."""
    import datetime as dt

    window = dt.timedelta(seconds=settings.wss_created_window)
    nonces = NonceStore(session_factory(nonce_engine or engine), window)
    return Runtime(
        session_factory(engine),
        Authenticator(settings.secret_key, settings.wss_created_window, nonces=nonces),
        PageTokens(settings.secret_key),
        photo_urls or PhotoUrls(settings.photo_base_url),
        Reader(engine),
        settings.max_request_bytes,
        answers=AnswerCache(settings.answer_cache_mb * 1024 * 1024) if settings.answer_cache_mb else None,
    )


@dataclass
class OperatorApps:
    """The operator's side of the service, each a WSGI app (service.status, metrics, health)."""

    status: object | None = None
    metrics: object | None = None
    readiness: object | None = None


class Dispatcher:
    """Routes /soap (POST: SOAP, GET ?wsdl: the prebuilt WSDL), /photos/ (local store), /status,
    /metrics, /healthz and /readyz.

    ``precheck`` and ``render_error`` are the hooks of service.server.BufferingWorker: the
    first runs when a request's head has arrived and its body has not, the second renders the
    worker's own refusals (a body too large, a client too slow).
    """

    def __init__(self, soap: SoapEndpoint, wsdl: bytes, photo_files=None, operators: OperatorApps | None = None):
        self._soap = soap
        self._wsdl = wsdl
        self._photo_files = photo_files
        self._operators = operators or OperatorApps()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD")
        if path.rstrip("/") == SOAP_PATH:
            if method in ("GET", "HEAD") and _asks_for_wsdl(environ):
                return _respond(start_response, "200 OK", self._wsdl, "text/xml; charset=utf-8")
            if method == "POST":
                return self._soap(environ, start_response)
            return _respond(start_response, "405 Method Not Allowed",
                            b"POST SOAP requests to /soap; GET /soap?wsdl for the WSDL\n", "text/plain",
                            [("Allow", "GET, HEAD, POST")])
        if self._photo_files is not None and path.startswith("/photos/"):
            return self._photo_files(environ, start_response)
        app = self._operator_app(path)
        if app is not None:
            return app(environ, start_response)
        if path == "/" and self._operators.status is not None:
            return _respond(start_response, "302 Found", b"see /status\n", "text/plain", [("Location", "/status")])
        return _respond(start_response, "404 Not Found", b"not found: the SOAP endpoint is /soap\n", "text/plain")

    def _operator_app(self, path: str):
        from service.health import liveness

        ops = self._operators
        if path == "/healthz":
            return liveness
        if path == "/readyz":
            return ops.readiness
        if path == "/metrics":
            return ops.metrics
        if path == "/status" or path.startswith("/status/"):
            return ops.status
        return None

    def precheck(self, environ, start_response):
        if (environ.get("PATH_INFO") or "").rstrip("/") == SOAP_PATH and environ.get("REQUEST_METHOD") == "POST":
            return self._soap.precheck(environ, start_response)
        return None

    def render_error(self, environ, start_response, status: str, message: str):
        if (environ.get("PATH_INFO") or "").rstrip("/") == SOAP_PATH:
            return self._soap.render_error(environ, start_response, status, message)
        log.warning("%s from %s: %s", status, environ.get("REMOTE_ADDR"), message)
        return _respond(start_response, status, (message + "\n").encode(), "text/plain; charset=utf-8")


def _asks_for_wsdl(environ) -> bool:
    query = environ.get("QUERY_STRING", "")
    return query.split("=")[0].split("&")[0].lower() == "wsdl"


def _respond(start_response, status: str, body: bytes, content_type: str, extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def build_dispatcher(settings: Settings, engine: Engine, photo_urls: PhotoUrls | None = None,
                     photo_files=None, nonce_engine: Engine | None = None,
                     observe: Observer | None = None) -> Dispatcher:
    """The whole service on ``engine``: the endpoint, the WSDL addressed at ``{public_url}/soap``,
    and the operator's pages (metrics only when ``observe`` is given: it owns the counters)."""
    from service.wsdl import published_wsdl

    runtime = build_runtime(settings, engine, photo_urls, nonce_engine)
    endpoint = SoapEndpoint(runtime, observe)
    operators = operator_apps(settings, engine, runtime, photo_files, metrics=observe is not None)
    return Dispatcher(endpoint, published_wsdl(settings.public_url + SOAP_PATH), photo_files, operators)


def operator_apps(settings: Settings, engine: Engine, runtime: Runtime, photo_files, metrics: bool) -> OperatorApps:
    from service.health import Readiness, database_check, folder_check
    from service.metrics import FeedCollector, MetricsEndpoint
    from service.status import StatusPages

    checks = {"database": database_check(engine)}
    if photo_files is not None:
        checks["object store"] = folder_check(photo_files.store.root)
    multiprocess_dir = settings.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return OperatorApps(
        status=StatusPages(runtime.sessions, runtime.authenticator),
        metrics=MetricsEndpoint(FeedCollector(runtime.sessions), multiprocess_dir) if metrics else None,
        readiness=Readiness(checks),
    )


def create_app(settings: Settings | None = None) -> Dispatcher:
    """The WSGI entry point (gunicorn: ``service.app:create_app()``)."""
    from core.logs import configure
    from service.metrics import soap_metrics

    settings = settings or Settings.from_env()
    configure(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url)
    nonce_engine = make_engine(settings.database_url, immediate=True)
    photo_urls, photo_files = photo_links(settings)
    return build_dispatcher(settings, engine, photo_urls, photo_files, nonce_engine, soap_metrics().observe)


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
