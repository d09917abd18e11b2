"""Normal requests while hostile clients press on the service: the issue's probes, at length.

    python -m bench.hostile [--trickle-seconds 60] [--heavy-seconds 20] [--connections 64]

Serves the throughput bench's database (bench/soap_search.py builds it) with the shipped
``gunicorn.conf.py`` (2 workers) and measures one sequential client's authenticated searches:

1. idle;
2. while ``--connections`` connections trickle a byte every half second (half never finish their
   headers, half trickle their body), for ``--trickle-seconds``;
3. while four senders post bodies of 1 MB without valid credentials, for ``--heavy-seconds``:
   one with a wrong password in HTTP Basic, one with the word UsernameToken all through its Body,
   one with a real UsernameToken of an unknown user, one over the 1 MiB limit (each checks that
   every answer is the refusal it should be);

and prints p50/p99 of each next to the idle ones, the ratio (the issue's bar: p99 within 3x of
idle), whether a worker was replaced, and the workers' resident memory before and after.
Senders run in processes of their own, so they do not share an interpreter with the client
that measures. tests/integration/test_slow_clients.py runs the same probes for 10 seconds.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.soap_search import (  # noqa: E402
    ENVELOPE, REQUEST_HEADERS, SECRET_KEY, WORK_DIR, default_database_url, gunicorn, prepare_database, source_ids,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def junk(size: int, header: str = "") -> bytes:
    """A SearchListings envelope of about ``size`` bytes whose City is the word UsernameToken
    over and over, after ``header`` (a soap:Header, or nothing)."""
    head = (f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:m="urn:mlsfeeds:soap:1">{header}<s:Body>'
            "<m:SearchListings><m:City>")
    tail = "</m:City></m:SearchListings></s:Body></s:Envelope>"
    return (head + "UsernameToken " * ((size - len(head) - len(tail)) // 14) + tail).encode()


STRANGER_TOKEN = (f'<s:Header><wsse:Security xmlns:wsse="{WSSE}" s:mustUnderstand="1"><wsse:UsernameToken>'
                  "<wsse:Username>mallory</wsse:Username><wsse:Password>guess</wsse:Password>"
                  "</wsse:UsernameToken></wsse:Security></s:Header>")
# Four senders of bodies just under the 1 MiB limit and over it, none with valid credentials:
# (Authorization header, body, the status every answer must have).
HEAVY_SENDERS = [
    ("Basic bWFsbG9yeTp4", junk(1_000_000), 500),          # a wrong password: refused before the body
    (None, junk(1_000_000), 401),                           # the word UsernameToken, no header
    (None, junk(1_000_000, STRANGER_TOKEN), 500),           # a real UsernameToken of nobody
    ("Basic bm90LWJhc2U2NA==", junk(1_100_000), 413),       # over the limit
]


def latencies(base: str, seconds: float, body: bytes = ENVELOPE, headers: dict = REQUEST_HEADERS) -> list[float]:
    """Normal authenticated requests, one after another, for ``seconds``."""
    session = requests.Session()
    found = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        reply = session.post(base + "/soap", data=body, headers=headers, timeout=60)
        found.append(time.perf_counter() - started)
        if reply.status_code != 200:
            raise SystemExit(f"bench/hostile: a normal request got {reply.status_code}: {reply.text[:300]}")
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def trickle(port: int, stop, payload: bytes) -> None:
    """Send ``payload`` a byte every half second, reconnecting whenever the server hangs up."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                for byte in payload:
                    if stop.wait(0.5):
                        return
                    sock.send(bytes([byte]))
        except OSError:
            stop.wait(0.2)


def tricklers(port: int, payloads: list[bytes], stop) -> None:
    """One connection per payload, each trickling (threads: they mostly sleep)."""
    threads = [threading.Thread(target=trickle, args=(port, stop, p), daemon=True) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def trickle_payloads(count: int, head: bytes, body: bytes) -> list[bytes]:
    """Half never finish their headers; half send their headers, then trickle the body."""
    unfinished = head.rstrip(b"\r\n") + b"\r\nX-Slow: " + b"s" * 100
    return [unfinished] * (count // 2) + [head + body] * (count - count // 2)


def big_sender(port: int, authorization: str | None, body: bytes, status: int, stop) -> None:
    """``body`` without valid credentials, again and again; every answer must be ``status``
    (a connection the server closes while the body is still on its way counts as answered)."""
    headers = {"Content-Type": "text/xml"} | ({"Authorization": authorization} if authorization else {})
    while not stop.is_set():
        try:
            reply = requests.post(f"http://127.0.0.1:{port}/soap", data=body, headers=headers, timeout=60)
        except requests.RequestException:
            stop.wait(0.1)
            continue
        if reply.status_code != status:
            raise SystemExit(f"bench/hostile: a heavy sender expected {status}, got {reply.status_code}: "
                             f"{reply.text[:300]}")


def heavy_senders(port: int) -> list:
    return [functools.partial(big_sender, port, *sender) for sender in HEAVY_SENDERS]


def under_load(measure, senders, settle: float = 1.0):
    """What ``measure()`` returns while each sender runs in a process of its own; a sender that
    stopped on a wrong answer fails the measurement."""
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    processes = [context.Process(target=sender, args=(stop,), daemon=True) for sender in senders]
    for process in processes:
        process.start()
    time.sleep(settle)
    try:
        found = measure()
    finally:
        stop.set()
        for process in processes:
            process.join(15)
            if process.is_alive():
                process.kill()
    if failed := [p.exitcode for p in processes if p.exitcode]:
        raise RuntimeError(f"bench/hostile: {len(failed)} sender(s) got a wrong answer (see above)")
    return found


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(label: str, idle: list[float], busy: list[float]) -> None:
    ratio = percentile(busy, 0.99) / percentile(idle, 0.99)
    print(f"  {label:44s} p50 {percentile(busy, 0.5) * 1000:7.2f} ms  p99 {percentile(busy, 0.99) * 1000:7.2f} ms"
          f"  ({len(busy):,} requests; p99 {ratio:.2f}x idle)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trickle-seconds", type=float, default=60)
    parser.add_argument("--heavy-seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    url = default_database_url(100_000, 5)
    prepare_database(url, 100_000, source_ids(5), fresh=False)
    env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET_KEY, "MLSFEEDS_LOG_LEVEL": "WARNING"}
    with gunicorn("service.app:create_app()", env, 2, WORK_DIR / "gunicorn-hostile.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        workers = children(server.pid)
        memory = {pid: rss_mb(pid) for pid in workers}
        idle = latencies(base, 5)
        print(f"  {'idle':44s} p50 {percentile(idle, 0.5) * 1000:7.2f} ms  p99 {percentile(idle, 0.99) * 1000:7.2f} ms"
              f"  ({len(idle):,} requests)")
        head = (f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {len(ENVELOPE)}\r\n"
                f"Authorization: {REQUEST_HEADERS['Authorization']}\r\n\r\n").encode()
        payloads = trickle_payloads(args.connections, head, ENVELOPE)
        busy = under_load(lambda: latencies(base, args.trickle_seconds),
                          [functools.partial(tricklers, server.port, payloads)])
        report(f"{args.connections} trickling connections, {args.trickle_seconds:.0f} s", idle, busy)
        heavy = under_load(lambda: latencies(base, args.heavy_seconds),
                           heavy_senders(server.port))
        report(f"4 unauthenticated 1 MB senders, {args.heavy_seconds:.0f} s", idle, heavy)
        time.sleep(2)
        after = children(server.pid)
        print(f"  workers replaced: {'no' if after == workers else 'YES ' + str(workers) + ' -> ' + str(after)}")
        for pid in after:
            before = memory.get(pid)
            grown = f"{rss_mb(pid) - before:+.1f} MB" if before is not None else "new worker"
            print(f"  worker {pid}: resident {rss_mb(pid):.1f} MB ({grown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
