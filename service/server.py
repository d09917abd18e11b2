"""A gunicorn worker that reads every request whole before the application sees it.

gunicorn's ``sync`` worker hands a connection to the application as soon as it is accepted and
then blocks reading it: two clients sending a byte every few seconds hold two workers until the
worker timeout kills them. gunicorn's answer is a buffering proxy in front (nginx); ours is the
same buffering inside the worker, so ``mlsfeeds serve`` holds up on its own:

- one event loop per worker process (``selectors``) reads headers and bodies of any number of
  connections into memory, with deadlines: the head within ``header_timeout`` seconds of its
  first byte, the body within ``body_timeout``, an idle keep-alive connection for ``keepalive``;
  limits on the request line, the header count and size, and the body size;
- only a complete request reaches the WSGI application, which runs in the loop's thread, one
  request at a time, exactly as under ``sync`` (the database work is short; more processes, not
  threads, use more cores);
- responses are written without blocking: a client that does not read its response costs a
  buffer, not a worker; keep-alive and pipelining work, so a busy client pays no TCP handshake
  per call.

Two optional hooks on the WSGI application let it answer before a body is read (``precheck``:
bad HTTP Basic credentials are refused while the body is still on the wire, and a client that
sent ``Expect: 100-continue`` never sends it) and render the worker's own refusals (413, 408...)
in its protocol (``render_error``: a SOAP fault on the SOAP endpoint).
"""

from __future__ import annotations

import errno
import gc
import io
import os
import re
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

from gunicorn.workers import base

MAX_BODY_BYTES = 1024 * 1024
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
WRITE_TIMEOUT = 30.0
LINGER_SECONDS = 2.0
DRAIN_SECONDS = 1.0
LINGER_BYTES = 4 * MAX_BODY_BYTES
READ_CHUNK = 65536
# The worker's own refusals (413, 431, 400...) are answered after this long, as a failed
# authentication is: the wait costs the worker a deadline, not its time, and a client looping
# on a refused request (a 2 MB body again and again) can no longer keep a worker refusing it.
REFUSAL_HOLD = 0.25

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)\Z")
_REASONS = {
    400: "Bad Request", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
    414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request the worker refuses before the application sees it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.head: Head | None = None

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS.get(self.status, 'Error')}"


@dataclass
class Limits:
    request_line: int = 8190
    header_fields: int = 100
    header_field_size: int = 8190
    body: int = MAX_BODY_BYTES

    @property
    def head(self) -> int:
        return self.request_line + self.header_fields * (self.header_field_size + 2) + 4


@dataclass
class Head:
    """The parsed request line and headers."""

    method: str
    target: str
    version: tuple[int, int]
    headers: list[tuple[str, str]]
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def parse_head(raw: bytes, limits: Limits) -> Head:
    """The request line and header fields of ``raw`` (without the blank line), or HttpError."""
    lines = raw.split(b"\n")
    request_line = lines[0].rstrip(b"\r")
    if len(request_line) > limits.request_line:
        raise HttpError(414, f"the request line is longer than {limits.request_line} bytes")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HttpError(400, "the request line is not METHOD TARGET HTTP/x.y")
    version = _VERSION.match(parts[2])
    if not version:
        raise HttpError(400, "the request line has no HTTP version")
    major, minor = int(version.group(1)), int(version.group(2))
    if major != 1:
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    headers = _parse_fields(lines[1:], limits)
    head = Head(parts[0].decode("ascii"), parts[1].decode("latin-1"), (major, minor), headers)
    try:
        _frame(head)
    except HttpError as exc:
        exc.head = head  # enough to answer in the protocol of the path asked for
        raise
    return head


def _parse_fields(lines: list[bytes], limits: Limits) -> list[tuple[str, str]]:
    if len(lines) > limits.header_fields:
        raise HttpError(431, f"more than {limits.header_fields} header fields")
    headers = []
    for line in lines:
        line = line.rstrip(b"\r")
        if len(line) > limits.header_field_size:
            raise HttpError(431, f"a header field is longer than {limits.header_field_size} bytes")
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "folded header lines (obs-fold) are not accepted")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise HttpError(400, f"malformed header field {line[:40].decode('latin-1')!r}")
        if b"\r" in value or b"\0" in value:
            raise HttpError(400, f"a control character in header {name.decode('latin-1')!r}")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return headers


def _frame(head: Head) -> None:
    """Body framing and connection handling from the headers; ambiguous framing is refused
    (a proxy in front and this worker must never disagree on where a request ends)."""
    lengths = {v.strip() for k, v in head.headers if k.lower() == "content-length"}
    codings = [c.strip().lower() for k, v in head.headers if k.lower() == "transfer-encoding"
               for c in v.split(",") if c.strip()]
    if codings:
        if lengths:
            raise HttpError(400, "both Content-Length and Transfer-Encoding: refused")
        if codings != ["chunked"]:
            raise HttpError(501, f"unsupported Transfer-Encoding {', '.join(codings)!r}")
        head.chunked = True
    elif lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise HttpError(400, "invalid Content-Length")
        head.content_length = int(next(iter(lengths)))
    connection = {t.strip().lower() for v in _values(head, "connection") for t in v.split(",")}
    if head.version >= (1, 1):
        head.keep_alive = "close" not in connection
    else:
        head.keep_alive = "keep-alive" in connection
    expect = (head.header("expect") or "").strip().lower()
    if expect and expect != "100-continue":
        raise HttpError(400, f"unsupported Expect: {expect!r}")
    head.expect_continue = expect == "100-continue" and head.version >= (1, 1)


def _values(head: Head, name: str) -> list[str]:
    return [v for k, v in head.headers if k.lower() == name]


class ChunkedBody:
    """Decodes a chunked request body as bytes arrive; ``feed`` returns the unused tail."""

    def __init__(self, limit: int):
        self.data = bytearray()
        self.done = False
        self._limit = limit
        self._need = -1  # -1: a size line is next; -2: trailers; otherwise bytes of a chunk (+2)

    def feed(self, buf: bytearray) -> bytearray:
        while not self.done:
            if self._need == -1:
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise HttpError(400, "a chunk size line is too long")
                    return buf
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 1]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpError(400, "a malformed chunk size") from None
                if len(self.data) + size > self._limit:
                    raise HttpError(413, f"the request body is larger than {self._limit} bytes")
                self._need = size + 2 if size else -2
            elif self._need == -2:
                end = buf.find(b"\n")
                if end < 0:
                    return buf
                line = bytes(buf[:end]).strip()
                del buf[: end + 1]
                self.done = not line  # a blank line ends the trailers
            else:
                if len(buf) < self._need:
                    return buf
                chunk = buf[: self._need]
                if not chunk.endswith(b"\n"):
                    raise HttpError(400, "a chunk does not end where its size says")
                self.data += chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1]
                del buf[: self._need]
                self._need = -1
        return buf


# -- connections ----------------------------------------------------------------------------

READING, HELD, WRITING, LINGERING = "reading", "held", "writing", "lingering"
# An application that wants its response held back a while (to slow a client that keeps failing
# to authenticate, without blocking the worker) puts the seconds in the environ under this key.
HOLD = "mlsfeeds.hold_response"


@dataclass(eq=False)
class Connection:
    sock: socket.socket
    addr: tuple
    listener: tuple
    state: str = READING
    buffer: bytearray = field(default_factory=bytearray)
    head: Head | None = None
    body: bytearray | ChunkedBody | None = None
    out: bytearray = field(default_factory=bytearray)
    close_after_write: bool = False
    deadline: float = 0.0
    started: float = 0.0  # first byte of the current request
    served: int = 0

    @property
    def idle(self) -> bool:
        return self.state == READING and not self.buffer and self.head is None


class _Response:
    """What gunicorn's access logger reads of a response."""

    def __init__(self, status: str, headers: list, sent: int):
        self.status, self.headers, self.sent = status, headers, sent


class _Request:
    def __init__(self, headers: list):
        self.headers = headers


class _Board:
    """Open connections per worker, in memory shared by all of gunicorn's workers.

    A keep-alive connection stays with the worker that accepted it, and every worker wakes when
    one arrives: left alone, a client opening its pool of connections may find most of them on
    one worker while another idles. So a worker accepts only while no live worker holds fewer
    connections than it does. The board is made when the arbiter imports this module, before it
    forks the workers; a worker that finds no slot accepts freely.
    """

    SLOTS = 256
    RECHECK = 0.005  # seconds between looks at the board while not accepting

    def __init__(self):
        from multiprocessing.sharedctypes import RawArray

        self._pids = RawArray("q", self.SLOTS)
        self._counts = RawArray("i", self.SLOTS)
        self._top = RawArray("i", 1)  # slots in use are below this

    def join(self, pid: int) -> int | None:
        for slot in range(self.SLOTS):
            if self._pids[slot] in (0, pid) or not _alive(self._pids[slot]):
                self._pids[slot], self._counts[slot] = pid, 0
                self._top[0] = max(self._top[0], slot + 1)
                return slot
        return None

    def post(self, slot: int | None, count: int) -> None:
        if slot is not None:
            self._counts[slot] = count

    def may_accept(self, slot: int | None, count: int) -> bool:
        if slot is None:
            return True
        pids, counts = self._pids, self._counts
        for other in range(self._top[0]):
            if other != slot and counts[other] < count and pids[other] and _alive(pids[other]):
                return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


BOARD = _Board()


class BufferingWorker(base.Worker):
    """See the module docstring. Use with ``worker_class = "service.server.BufferingWorker"``."""

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT

    def init_process(self) -> None:
        from core.settings import Settings

        settings = Settings.from_env()
        self.limits = Limits(self.cfg.limit_request_line or 8190, self.cfg.limit_request_fields or 100,
                             self.cfg.limit_request_field_size or 8190, settings.max_request_bytes)
        self.header_timeout = float(settings.header_timeout)
        self.body_timeout = float(settings.body_timeout)
        self.max_connections = max(1, self.cfg.worker_connections)
        self.connections: dict[int, Connection] = {}
        self.selector = selectors.DefaultSelector()
        self.listening = False
        self._slot = BOARD.join(os.getpid())
        super().init_process()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        # Everything the application built at start-up lives as long as the worker: frozen, the
        # collector never walks it again, so no collection on the request path is a full one.
        gc.collect()
        gc.freeze()
        for listener in self.sockets:
            listener.setblocking(False)
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, "wakeup")
        self._listen(True)
        while self.alive:
            self._turn()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self._shut_down()

    def _turn(self, timeout: float = 1.0) -> None:
        self.notify()
        for key, mask in self.selector.select(self._wait(timeout)):
            if key.data == "wakeup":
                _drain_pipe(self.PIPE[0])
            elif key.data == "listener":
                self._accept(key.fileobj)
            else:
                self._on_event(key.data, mask)
        self._expire(time.monotonic())
        count = len(self.connections)
        BOARD.post(self._slot, count)
        self._listen(self.alive and count < self.max_connections and BOARD.may_accept(self._slot, count))

    def _wait(self, timeout: float) -> float:
        soonest = min((c.deadline for c in self.connections.values()), default=time.monotonic() + timeout)
        if not self.listening and self.alive:
            soonest = min(soonest, time.monotonic() + BOARD.RECHECK)  # the others may have caught up
        return max(0.0, min(timeout, soonest - time.monotonic()))

    def _listen(self, on: bool) -> None:
        if on == self.listening:
            return
        for listener in self.sockets:
            if on:
                self.selector.register(listener, selectors.EVENT_READ, "listener")
            else:
                self.selector.unregister(listener)
        self.listening = on

    def _accept(self, listener) -> None:
        """One connection per turn; the board (see _Board) decides whether there is another."""
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return
            raise
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock, addr if isinstance(addr, tuple) else ("", -1), _sockname(listener))
        conn.deadline = time.monotonic() + self.header_timeout
        self.connections[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)
        BOARD.post(self._slot, len(self.connections))
        if len(self.connections) >= self.max_connections:
            self._evict_idle()

    def _evict_idle(self) -> None:
        """At the connection limit, make room by closing the longest-idle keep-alive connection."""
        idle = [c for c in self.connections.values() if c.idle and c.served]
        if idle:
            self._close(min(idle, key=lambda c: c.deadline))

    def _on_event(self, conn: Connection, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                self._on_readable(conn)
            if mask & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                self._flush(conn)
        except OSError:
            self._close(conn)

    def _on_readable(self, conn: Connection) -> None:
        data = conn.sock.recv(READ_CHUNK)
        if not data:
            self._close(conn)
            return
        if conn.state == LINGERING or (conn.state in (HELD, WRITING) and conn.close_after_write):
            return  # the response is (or will be) the last: what the client still sends is thrown away
        if conn.state in (HELD, WRITING):
            conn.buffer += data  # a pipelined request: handled after the current response
            return
        if not conn.buffer and conn.head is None:
            conn.started = time.monotonic()
            conn.deadline = conn.started + self.header_timeout
        conn.buffer += data
        self._advance(conn)

    # -- reading a request -------------------------------------------------------------------

    def _advance(self, conn: Connection) -> None:
        """Move the request on as far as the buffered bytes allow."""
        try:
            if conn.head is None and not self._read_head(conn):
                return
            if not self._read_body(conn):
                return
        except HttpError as exc:
            self._refuse(conn, exc)
            return
        self._serve(conn)

    def _read_head(self, conn: Connection) -> bool:
        match = _HEAD_END.search(conn.buffer, 0, self.limits.head + 4)
        if match is None:
            if len(conn.buffer) > self.limits.head:
                raise HttpError(431, "the request head is too large")
            if conn.buffer[:1] in (b"\r", b"\n"):
                del conn.buffer[:1]  # tolerate blank lines between requests (RFC 9112 2.2)
            return False
        raw = bytes(conn.buffer[: match.start()])
        del conn.buffer[: match.end()]
        conn.head = head = parse_head(raw, self.limits)
        if head.content_length is not None and head.content_length > self.limits.body:
            raise HttpError(413, f"the request body is larger than {self.limits.body} bytes")
        conn.deadline = time.monotonic() + self.body_timeout
        conn.body = ChunkedBody(self.limits.body) if head.chunked else bytearray()
        if not self._has_body(head):
            return True
        if hasattr(self.wsgi, "precheck"):
            environ = self._environ(conn, b"")
            environ["CONTENT_LENGTH"] = str(head.content_length or "")
            early = self._precheck(conn, environ)
            if early is not None:
                self._respond(conn, *early, close=True, environ=environ, started=conn.started)
                return False
        if head.expect_continue:
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except (BlockingIOError, InterruptedError):
                pass  # the client sends its body anyway once it tires of waiting
        return True

    @staticmethod
    def _has_body(head: Head) -> bool:
        return head.chunked or bool(head.content_length)

    def _read_body(self, conn: Connection) -> bool:
        head = conn.head
        if isinstance(conn.body, ChunkedBody):
            conn.buffer = conn.body.feed(conn.buffer)
            return conn.body.done
        need = head.content_length or 0
        if len(conn.buffer) < need:
            return False
        conn.body = conn.buffer[:need]
        del conn.buffer[:need]
        return True

    def _precheck(self, conn: Connection, environ: dict):
        hook = getattr(self.wsgi, "precheck", None)
        if hook is None:
            return None
        try:
            return _call_app(hook, environ)
        except Exception:
            self.log.exception("Error in precheck of %s", conn.head.target[:200])
            return _server_error()

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        head = conn.head
        body = conn.body.data if isinstance(conn.body, ChunkedBody) else conn.body
        environ = self._environ(conn, bytes(body or b""))
        started = time.monotonic()
        try:
            status, headers, payload = _call_app(self.wsgi, environ) or _server_error()
        except Exception:  # the application's own failure: answer it, keep the worker
            self.log.exception("Error handling request %s", head.target[:200])
            status, headers, payload = _server_error()
        self.nr += 1
        close = not head.keep_alive or not self.alive or self.nr >= self.max_requests
        self._respond(conn, status, headers, payload, close=close, environ=environ, started=started)
        if self.nr >= self.max_requests:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False

    def _refuse(self, conn: Connection, error: HttpError) -> None:
        renderer = getattr(self.wsgi, "render_error", None)
        conn.head = conn.head or error.head
        environ = self._environ(conn, b"") if conn.head else None
        response = None
        if renderer is not None and environ is not None:  # the application logs what it renders
            response = _call_app(lambda env, sr: renderer(env, sr, error.status_line, error.message), environ)
        if response is None:
            self.log.warning("Invalid request from ip=%s: %s", conn.addr[0], error.message)
            body = (error.message + "\n").encode()
            response = (error.status_line, [("Content-Type", "text/plain; charset=utf-8")], body)
        # a client too slow to finish its request is not kept waiting again
        self._respond(conn, *response, close=True, environ=environ, hold=REFUSAL_HOLD if error.status != 408 else None)

    def _respond(self, conn: Connection, status: str, headers: list, payload: bytes, *, close: bool,
                 environ: dict | None = None, started: float | None = None, hold: float | None = None) -> None:
        head_only = conn.head is not None and conn.head.method == "HEAD"
        lines = [f"HTTP/1.1 {status}\r\n"]
        for name, value in headers:
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "date"):
                lines.append(f"{name}: {value}\r\n")
        if not any(name.lower() == "content-length" for name, _ in headers):
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append(f"Date: {_http_date()}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n")
        conn.out += "".join(lines).encode("latin-1")
        if not head_only:
            conn.out += payload
        if environ is not None:
            self._log_access(conn, environ, status, headers, len(payload), started)
        conn.close_after_write = close
        conn.head, conn.body = None, None
        conn.served += 1
        if environ is not None and environ.get(HOLD):
            hold = environ[HOLD]
        if hold:
            conn.state, conn.deadline = HELD, time.monotonic() + float(hold)  # _expire sends it
            return
        self._write(conn)

    def _write(self, conn: Connection) -> None:
        conn.state = WRITING
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        self._flush(conn)

    def _flush(self, conn: Connection) -> None:
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            del conn.out[:sent]
            if sent:
                conn.deadline = time.monotonic() + WRITE_TIMEOUT
        if conn.out:
            self.selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            return
        self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.close_after_write:
            self._linger(conn)
            return
        conn.state = READING
        conn.deadline = time.monotonic() + self.cfg.keepalive
        if conn.buffer:  # a pipelined request is waiting
            conn.started = time.monotonic()
            conn.deadline = conn.started + self.header_timeout
            self._advance(conn)

    def _linger(self, conn: Connection) -> None:
        """Close our side but keep reading a little: closing with unread bytes would reset the
        connection, and the client could lose the response it has not read yet."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = LINGERING
        conn.deadline = time.monotonic() + LINGER_SECONDS

    def _expire(self, now: float) -> None:
        for conn in [c for c in self.connections.values() if c.deadline <= now]:
            if conn.state == HELD:
                self._write(conn)
            elif conn.state == READING and (conn.buffer or conn.head is not None):
                self._refuse(conn, HttpError(408, "the request was not received in time"))
            else:
                self._close(conn)

    def _close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if fd >= 0 and self.connections.pop(fd, None) is not None:
            self.selector.unregister(conn.sock)
        conn.sock.close()

    def _shut_down(self) -> None:
        """Stop accepting, and drain: for a moment keep answering the requests that arrive on
        open connections (each answer says ``Connection: close``), since a client may have sent
        one just now; then close the idle connections and finish the rest within the graceful
        timeout."""
        self._listen(False)
        started = time.monotonic()
        while self.connections and time.monotonic() < started + self.cfg.graceful_timeout:
            if time.monotonic() > started + DRAIN_SECONDS:
                for conn in [c for c in self.connections.values() if c.idle]:
                    self._close(conn)
            self._turn(0.1)
        for conn in list(self.connections.values()):
            self._close(conn)

    # -- WSGI --------------------------------------------------------------------------------

    def _environ(self, conn: Connection, body: bytes) -> dict:
        head = conn.head
        path, _, query = head.target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        host, port = conn.listener[:2] if len(conn.listener) >= 2 else ("", "")
        environ = {
            "REQUEST_METHOD": head.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": head.target,
            "SERVER_PROTOCOL": f"HTTP/{head.version[0]}.{head.version[1]}",
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "REMOTE_ADDR": str(conn.addr[0]),
            "REMOTE_PORT": str(conn.addr[1]) if len(conn.addr) > 1 else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body or head.content_length is not None or head.chunked:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in head.headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH" and "_" not in name:
                # Names with underscores are dropped: they would alias dashed names (a proxy may
                # vouch for X-Forwarded-For, and an X_Forwarded_For must not pass for it).
                key = "HTTP_" + key
                environ[key] = f"{environ[key]}, {value}" if key in environ else value
        return environ

    def _log_access(self, conn, environ, status, headers, sent, started) -> None:
        elapsed = time.monotonic() - (started or conn.started or time.monotonic())
        self.log.access(_Response(status, headers, sent), _Request(conn.head.headers if conn.head else []),
                        environ, timedelta(seconds=elapsed))


def _call_app(app, environ: dict):
    """(status, headers, body bytes) of a WSGI call, or None when the app returned nothing."""
    captured = []

    def start_response(status, headers, exc_info=None):
        captured[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    if result is None:
        return None
    try:
        payload = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured[0], list(captured[1]), payload


def _server_error():
    return "500 Internal Server Error", [("Content-Type", "text/plain")], b"internal error\n"


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass


def _sockname(listener) -> tuple:
    try:
        name = listener.getsockname()
    except OSError:
        return ("", "")
    return name if isinstance(name, tuple) else (name, "")


_date_cache = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, formatdate(now, usegmt=True)]
    return _date_cache[1]
