"""Logins: threads share a few connections, and a server's cap on logins is not an error."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.connectors.logins import Logins
from pipeline.errors import FeedNotFound, SourceAuthError, SourceConfigError, SourceUnavailable

WHERE = "ftp://mls:21/photos"


class Server:
    """Logs users in like a server that lets ``cap`` in at once and refuses the next with
    ``refusal``; counts the attempts and the most sessions it saw at once."""

    def __init__(self, cap: int = 99, refusal: Exception | None = None):
        self.cap, self.refusal = cap, refusal
        self.open = self.most = self.attempts = self.dropped = 0
        self.lock = threading.Lock()

    def login(self) -> dict:
        with self.lock:
            self.attempts += 1
            if self.open >= self.cap:
                raise self.refusal
            self.open += 1
            self.most = max(self.most, self.open)
            return {"session": self.attempts}

    def logout(self, session: dict) -> None:
        with self.lock:
            self.open -= 1

    def drop(self, session: dict) -> None:
        self.dropped += 1
        self.logout(session)

    def logins(self, limit: int) -> Logins:
        return Logins(self.login, self.logout, limit, WHERE, drop=self.drop)


def read_everything(logins: Logins, threads: int = 8, files: int = 200) -> list[int]:
    def read(n: int) -> int:
        with logins.connection():
            time.sleep(0.002)  # a transfer takes a while: the threads overlap
            return n

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(read, range(files)))


def test_the_threads_share_at_most_limit_connections():
    server = Server()
    logins = server.logins(3)
    assert read_everything(logins) == list(range(200))
    assert (server.most, server.attempts) == (3, 3), "three logins, lent again and again"
    logins.close()
    assert server.open == 0


CAPS = [
    SourceUnavailable(f"{WHERE}: error_temp: 421 Too many connections from the same IP address."),
    SourceAuthError(f"{WHERE}: login as 'u' refused: 530 Sorry, the maximum number of clients (2) "
                    "for this user are already connected."),
]


@pytest.mark.parametrize("refusal", CAPS, ids=["421", "530"])
def test_a_server_that_caps_logins_gets_no_more_and_every_file_is_read(refusal, caplog):
    server = Server(cap=2, refusal=refusal)
    logins = server.logins(8)
    with caplog.at_level(logging.WARNING, logger="pipeline.connectors.logins"):
        assert read_everything(logins) == list(range(200))
    assert (server.most, logins.limit, logins.capped) == (2, 2, True)
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.connectors.logins"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{WHERE} refused one more connection ({refusal})"), warnings
    attempts = server.attempts
    read_everything(logins)
    assert server.attempts == attempts, "no login is tried past the cap"


def test_the_first_refused_login_is_the_callers_error():
    refusal = SourceAuthError(f"{WHERE}: login as 'u' refused: 530 Login incorrect.")
    logins = Server(cap=0, refusal=refusal).logins(4)
    with pytest.raises(SourceAuthError, match="530 Login incorrect"):
        read_everything(logins, threads=1, files=1)
    assert not logins.capped


def test_an_error_other_than_a_refusal_is_raised_even_with_connections_open():
    server = Server(cap=1, refusal=SourceConfigError(f"{WHERE}: TLS certificate not trusted"))
    logins = server.logins(2)
    with logins.connection():
        with pytest.raises(SourceConfigError, match="not trusted"):
            with logins.connection():
                pass
    assert not logins.capped and logins.limit == 2
    server.cap = 2  # the failed attempt holds no place: two connections can be lent at once
    both = threading.Thread(target=read_everything, args=(logins, 2, 4))
    both.start()
    both.join(timeout=10)
    assert not both.is_alive() and server.most == 2


@pytest.mark.parametrize("error, dropped", [
    (SourceUnavailable(f"{WHERE}: the server closed the connection"), True),
    (ConnectionResetError("reset by peer"), True),
    (FeedNotFound(f"{WHERE}: 550 No such file"), False),
], ids=["unavailable", "socket error", "server's answer"])
def test_a_connection_that_failed_is_dropped_and_one_that_was_answered_is_lent_again(error, dropped):
    server = Server()
    logins = server.logins(1)
    with pytest.raises(type(error)):
        with logins.connection():
            raise error
    with logins.connection() as session:
        pass
    assert server.dropped == int(dropped)
    assert session == {"session": 2 if dropped else 1}
    assert server.open == 1


def test_a_dead_server_fails_the_waiting_threads_instead_of_hanging_them():
    server = Server(cap=3, refusal=SourceUnavailable(f"{WHERE}: connection refused"))
    logins = server.logins(3)
    gone = threading.Event()

    def read(n: int) -> None:
        with logins.connection():
            time.sleep(0.002)
            if gone.is_set():
                raise SourceUnavailable(f"{WHERE}: the server closed the connection")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(read, range(30)))
        server.cap = 0
        gone.set()
        failures = [f.exception(timeout=10) for f in [pool.submit(read, n) for n in range(12)]]
    assert all(isinstance(e, SourceUnavailable) for e in failures), failures
    assert server.open == 0


def test_a_connection_given_back_after_close_is_logged_out():
    server = Server()
    logins = server.logins(2)
    with logins.connection():
        with logins.connection():
            pass
        logins.close()
        assert server.open == 1, "the idle one logged out, the lent one still in use"
    assert server.open == 0


def test_the_limit_is_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        Logins(object, print, 0, WHERE)
