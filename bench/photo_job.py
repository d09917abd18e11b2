"""The nightly photo job against rclone: new photos from the sandbox's HTTP and FTP MLS into SeaweedFS.

    python -m bench.photo_job [--listings 560] [--rounds 3] [--threads 16]

(``python -m bench.photos --part job`` runs it too.) Starts ``mlsfeeds sandbox serve --kinds
http,ftp`` in its own process (about 5,000 photos per source with 560 listings; they are rendered
once and kept on disk, so the MLS serves them like a static host) and SeaweedFS, then measures,
each side into a fresh bucket, in rotating order, ``--rounds`` times:

* ``photo job (http)``: ``mlsfeeds tick --images`` on a run of ``httpmls`` whose data steps were
  done beforehand (not timed), against a fresh database: every photo is new, so every one is
  fetched, sniffed, hashed, uploaded and recorded;
* ``rclone, same files from the HTTP MLS``: ``rclone copy --files-from`` the photo URLs through
  rclone's http remote (a HEAD and a GET per file), into the bucket;
* ``rclone, same files from local disk``: the strictest baseline: the same bytes, read from
  the MLS's own folder, no network source at all;
* the same three for ``ftpmls`` (the ``ftp`` strategy, its threads sharing its FTP logins;
  rclone's ftp remote with its default concurrency, and with ``--ftp-concurrency 32``), plus
  rclone as it ships (no ``--transfers``: 4 at once), and the FTP server's ceiling: bare
  ftplib threads reading every file into memory and storing nothing (the most any client can
  fetch from this server; the sandbox's FTP MLS is pyftpdlib, Python, on the same cores).

Before each side the bench waits for the sockets the last one left in TIME_WAIT (one per FTP
file) to go: past 10,000 they halve the next FTP side's rate. Photos/s counts every photo the
source lists (the sandbox serves about 1 in 23 corrupt: the job rejects them, rclone copies
them). The MLS server runs on the same cores as both sides:
it costs each side the same per request (rclone's HTTP side asks twice per file).
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.photos import BENCH_DIR, Run, Target, bucket_contents, machine_busy, report, rclone_env, wait_for_idle  # noqa: E402
from bench.photos import _check, _child_timing, _children_cpu, _server_cpu, _timed_child  # noqa: E402
from pipeline.images.ftp import CONNECTIONS  # noqa: E402
from sandbox.feeds.ftp import FtpFeed  # noqa: E402
from tests.support.s3 import s3_client  # noqa: E402

FTP_USER, FTP_PASSWORD = FtpFeed().username, FtpFeed().password  # the sandbox FTP MLS's login


@dataclass(frozen=True)
class Mls:
    root: Path
    urls: dict[str, str]       # kind → server URL
    pid: int
    photos: dict[str, list[tuple[str, int, str]]]  # source → (ListingKey, n, md5), every listed photo


@contextmanager
def sandbox(listings: int, seed: int = 5):
    """The HTTP and FTP MLS in a child process; photos rendered once (kept across runs)."""
    root = BENCH_DIR / f"photo-job-{listings}-{seed}"
    command = [sys.executable, "-m", "mlsfeeds", "sandbox", "serve", "--dir", str(root), "--listings",
               str(listings), "--seed", str(seed), "--kinds", "http,ftp"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        urls = {}
        for line in child.stdout:
            if line.strip().startswith(("http://", "ftp://")):
                urls[line.split(":")[0].strip()] = line.strip()
            if line.startswith("wrote "):
                break
        expected = json.loads((root / "expected.json").read_text())
        photos = {sid: [(key, p["order"], p["md5"]) for key, fields in listed.items() for p in fields.get("Photos", [])]
                  for sid, listed in expected.items()}
        yield Mls(root, urls, child.pid, photos)
    finally:
        child.terminate()
        child.wait(timeout=30)


def warm(mls: Mls) -> None:
    """Fetch every HTTP photo once, so that the MLS has rendered them all before any side runs."""
    import urllib3

    pool = urllib3.PoolManager(headers={"Authorization": "Bearer http-token-3"})
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda p: pool.request("GET", f"{mls.urls['http']}/photos/{p[0]}/{p[1]}.jpg").data,
                         mls.photos["httpmls"]))


# -- the sides --------------------------------------------------------------------------------

def side_job(target: Target, mls: Mls, source: str, bucket: str, threads: int) -> None:
    """The data steps untimed, then ``mlsfeeds tick --images`` timed, on a fresh database."""
    database = BENCH_DIR / f"job-{uuid.uuid4().hex[:8]}.db"
    env = {**os.environ, "MLSFEEDS_DATABASE_URL": f"sqlite:///{database}", "MLSFEEDS_STORAGE_URL": f"s3://{bucket}",
           "MLSFEEDS_S3_ENDPOINT_URL": target.endpoint_url, "MLSFEEDS_SECRET_KEY": "bench",
           "MLSFEEDS_LOG_LEVEL": "WARNING", "MLSFEEDS_PHOTO_THREADS": str(threads)}
    try:
        for args in (["db", "upgrade"], ["sources", "apply", str(mls.root / "sources.toml")],
                     ["run", source, "--no-images"]):
            _mlsfeeds(args, env)
        _timed_child(lambda: _mlsfeeds(["tick", "--images"], env))
    finally:
        for path in database.parent.glob(database.name + "*"):
            path.unlink(missing_ok=True)


def side_rclone_http(target: Target, mls: Mls, bucket: str, transfers: int) -> None:
    listing = BENCH_DIR / "http-photos.txt"
    listing.write_text("".join(f"{key}/{n}.jpg\n" for key, n, _ in mls.photos["httpmls"]))
    _timed_child(lambda: _rclone(["--files-from", str(listing), "--no-traverse", "--http-url", f"{mls.urls['http']}/photos/",
                            "--http-headers", "Authorization,Bearer http-token-3", ":http:", f"bench:{bucket}"],
                           target, transfers))


def side_rclone_ftp(target: Target, mls: Mls, bucket: str, transfers: int, extra: tuple[str, ...] = ()) -> None:
    port = mls.urls["ftp"].rsplit(":", 1)[1]
    env = {"RCLONE_CONFIG_MLS_TYPE": "ftp", "RCLONE_CONFIG_MLS_HOST": "127.0.0.1", "RCLONE_CONFIG_MLS_PORT": port,
           "RCLONE_CONFIG_MLS_USER": FTP_USER, "RCLONE_CONFIG_MLS_PASS": _obscure(FTP_PASSWORD)}
    _timed_child(lambda: _rclone([*extra, "mls:photos", f"bench:{bucket}"], target, transfers, env))


def side_ftp_ceiling(mls: Mls, connections: int) -> tuple[int, int]:
    """Bare ftplib threads RETR every file under photos/ into memory, in a child: (files, bytes)."""
    port = mls.urls["ftp"].rsplit(":", 1)[1]
    printed: list[str] = []
    _timed_child(lambda: printed.append(subprocess.run(
        [sys.executable, "-m", "bench.photo_job", "--ftp-ceiling", port, "--threads", str(connections)],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout))
    files, size = printed[0].split()
    return int(files), int(size)


def ftp_read_all(port: int, connections: int) -> tuple[int, int]:
    """The child of ``side_ftp_ceiling``: one logged-in connection per thread, the files split evenly."""
    import ftplib
    from concurrent.futures import ThreadPoolExecutor

    def logged_in() -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port)
        ftp.login(FTP_USER, FTP_PASSWORD)
        ftp.voidcmd("TYPE I")
        return ftp

    def fetch(names: list[str]) -> tuple[int, int]:
        size = 0
        with logged_in() as ftp:
            for name in names:
                data = bytearray()
                ftp.retrbinary(f"RETR /photos/{name}", data.extend)
                size += len(data)
        return len(names), size

    with logged_in() as ftp:
        names = sorted(posixpath.basename(name) for name in ftp.nlst("/photos"))
    with ThreadPoolExecutor(connections) as threads:
        done = list(threads.map(fetch, [names[i::connections] for i in range(connections)]))
    return sum(files for files, _ in done), sum(size for _, size in done)


def side_rclone_disk(target: Target, folder: Path, bucket: str, transfers: int) -> None:
    _timed_child(lambda: _rclone([str(folder), f"bench:{bucket}"], target, transfers))


def _rclone(args: list[str], target: Target, transfers: int | None, extra_env: dict | None = None) -> None:
    """``rclone copy``; ``transfers`` None: rclone's own defaults (4 transfers, 8 checkers)."""
    env = {**rclone_env(target), **(extra_env or {})}
    tuned = ["--transfers", str(transfers), "--checkers", str(transfers)] if transfers else []
    done = subprocess.run(["rclone", "copy", *tuned, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rclone exited {done.returncode}: {done.stderr[-2000:]}")


def _obscure(password: str) -> str:
    return subprocess.run(["rclone", "obscure", password], capture_output=True, text=True, check=True).stdout.strip()


def _mlsfeeds(args: list[str], env: dict) -> None:
    _check([sys.executable, "-m", "mlsfeeds", *args], env)


# -- measuring --------------------------------------------------------------------------------

def measure(side: str, action: Callable[[str], None], target: Target, photos: int, mls_pid: int,
            wanted: int) -> Run:
    """One run into a fresh bucket; ``wanted``: photo objects the bucket must hold afterwards."""
    bucket = f"job-{uuid.uuid4().hex[:10]}"
    s3_client(target.endpoint_url).create_bucket(Bucket=bucket)
    _child_timing.clear()
    server_before, children_before, mls_before = _server_cpu(target), _children_cpu(), _pid_cpu(mls_pid)
    busy_before, started = machine_busy(), time.perf_counter()
    read = action(bucket)  # (files, bytes) from a side that stores nothing
    elapsed = time.perf_counter() - started
    client = _children_cpu() - children_before
    server = _server_cpu(target) - server_before
    busy, mls = machine_busy() - busy_before, _pid_cpu(mls_pid) - mls_before
    objects, size = photo_objects(target, bucket)
    if objects != (0 if read else wanted):
        raise RuntimeError(f"{side}: the bucket holds {objects} photos, expected {wanted}")
    if read:
        if read[0] != wanted:
            raise RuntimeError(f"{side}: read {read[0]} files, expected {wanted}")
        objects, size = read
    other = max(0.0, busy - client - server - mls) / (elapsed * (os.cpu_count() or 1))
    return Run(side, _child_timing[0], client, server + mls, photos, size, other)


def photo_objects(target: Target, bucket: str) -> tuple[int, int]:
    """Photo objects (the job's under photos/, rclone's anywhere) and their bytes."""
    objects, size = bucket_contents(target, bucket)
    raw, raw_size = _prefix_contents(target, bucket, ("raw/", "parsed/"))
    return objects - raw, size - raw_size


def _prefix_contents(target: Target, bucket: str, prefixes: tuple[str, ...]) -> tuple[int, int]:
    paginator = s3_client(target.endpoint_url).get_paginator("list_objects_v2")
    objects = size = 0
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                objects, size = objects + 1, size + item["Size"]
    return objects, size


def _pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- main -------------------------------------------------------------------------------------

def sides(mls: Mls, threads: int, transfers: int) -> dict[str, tuple[str, Callable]]:
    """name → (source, action(target, bucket))."""
    return {
        f"photo job, http strategy ({threads} threads)": ("httpmls", lambda t, b: side_job(t, mls, "httpmls", b, threads)),
        f"rclone copy from the HTTP MLS (--transfers {transfers})": ("httpmls", lambda t, b: side_rclone_http(t, mls, b, transfers)),
        "rclone copy, same files from local disk": ("httpmls", lambda t, b: side_rclone_disk(
            t, mls.root / "http" / ".photo-cache", b, transfers)),
        f"photo job, ftp strategy ({threads} threads, {min(threads, CONNECTIONS)} logins)": ("ftpmls", lambda t, b: side_job(t, mls, "ftpmls", b, threads)),
        f"rclone copy from the FTP MLS (--transfers {transfers})": ("ftpmls", lambda t, b: side_rclone_ftp(t, mls, b, transfers)),
        "rclone copy from the FTP MLS (+ --ftp-concurrency 32)": ("ftpmls", lambda t, b: side_rclone_ftp(
            t, mls, b, transfers, ("--ftp-concurrency", "32"))),
        "rclone copy, same FTP files from local disk": ("ftpmls", lambda t, b: side_rclone_disk(
            t, mls.root / "ftp" / "photos", b, transfers)),
        "rclone copy from the FTP MLS, rclone's defaults": ("ftpmls", lambda t, b: side_rclone_ftp(t, mls, b, None)),
        "ceiling: 8 bare ftplib threads, read, not stored": ("ftpmls", lambda t, b: side_ftp_ceiling(mls, 8)),
    }


def run(target: Target, listings: int, rounds: int, threads: int, transfers: int, wait_idle: float,
        sources: tuple[str, ...] = ("httpmls", "ftpmls")) -> str:
    with sandbox(listings) as mls:
        warm(mls)
        chosen = {name: side for name, side in sides(mls, threads, transfers).items() if side[0] in sources}
        results: dict[str, list[Run]] = {name: [] for name in chosen}
        names = list(chosen)
        for number in range(rounds):
            for name in names[number % len(names):] + names[:number % len(names)]:
                source, action = chosen[name]
                listed = mls.photos[source]
                wanted = len(listed) - (_corrupt(mls, source) if name.startswith("photo job") else 0)
                wait_for_idle(wait_idle)
                wait_for_time_wait()
                result = measure(name, lambda bucket: action(target, bucket), target, len(listed), mls.pid, wanted)
                results[name].append(result)
                print(f"round {number + 1}: {name:<52} {result.objects / result.seconds:>8,.0f} photos/s",
                      file=sys.stderr, flush=True)
    lines = []
    for source, baseline in (("httpmls", f"rclone copy from the HTTP MLS (--transfers {transfers})"),
                             ("ftpmls", f"rclone copy from the FTP MLS (--transfers {transfers})")):
        if source not in sources:
            continue
        part = {name: runs for name, runs in results.items() if chosen[name][0] == source}
        lines.append(report(part, len(mls.photos[source]), sum(r.size for r in part[baseline][:1]), rounds, baseline,
                            title=f"photo job ({source}) against rclone, into SeaweedFS; server CPU includes the MLS's"))
    return "\n\n".join(lines)


def wait_for_time_wait(most: int = 1000, timeout: float = 120) -> None:
    """Wait until fewer than ``most`` TCP sockets are in TIME_WAIT. Every FTP file is a data
    connection, so a run leaves ~5,000 behind for a minute; at 10,000 and more the kernel's port
    search makes the next FTP side half as fast, whichever side it is."""
    deadline = time.monotonic() + timeout
    while (waiting := _time_wait_sockets()) >= most and time.monotonic() < deadline:
        time.sleep(1)
    if waiting >= most:
        print(f"note: still {waiting:,} sockets in TIME_WAIT after {timeout:g} s", file=sys.stderr, flush=True)


def _time_wait_sockets() -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            count += sum(line.split()[3] == "06" for line in list(lines)[1:])
    return count


def _corrupt(mls: Mls, source: str) -> int:
    expected = json.loads((mls.root / "expected.json").read_text())[source]
    return sum(p.get("corrupt", False) for fields in expected.values() for p in fields.get("Photos", []))


def main(argv: list[str] | None = None) -> int:
    import argparse
    from contextlib import ExitStack

    from bench.photos import ensure_rclone, target_from

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=560)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--transfers", type=int, default=32)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--wait-idle", type=float, default=60)
    parser.add_argument("--sources", default="httpmls,ftpmls", help="the sources whose sides run (default both)")
    parser.add_argument("--ftp-ceiling", type=int, metavar="PORT", help=argparse.SUPPRESS)  # side_ftp_ceiling's child
    args = parser.parse_args(argv)
    if args.ftp_ceiling:
        print(*ftp_read_all(args.ftp_ceiling, args.threads))
        return 0
    ensure_rclone()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        target = target_from(args, stack)
        print(run(target, args.listings, args.rounds, args.threads, args.transfers, args.wait_idle,
                  tuple(args.sources.split(","))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
