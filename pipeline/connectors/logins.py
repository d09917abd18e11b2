"""Logged-in connections to one file server, shared by threads, at most a few at once.

Photo jobs and migrations read thousands of files from one FTP, FTPS or SFTP server with many
threads. A login per thread would ask the server for as many sessions as there are threads,
and MLS servers cap the sessions of one user: ProFTPD answers the login past its cap with
"530 Sorry, the maximum number of clients (N) for this user are already connected", vsftpd and
pyftpdlib greet the connection past theirs with "421 Too many connections". ``Logins`` lends a
thread a connection for as long as it reads (an idle one, a new one while under the limit, else
the next given back) and takes a refusal while others are open as that cap: it logs it once,
lowers its limit to the connections open, and the thread waits for one of them. Refused with
none open, the error is the caller's, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from pipeline.errors import PipelineError, SourceAuthError, SourceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Logins(Generic[T]):
    """At most ``limit`` connections made by ``login``; ``logout`` ends one politely, ``drop``
    one whose state is unknown (after an error; ``logout`` unless given)."""

    def __init__(self, login: Callable[[], T], logout: Callable[[T], None], limit: int, where: str,
                 drop: Callable[[T], None] | None = None):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._login, self._logout, self._drop = login, logout, drop or logout
        self.limit = limit
        self.where = where
        self.capped = False  # the server refused a connection beyond those open
        self._idle: list[T] = []
        self._open = 0  # idle and lent
        self._closed = False
        self._changed = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[T]:
        """A connection for this thread until the block ends. It is dropped when the block raises
        SourceUnavailable or an error that is not a pipeline error (a transfer may be half read);
        a server's answer (a missing file, a refused command) leaves it in step, to be lent again."""
        connection = self._take()
        try:
            yield connection
        except BaseException as exc:
            if isinstance(exc, SourceUnavailable) or not isinstance(exc, PipelineError):
                self._forget(connection)
                raise
            self._give_back(connection)
            raise
        self._give_back(connection)

    def close(self) -> None:
        """Log out of the idle connections now, and of each lent one when it is given back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for connection in idle:
            self._logout(connection)

    def _take(self) -> T:
        while True:
            with self._changed:
                while not self._idle and self._open >= self.limit:
                    self._changed.wait()
                if self._idle:
                    return self._idle.pop()
                self._open += 1
            try:
                return self._login()
            except BaseException as exc:
                with self._changed:
                    self._open -= 1
                    self._changed.notify()
                    if self._open == 0 or not isinstance(exc, (SourceUnavailable, SourceAuthError)):
                        raise
                    if not self.capped:
                        log.warning("%s refused one more connection (%s); going on over the %d open",
                                    self.where, exc, self._open)
                    self.capped, self.limit = True, min(self.limit, self._open)

    def _give_back(self, connection: T) -> None:
        with self._changed:
            if not self._closed:
                self._idle.append(connection)
                self._changed.notify()
                return
            self._open -= 1
        self._logout(connection)

    def _forget(self, connection: T) -> None:
        try:
            self._drop(connection)
        finally:
            with self._changed:
                self._open -= 1
                self._changed.notify()
