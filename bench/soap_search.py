"""SearchListings under load: the real service next to a bare WSGI app that sends the same bytes.

    python -m bench.soap_search [--seconds 10] [--workers 2] [--database-url URL [--fresh]]

Both sides run under gunicorn with the project's gunicorn.conf.py and the same worker count;
the same load generator (wrk, or a Python fallback) posts the same SOAP envelope to each. The
bare side answers with the response captured once from the real service, so the ratio of the
two throughputs is the share of a worker's time that mlsfeeds itself takes per request.

Nothing here asserts a time: it prints figures. It does fail loudly when the real service does
not answer the request with a SearchListingsResponse of 25 listings out of more than 25, or when
the bare side does not send back the same bytes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``python bench/soap_search.py`` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

WORK_DIR = ROOT / "var" / "bench"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
SERVICE_APP = "service.app:create_app()"
BARE_APP = "bench.bare_app:create_app()"

SECRET_KEY = "bench-secret-key"
USER, PASSWORD = "bench", "bench-password"
SEED_VALUE = 42
NS = "urn:mlsfeeds:soap:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PAGE_SIZE = 25
MIN_PRICE, MAX_PRICE = 250_000, 750_000

def envelope(page_size: int = PAGE_SIZE, token: str | None = None) -> bytes:
    """What a consumer's listing page asks for: active homes in a price band, cheapest first."""
    page = f"\n      <m:PageToken>{token}</m:PageToken>" if token else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:m="{NS}">
  <soapenv:Header/>
  <soapenv:Body>
    <m:SearchListings>
      <m:StandardStatus>Active</m:StandardStatus>
      <m:PropertyType>Residential</m:PropertyType>
      <m:MinPrice>{MIN_PRICE}</m:MinPrice>
      <m:MaxPrice>{MAX_PRICE}</m:MaxPrice>
      <m:SortBy>ListPrice</m:SortBy>
      <m:PageSize>{page_size}</m:PageSize>{page}
    </m:SearchListings>
  </soapenv:Body>
</soapenv:Envelope>
""".encode()


ENVELOPE = envelope()

REQUEST_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '"SearchListings"',
    "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
}
# Headers gunicorn writes itself (or that belong to the connection); the bare app must not.
SERVER_HEADERS = {"server", "date", "connection", "keep-alive", "transfer-encoding"}


class BenchError(SystemExit):
    """A precondition failed: the figures would mean nothing, so stop with a message."""

    def __init__(self, message: str):
        super().__init__(f"bench/soap_search: {message}")


# -- the database ------------------------------------------------------------------------------

def source_ids(count: int) -> list[str]:
    return [f"mls{n}" for n in range(1, count + 1)]


def default_database_url(listings: int, sources: int) -> str:
    return f"sqlite:///{WORK_DIR / f'soap_search-{listings}x{sources}.db'}"


def prepare_database(url: str, listings: int, sources: list[str], fresh: bool) -> str:
    """Seed ``listings`` over ``sources`` unless the database already holds exactly that; add
    the bench client. Returns a few words on what was done."""
    from core import db
    from core.clients import upsert_client
    from mlsfeeds.seed import progress_printer, seed

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise BenchError("the SQLite database must be a file the gunicorn workers can share")
        if fresh:
            _remove_sqlite(path)
    elif backend == "postgresql":
        _ensure_postgres_database(url, fresh)
    db.upgrade(url)

    present = _listings_per_source(url)
    if present and (sum(present.values()) != listings or set(present) != set(sources)):
        found = f"{sum(present.values()):,} listings over {', '.join(sorted(present))}"
        if backend != "sqlite":
            raise BenchError(
                f"{_redact(url)} holds {found}, not {listings:,} over {', '.join(sources)}; "
                "pass --fresh to drop and recreate it"
            )
        print(f"  {path.name} holds {found}: rebuilding it", file=sys.stderr)
        _remove_sqlite(path)
        db.upgrade(url)
        present = {}

    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    if present:
        what = f"reused ({listings:,} listings already there)"
    else:
        print(f"  seeding {listings:,} listings over {len(sources)} sources into {_redact(url)} ...",
              file=sys.stderr)
        with sessions() as session:
            # A fresh database takes the bulk path, which also refreshes the planner's statistics.
            report = seed(session, listings, sources, SEED_VALUE, progress=progress_printer())
        what = f"built in {report.seconds:.0f} s"
    with sessions() as session:
        upsert_client(session, USER, PASSWORD, secret_key=SECRET_KEY, sources=sources)
        session.commit()
    engine.dispose()
    return what


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _listings_per_source(url: str) -> dict[str, int]:
    from core import db
    from core.models import Listing

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Listing.source_id, func.count()).where(Listing.removed_at.is_(None))
                .group_by(Listing.source_id)
            ).all()
    finally:
        engine.dispose()
    return {source: count for source, count in rows}


def _ensure_postgres_database(url: str, fresh: bool) -> None:
    parsed = make_url(url)
    name = parsed.database
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise BenchError(f"give the PostgreSQL database a plain name (letters, digits, _), got {name!r}")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and fresh:
                print(f"  dropping database {name} (--fresh)", file=sys.stderr)
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = False
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -- the servers -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def post(port: int, timeout: float = 30, body: bytes = ENVELOPE) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/soap", body, REQUEST_HEADERS)
        resp = conn.getresponse()
        return Response(f"{resp.status} {resp.reason}", resp.getheaders(), resp.read())
    finally:
        conn.close()


def _children(pid: int) -> int:
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent's pid
            count += 1
    return count


@dataclass
class Server:
    port: int
    pid: int  # gunicorn's arbiter


@contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int, log_path: Path, timeout: float = 90):
    """gunicorn -c gunicorn.conf.py APP on a free loopback port; yields it once every worker is
    up and one request has been answered."""
    port = free_port()
    full_env = {
        **os.environ, **env,
        "MLSFEEDS_BIND": f"127.0.0.1:{port}",
        "MLSFEEDS_WORKERS": str(workers),
        "MLSFEEDS_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), app]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise BenchError(f"gunicorn ({app}) exited with {process.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise BenchError(f"gunicorn ({app}) did not answer within {timeout:.0f} s; see {log_path}")
                if _children(process.pid) >= workers:
                    try:
                        post(port, timeout=10)
                        break
                    except (OSError, http.client.HTTPException):
                        pass
                time.sleep(0.2)
            yield Server(port, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- checks ------------------------------------------------------------------------------------

def check_search_response(resp: Response, page_size: int = PAGE_SIZE) -> tuple[int, int]:
    """(TotalCount, number of ListingSummary) of a valid SearchListingsResponse, or BenchError."""
    head = resp.body[:600].decode("utf-8", "replace")
    if not resp.status.startswith("200"):
        raise BenchError(f"the service answered {resp.status}, not 200:\n{head}")
    if not (resp.header("Content-Type") or "").startswith("text/xml"):
        raise BenchError(f"the service answered Content-Type {resp.header('Content-Type')!r}, not text/xml")
    try:
        root = etree.fromstring(resp.body)
    except etree.XMLSyntaxError as exc:
        raise BenchError(f"the service's response is not XML ({exc}):\n{head}") from None
    answer = root.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}SearchListingsResponse")
    if root.tag != f"{{{SOAP_ENV}}}Envelope" or answer is None:
        raise BenchError(f"the response is not a SOAP envelope holding a SearchListingsResponse:\n{head}")
    total_text = answer.findtext(f"{{{NS}}}TotalCount")
    if total_text is None or not total_text.strip().isdigit():
        raise BenchError(f"the SearchListingsResponse has no TotalCount:\n{head}")
    total = int(total_text)
    listings = len(answer.findall(f"{{{NS}}}Listings/{{{NS}}}ListingSummary"))
    if listings != page_size:
        raise BenchError(f"expected {page_size} ListingSummary elements, got {listings}")
    if total <= page_size:
        raise BenchError(f"expected TotalCount > {page_size} (a realistic first page), got {total}")
    return total, listings


def check_same_response(expected: Response, got: Response) -> None:
    if got.status != expected.status or got.body != expected.body:
        raise BenchError(
            f"the bare app answered {got.status} with {len(got.body):,} bytes; "
            f"expected {expected.status} with the captured {len(expected.body):,} bytes"
        )
    for name in ("Content-Type", "Content-Length"):
        if got.header(name) != expected.header(name):
            raise BenchError(f"the bare app sent {name}: {got.header(name)!r}, "
                             f"the service {expected.header(name)!r}")


# -- load generators ---------------------------------------------------------------------------

@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    other_cpu: float = 0.0  # share of the machine's CPU time used by processes outside the bench


def ensure_wrk() -> str | None:
    """The path of wrk, installing the Debian package if it is missing and we may."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    print("  wrk not found: apt-get install -y wrk ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        subprocess.run(install, capture_output=True, env=env)
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    first = (out.stdout or out.stderr).strip().splitlines()
    match = re.match(r"wrk (\S+)", first[0]) if first else None
    return f"wrk {match.group(1)}" if match else "wrk"


def wrk_script(path: Path, bodies: list[bytes] | None = None) -> Path:
    """A wrk script posting the envelope, or each of ``bodies`` in turn."""
    bodies = bodies or [ENVELOPE]
    if any(b"]==]" in body for body in bodies):
        raise BenchError("the envelope cannot be quoted as a Lua long string")
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{bodies[0].decode()}]==]"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in REQUEST_HEADERS.items()]
    if len(bodies) > 1:
        lines.append("bodies = {" + ", ".join(f"[==[{body.decode()}]==]" for body in bodies) + "}")
        lines.append("turn = 0")
        lines.append("request = function() turn = turn % #bodies + 1; "
                     "return wrk.format(nil, nil, nil, bodies[turn]) end")
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def run_wrk(wrk: str, script: Path, port: int, seconds: float, connections: int, threads: int,
            save_to: Path | None = None) -> Load:
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/soap",
    ]
    run = subprocess.run(command, capture_output=True, text=True)
    output = run.stdout + run.stderr
    if save_to:
        save_to.write_text(" ".join(command) + "\n\n" + output)
    if run.returncode != 0:
        raise BenchError(f"wrk failed ({run.returncode}):\n{output}")
    return parse_wrk(output)


def parse_wrk(output: str) -> Load:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        if not match:
            raise BenchError(f"no {percent}% latency in wrk's output:\n{output}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    done = re.search(r"^\s*(\d+) requests in", output, re.M)
    if not rps or not done:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = 0
    if non2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(non2xx.group(1))
    if sock := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(n) for n in sock.groups())
    return Load(float(rps.group(1)), latency("50"), latency("99"), int(done.group(1)), errors)


def _python_client(job: tuple) -> tuple[int, int, list[float]]:
    port, start_at, measure_from, end_at = job
    latencies: list[float] = []
    errors = done = 0
    conn = None
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        sent_at = time.time()
        if sent_at >= end_at:
            break
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/soap", ENVELOPE, REQUEST_HEADERS)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
            if resp.will_close:  # gunicorn's sync workers close after every response
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            ok = False
            if conn is not None:
                conn.close()
            conn = None
        elapsed = time.perf_counter() - t0
        if sent_at >= measure_from and time.time() <= end_at:
            done += 1
            errors += not ok
            latencies.append(elapsed * 1000)
    if conn is not None:
        conn.close()
    return done, errors, latencies


def run_python_load(port: int, warmup: float, seconds: float, connections: int) -> Load:
    """One process per connection, each posting the request in a loop (wrk's stand-in)."""
    start_at = time.time() + 0.5
    measure_from = start_at + warmup
    end_at = measure_from + seconds
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(connections) as pool:
        results = pool.map(_python_client, [(port, start_at, measure_from, end_at)] * connections)
    latencies = sorted(x for _, _, lat in results for x in lat)
    requests = sum(done for done, _, _ in results)
    if not latencies:
        raise BenchError("the Python load generator completed no request")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, max(0, int(round(p / 100 * len(latencies))) - 1))]

    return Load(requests / seconds, pct(50), pct(99), requests, sum(e for _, e, _ in results))


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _processes() -> list[tuple[int, int, str, int]]:
    """(pid, parent pid, command name, utime+stime+cutime+cstime ticks) of every process."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        out.append((int(stat.parent.name), int(fields[1]), name, sum(int(x) for x in fields[11:15])))
    return out


class CpuWatch:
    """How much CPU other work on the machine took while a side was measured.

    The bench's own share is this process (with wrk or the Python load processes, counted once
    reaped), the gunicorn arbiter under test and its workers (reaped ones counted in the
    arbiter's children times), and the PostgreSQL server when that is the database."""

    def __init__(self, server_pid: int, count_postgres: bool):
        self._server = server_pid
        self._postgres = count_postgres

    def _sample(self) -> tuple[int, int, int]:
        busy, total = _machine_ticks()
        mine = 0
        for pid, ppid, name, ticks in _processes():
            if pid in (os.getpid(), self._server) or ppid == self._server or (
                self._postgres and name.startswith("postgres")
            ):
                mine += ticks
        return busy, total, mine

    @contextmanager
    def watch(self, result: list[float]):
        busy0, total0, mine0 = self._sample()
        yield
        busy1, total1, mine1 = self._sample()
        total = total1 - total0
        result.append(max(0.0, (busy1 - busy0) - (mine1 - mine0)) / total if total > 0 else 0.0)


def wait_idle(limit: float, threshold: float = 0.05) -> None:
    """Wait up to ``limit`` seconds until the CPUs are busy less than ``threshold`` over 2 s."""
    deadline = time.monotonic() + limit
    told = False
    while True:
        busy = cpu_busy(2.0)
        if busy < threshold:
            return
        if time.monotonic() >= deadline:
            print(f"    the machine is still {busy:.0%} busy; measuring anyway", file=sys.stderr)
            return
        if not told:
            print(f"    the machine is {busy:.0%} busy: waiting up to {limit:g} s for it to go idle",
                  file=sys.stderr)
            told = True


def cpu_busy(seconds: float) -> float:
    """The share of all CPUs' time spent busy over the next ``seconds`` (from /proc/stat)."""
    busy0, total0 = _machine_ticks()
    time.sleep(seconds)
    busy1, total1 = _machine_ticks()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


# -- main --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soap_search",
        description="SearchListings throughput: mlsfeeds under gunicorn vs a bare WSGI app sending the same bytes.",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per side (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per side first (default 3)")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers, the same on both sides (default 2: this machine has 2 cores)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (default 1: leave the cores to the workers)")
    parser.add_argument("--listings", type=int, default=100_000, help="listings to seed (default 100,000)")
    parser.add_argument("--sources", type=int, default=5, help="sources to spread them over (default 5)")
    parser.add_argument("--database-url", metavar="URL",
                        help="bench on this database instead of var/bench/*.db, e.g. "
                        "postgresql+psycopg://root@127.0.0.1:5432/mlsfeeds_bench (created if missing)")
    parser.add_argument("--postgres-url", metavar="URL",
                        help="also measure this PostgreSQL database (created if missing), e.g. "
                        "postgresql+psycopg://root@127.0.0.1:5432/mlsfeeds_bench")
    parser.add_argument("--page-sizes", default="25,200", help="comma-separated (default 25,200)")
    parser.add_argument("--modes", default="same,pages",
                        help="same: one request again and again; pages: every page of the search in turn "
                        "with the answer cache off (default: both)")
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the database first")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before each side, wait up to this long for the other processes on the "
                        "machine to leave the CPUs idle (default 60; 0: do not wait)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator (default auto: wrk, installed if missing, else Python)")
    args = parser.parse_args(argv)
    for name in ("workers", "connections", "threads", "listings", "sources"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    args.threads = min(args.threads, args.connections)
    try:
        args.page_sizes = [int(x) for x in args.page_sizes.split(",") if x.strip()]
    except ValueError:
        parser.error("--page-sizes takes whole numbers, e.g. 25,200")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown --modes {', '.join(sorted(unknown))}; use {', '.join(MODES)}")
    return args


@dataclass
class Case:
    database: str
    page_size: int
    mode: str  # "same": one request again and again; "pages": every page of the search in turn
    total: int = 0
    response_bytes: int = 0
    service: Load | None = None
    bare: Load | None = None
    peer: Load | None = None  # PHP's SoapServer over the same database (the "same" mode)
    service_rss: tuple[float, float] = (0.0, 0.0)  # the workers' resident MB before and after

    @property
    def ratio(self) -> float:
        return self.service.requests_per_s / self.bare.requests_per_s if self.bare.requests_per_s else float("nan")


MODES = {"same": "the same request", "pages": "every page in turn, no answer cache"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    sources = source_ids(args.sources)
    urls = [_absolute(args.database_url or default_database_url(args.listings, args.sources))]
    if args.postgres_url:
        urls.append(args.postgres_url)
    wrk = ensure_wrk() if args.generator in ("auto", "wrk") else None
    if args.generator == "wrk" and wrk is None:
        raise BenchError("wrk is not installed and could not be installed (apt-get install wrk)")
    generator = (
        f"{wrk_version(wrk)}, {args.threads} thread(s), {args.connections} connections" if wrk
        else f"Python fallback (one process per connection), {args.connections} connections"
        + ("" if args.generator == "python" else "; wrk could not be installed")
    )
    cases, built = [], {}
    for url in urls:
        print(f"preparing {_redact(url)}", file=sys.stderr)
        built[url] = prepare_database(url, args.listings, sources, args.fresh)
        for page_size in args.page_sizes:
            for mode in args.modes:
                case = Case(_redact(url), page_size, mode)
                run_case(args, wrk, url, case)
                cases.append(case)
    report(args, generator, built, cases)
    (WORK_DIR / "soap_search-last.json").write_text(json.dumps(
        {"cases": [asdict(c) for c in cases], "workers": args.workers, "cpus": os.cpu_count(),
         "generator": generator}, indent=2))
    return 0


def _absolute(url: str) -> str:
    """gunicorn runs from the repository root: a relative SQLite path must mean what it means here."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url


def run_case(args, wrk: str | None, url: str, case: Case) -> None:
    """Measure the service, then the bare app answering with the service's first response."""
    env = {"MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": SECRET_KEY, "MLSFEEDS_LOG_LEVEL": "WARNING",
           "MLSFEEDS_SECRET_KEY_FILE": str(WORK_DIR / "secret.key")}  # not read: the key is set
    if case.mode == "pages":
        env["MLSFEEDS_ANSWER_CACHE_MB"] = "0"
    on_postgres = make_url(url).get_backend_name() == "postgresql"
    label = f"{case.database.split(':')[0]}, PageSize {case.page_size}, {MODES[case.mode]}"
    print(f"mlsfeeds: {label}", file=sys.stderr)
    with gunicorn(SERVICE_APP, env, args.workers, WORK_DIR / "gunicorn-mlsfeeds.log") as server:
        first = envelope(case.page_size)
        captured = post(server.port, body=first)
        case.total, _ = check_search_response(captured, case.page_size)
        case.response_bytes = len(captured.body)
        bodies = walk_pages(server.port, case.page_size) if case.mode == "pages" else [first]
        script = wrk_script(WORK_DIR / "search.lua", bodies) if wrk else None
        before = _worker_rss(server.pid)
        case.service = measure(args, wrk, script, server, on_postgres, "mlsfeeds")
        case.service_rss = (before, _worker_rss(server.pid))
    body_file = WORK_DIR / "search-response.xml"
    body_file.write_bytes(captured.body)
    headers = [(k, v) for k, v in captured.headers if k.lower() not in SERVER_HEADERS]
    meta = WORK_DIR / "search-response.json"
    meta.write_text(json.dumps({"status": captured.status, "headers": headers, "body_file": str(body_file)}))
    print(f"bare: {label}", file=sys.stderr)
    with gunicorn(BARE_APP, {**env, "MLSFEEDS_BENCH_RESPONSE": str(meta)}, args.workers,
                  WORK_DIR / "gunicorn-bare.log") as server:
        check_same_response(captured, post(server.port, body=first))
        case.bare = measure(args, wrk, script, server, on_postgres, "bare")
    if case.mode == "same" and (why := php_peer_missing(url)) is None:
        print(f"PHP SoapServer peer: {label}", file=sys.stderr)
        with php_peer(url, args.workers) as server:
            peer_total, _ = check_search_response(post(server.port, body=first), case.page_size)
            if peer_total != case.total:
                raise BenchError(f"the PHP peer counted {peer_total:,} listings, the service {case.total:,}")
            case.peer = measure(args, wrk, script, server, on_postgres, "peer")
    elif case.mode == "same":
        print(f"  no PHP peer: {why}", file=sys.stderr)


PEER = ROOT / "bench" / "peer" / "server.php"


def php_peer_missing(url: str) -> str | None:
    """Why the PHP peer cannot run here, or None."""
    php = shutil.which("php")
    if php is None:
        return "php is not installed (apt-get install php8.2-cli php8.2-soap php8.2-sqlite3 php8.2-pgsql)"
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.lower().split()
    driver = "pdo_pgsql" if make_url(url).get_backend_name() == "postgresql" else "pdo_sqlite"
    missing = [m for m in ("soap", driver) if m not in modules]
    return f"php lacks {', '.join(missing)}" if missing else None


def _pdo_dsn(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:{parsed.database}"
    parts = {"host": parsed.host, "port": parsed.port, "dbname": parsed.database, "user": parsed.username,
             "password": parsed.password}
    return "pgsql:" + ";".join(f"{k}={v}" for k, v in parts.items() if v)


@contextmanager
def php_peer(url: str, workers: int):
    """PHP's built-in server (PHP_CLI_SERVER_WORKERS processes) running bench/peer/server.php,
    in a process group of its own (its workers outlive a TERM to the parent)."""
    port = free_port()
    env = {**os.environ, "PHP_CLI_SERVER_WORKERS": str(workers), "MLSFEEDS_PEER_DSN": _pdo_dsn(url),
           "MLSFEEDS_PEER_USER": USER, "MLSFEEDS_PEER_PASSWORD": PASSWORD,
           "MLSFEEDS_PEER_WSDL": str(ROOT / "wsdl" / "mlsfeeds.wsdl")}
    with open(WORK_DIR / "php-peer.log", "wb") as log:
        process = subprocess.Popen(["php", "-S", f"127.0.0.1:{port}", str(PEER)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    post(port, timeout=10)
                    break
                except (OSError, http.client.HTTPException):
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise BenchError(f"the PHP peer did not answer; see {WORK_DIR / 'php-peer.log'}")
                    time.sleep(0.2)
            yield Server(port, process.pid)
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)


def walk_pages(port: int, page_size: int) -> list[bytes]:
    """The request of every page of the search, each with the token its previous page gave."""
    bodies, token = [], None
    while True:
        body = envelope(page_size, token)
        bodies.append(body)
        root = etree.fromstring(post(port, body=body).body)
        token = root.findtext(f".//{{{NS}}}NextPageToken")
        if not token:
            return bodies


def _worker_rss(arbiter: int) -> float:
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != arbiter:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    return total


def measure(args, wrk, script, server: Server, on_postgres: bool, side: str) -> Load:
    print(f"  {side}: {args.warmup:g} s warm-up, {args.seconds:g} s measured", file=sys.stderr)
    wait_idle(args.wait_idle)
    other: list[float] = []
    cpu = CpuWatch(server.pid, on_postgres)
    if wrk:
        if args.warmup:
            run_wrk(wrk, script, server.port, args.warmup, args.connections, args.threads)
        with cpu.watch(other):
            load = run_wrk(wrk, script, server.port, args.seconds, args.connections, args.threads,
                           save_to=WORK_DIR / f"wrk-{side}.txt")
    else:
        with cpu.watch(other):  # the Python generator's warm-up included
            load = run_python_load(server.port, args.warmup, args.seconds, args.connections)
    load.other_cpu = other[0]
    if load.errors:
        sample = post(server.port)
        print(f"    {load.errors:,} requests failed; one more answered {sample.status}: "
              f"{sample.body[:300]!r}", file=sys.stderr)
    return load


def report(args, generator: str, built: dict, cases: list[Case]) -> None:
    print()
    print("SearchListings: mlsfeeds SOAP vs a bare WSGI app sending the same bytes")
    print(f"  machine     {os.cpu_count()} CPUs; gunicorn.conf.py, {args.workers} workers per side")
    for url, what in built.items():
        print(f"  database    {_redact(url)}: {args.listings:,} listings over {args.sources} sources, {what}")
    print(f"  request     StandardStatus=Active PropertyType=Residential Price {MIN_PRICE:,}..{MAX_PRICE:,}"
          f" SortBy=ListPrice, HTTP Basic")
    print(f"  load        {generator}; {args.warmup:g} s warm-up + {args.seconds:g} s per side")
    print()
    print(f"  {'database':<10} {'size':>4} {'requests':<38} {'mlsfeeds r/s':>12} {'p99 ms':>7} "
          f"{'bare r/s':>9} {'p99 ms':>7} {'ratio':>6} {'PHP peer r/s':>12} {'vs PHP':>7} {'other CPU':>9} "
          f"{'worker MB':>11}")
    for case in cases:
        noisy = max(case.service.other_cpu, case.bare.other_cpu, case.peer.other_cpu if case.peer else 0)
        rss = f"{case.service_rss[0]:.0f}->{case.service_rss[1]:.0f}"
        peer = f"{case.peer.requests_per_s:>12.1f} {case.service.requests_per_s / case.peer.requests_per_s:>6.1f}x" \
            if case.peer and case.peer.requests_per_s else f"{'-':>12} {'-':>7}"
        print(f"  {case.database.split(':')[0].split('+')[0]:<10} {case.page_size:>4} {MODES[case.mode]:<38} "
              f"{case.service.requests_per_s:>12.1f} {case.service.p99_ms:>7.2f} {case.bare.requests_per_s:>9.1f} "
              f"{case.bare.p99_ms:>7.2f} {case.ratio:>6.3f} {peer} {noisy:>9.1%} {rss:>11}")
    print()
    print("  ratio: mlsfeeds requests/s over the bare app's (the bare app answers every request with the")
    print("  service's first response, so HTTP, gunicorn and the load generator cost the same on both sides).")
    print("  PHP peer: bench/peer/server.php, PHP's SoapServer over the same database (PHP_CLI_SERVER_WORKERS")
    print("  processes; a COUNT and a LIMIT'd page per call), the alternative a team would pick.")
    print("  other CPU: the share of the machine's CPU time other processes used while a side was measured;")
    print("  worker MB: the service workers' resident memory before and after their run.")
    if any(max(c.service.other_cpu, c.bare.other_cpu) > 0.05 for c in cases):
        print("  NOTE: other work was running on the machine; it skews these figures, run again when idle")
    if any(c.service.errors or c.bare.errors for c in cases):
        print("  WARNING: some requests failed; the figures are suspect")


if __name__ == "__main__":
    sys.exit(main())
