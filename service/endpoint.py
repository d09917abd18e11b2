"""The SOAP endpoint: a POST in, one envelope out, with the cheap checks first.

The order of work is the service's defence against expensive requests:

1. the media type, charset and emptiness of the body (no parsing);
2. HTTP Basic credentials, before the body is parsed (the worker even asks before the body is
   read: :meth:`SoapEndpoint.precheck`); without them, the message is parsed only up to the
   start of its Body and the WS-Security UsernameToken found there is checked;
3. the rest of the parse and the SOAP 1.1 rules (service/envelope.py);
4. the operation's arguments against the contract (service/decode.py);
5. the operation (service/operations.py) and its response (service/encode.py).

Faults: the four declared ones as ``Client.<Name>`` with their detail element; SOAP's own
``VersionMismatch``, ``MustUnderstand`` and ``Client`` for messages that are not acceptable
requests; a bare ``Server`` "Internal Error" for anything unexpected. Every fault is HTTP 500,
except a call without any credentials: 401 with a Basic challenge (some clients, suds among
them, send credentials only when challenged), still carrying the declared fault.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from collections.abc import Callable
from dataclasses import dataclass

from service import envelope
from service.auth import NO_CREDENTIALS, SECURITY, Authenticator, from_basic, from_ws_security
from service.cache import Lru
from service.decode import operations_of
from service.encode import Encoder
from service.envelope import SoapFault
from service.errors import AuthenticationFailed, ServiceError
from service.operations import ANSWER_KEYS, HANDLERS
from service.server import HOLD
from service.types import NS

log = logging.getLogger("mlsfeeds.soap")

# Seconds a failed authentication's answer is held back (by the worker; nothing blocks): a
# client that loops on wrong or missing credentials sends a few requests a second, not hundreds.
FAILURE_HOLD = 0.25
MEMO_BYTES = 16 * 1024  # requests up to this size are remembered once read
LOGGED_CHARS = 300  # of a fault message in a log line: it may quote what a client sent
CHALLENGE = ("WWW-Authenticate", 'Basic realm="mlsfeeds", charset="UTF-8"')
XML = ("Content-Type", "text/xml; charset=utf-8")

# An observer sees every call: (operation, outcome, seconds, rows). The outcome is "ok" or the
# fault code; rows is the number of records in the answer.
Observer = Callable[[str, str, float, int], None]


class _Anonymous(Exception):
    """Neither HTTP credentials nor a UsernameToken."""


@dataclass
class _Call:
    operation: str = "-"
    client: str = "-"
    rows: int = 0


class SoapEndpoint:
    """The WSGI app behind ``POST /soap``. ``runtime`` is service.app.Runtime."""

    def __init__(self, runtime, observe: Observer | None = None):
        from service.api import ListingService

        self._runtime = runtime
        self._auth: Authenticator = runtime.authenticator
        self._operations = operations_of(ListingService, NS)
        self._names = frozenset(self._operations)
        self._encoder = Encoder(ListingService, NS)
        self._understood = frozenset({SECURITY})
        self._observe = observe or (lambda operation, outcome, seconds, rows: None)
        self._max_bytes = runtime.max_request_bytes
        # Requests already read, by their exact bytes: the same bytes always read the same (the
        # rules are deterministic), and clients repeat requests. Only for HTTP credentials: a
        # body with a UsernameToken carries its own nonce and is never the same twice.
        self._messages = Lru(2048)

    # -- before the body -------------------------------------------------------------------------

    def precheck(self, environ, start_response):
        """Refuse bad HTTP credentials while the body is still on the wire (worker hook)."""
        if not environ.get("HTTP_AUTHORIZATION"):
            return None
        try:
            credentials = from_basic(environ)
            with self._runtime.sessions() as session:
                self._auth.check(session, credentials)
        except AuthenticationFailed as exc:
            self._finish(_Call(), "Client.AuthenticationFailed", time.perf_counter(), str(exc))
            environ[HOLD] = FAILURE_HOLD
            return self._reply(start_response, "500 Internal Server Error",
                               self._encoder.fault("Client.AuthenticationFailed", str(exc), "AuthenticationFailed"))
        return None

    def render_error(self, environ, start_response, status: str, message: str):
        """The worker's own refusals (body too large, too slow...) as a SOAP Client fault."""
        self._finish(_Call(), "Client", time.perf_counter(), message)
        return self._reply(start_response, status, self._encoder.fault("Client", message))

    # -- the call --------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        call = _Call()
        headers = []
        try:
            payload = self._answer(environ, call)
            status, outcome = "200 OK", "ok"
        except _Anonymous:
            status, outcome, headers = "401 Unauthorized", "Client.AuthenticationFailed", [CHALLENGE]
            payload = self._encoder.fault(outcome, NO_CREDENTIALS, "AuthenticationFailed")
            self._finish(call, outcome, started, NO_CREDENTIALS)
        except ServiceError as exc:
            name = type(exc).__name__
            status, outcome = "500 Internal Server Error", f"Client.{name}"
            payload = self._encoder.fault(outcome, str(exc), name)
            self._finish(call, outcome, started, str(exc))
        except SoapFault as exc:
            status, outcome = f"{exc.status} {HTTPStatus(exc.status).phrase}", exc.code
            payload = self._encoder.fault(exc.code, exc.message)
            self._finish(call, outcome, started, exc.message)
        except Exception:
            log.exception("%s failed (client %s)", call.operation, call.client)
            status, outcome = "500 Internal Server Error", "Server"
            payload = self._encoder.fault("Server", "Internal Error")
            self._finish(call, outcome, started, None)
        else:
            self._finish(call, outcome, started, None)
        if outcome == "Client.AuthenticationFailed":
            environ[HOLD] = FAILURE_HOLD
        return self._reply(start_response, status, payload, headers)

    def _answer(self, environ, call: _Call) -> bytes:
        body, content_type = self._body(environ), environ.get("CONTENT_TYPE")
        seen = self._messages.get((content_type, body)) if environ.get("HTTP_AUTHORIZATION") else None
        document = None if seen else envelope.document_bytes(body, content_type)
        credentials, partial = (from_basic(environ), None) if seen else self._credentials(environ, document)
        runtime = self._runtime
        with runtime.sessions() as session:
            caller = self._auth.check(session, credentials)
            call.client = caller.name
            operation, arguments = seen or self._read(document, partial)
            if not seen and partial is None and len(body) <= MEMO_BYTES:
                self._messages.put((content_type, body), (operation, arguments))
            call.operation = operation
            context = runtime.call(session, caller)
            try:
                return self._run(context, operation, arguments, call)
            finally:
                context.close()

    def _read(self, document: bytes, partial) -> tuple[str, dict]:
        """(operation, arguments) of a document, through every SOAP and contract rule."""
        root = envelope.parse(document) if partial is None else envelope.finish(partial, document)
        message = envelope.read_message(root, self._names, NS, self._understood)
        return message.operation, self._operations[message.operation].decode(message.element)

    def _run(self, context, operation: str, arguments: dict, call: _Call) -> bytes:
        """The operation's encoded answer, from the answer cache when it has it."""
        answers, key_of = self._runtime.answers, ANSWER_KEYS.get(operation)
        key = key_of(context, **arguments) if answers is not None and key_of is not None else None
        if key is not None and (cached := answers.get(key)) is not None:
            payload, call.rows = cached
            return payload
        values = HANDLERS[operation](context, **arguments)
        call.rows = _rows(values)
        payload = self._encoder.response(operation, values)
        if key is not None:
            answers.put(key, (payload, call.rows))
        return payload

    @staticmethod
    def _credentials(environ, document: bytes):
        """(credentials, partial parse): HTTP credentials before any parsing; else the
        UsernameToken, after parsing only as far as the start of the Body."""
        credentials = from_basic(environ)
        if credentials is not None:
            return credentials, None
        partial = envelope.read_header(document)
        credentials = from_ws_security(partial.header)
        if credentials is None:
            raise _Anonymous()
        return credentials, partial

    def _body(self, environ) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise envelope.client_fault("the Content-Length is not a number") from None
        if length > self._max_bytes:
            raise SoapFault("Client", f"the request is larger than {self._max_bytes} bytes", 413)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        return envelope.inflated(body, environ.get("HTTP_CONTENT_ENCODING"), self._max_bytes)

    # -- answers ---------------------------------------------------------------------------------

    def _finish(self, call: _Call, outcome: str, started: float, message: str | None) -> None:
        seconds = time.perf_counter() - started
        if outcome != "ok" and outcome != "Server":
            # The caller's mistake: one line, no traceback, and never more of its values than this.
            text = (message or "")[:LOGGED_CHARS] + ("..." if message and len(message) > LOGGED_CHARS else "")
            log.warning("%s %s client=%s %.1fms: %s", call.operation, outcome, call.client, seconds * 1000,
                        text, extra={"client": call.client})
        self._observe(call.operation, outcome, seconds, call.rows)

    @staticmethod
    def _reply(start_response, status: str, payload: bytes, headers=()):
        start_response(status, [XML, ("Content-Length", str(len(payload))), *headers])
        return [payload]


def _rows(values) -> int:
    """How many records an answer carries (listings, images, feeds; a listing)."""
    return sum(len(v) if isinstance(v, list) else isinstance(v, tuple) for v in values)
