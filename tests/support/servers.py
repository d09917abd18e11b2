"""Live servers for integration tests: the SOAP service under gunicorn, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str):
    """The first true value of ``condition()``, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:  # refused, or accepted before a worker can answer
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def soap_service(env: dict[str, str], workers: int = 2, log_path: Path | None = None):
    """``mlsfeeds serve`` on a free port; yields its base URL (http://127.0.0.1:PORT)."""
    with soap_server(env, workers, log_path) as server:
        yield server.base


@dataclass
class Server:
    base: str
    process: subprocess.Popen

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def workers(self) -> list[int]:
        """The pids of gunicorn's worker processes."""
        return children(self.process.pid)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(pid)


@contextmanager
def soap_server(env: dict[str, str], workers: int = 2, log_path: Path | None = None):
    """``mlsfeeds serve`` on a free port; yields a Server (its base URL and process)."""
    port = free_port()
    full_env = {**os.environ, **env, "MLSFEEDS_BIND": f"127.0.0.1:{port}"}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "mlsfeeds", "serve", "--workers", str(workers)],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", process)
        deadline = time.monotonic() + 30
        while len(children(process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Server(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        if log_path:
            log.close()
