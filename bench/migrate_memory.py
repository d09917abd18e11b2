"""Resident memory of ``mlsfeeds images migrate`` over a 1,000,000-file archive: it must stay flat.

    python -m bench.migrate_memory [--files 1000000] [--workers 8] [--database-url URL]

Writes ``--files`` small files (16-64 bytes: the manifest is what grows, not the payloads) in
1,000 folders under ``var/bench/`` (kept for the next run), then migrates them folder to folder
(``--database-url`` for the manifest, SQLite under var/bench by default) while sampling the
process's resident memory (VmRSS) every second. Prints the RSS when 10 %, 50 % and 90 % of the
files are copied, the peak (VmHWM) and the rate. Flat means: the peak is close to
the 10 % figure, however many files there are (the lister streams into the database, the
coordinator holds at most a few chunks).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"


def archive(files: int, seed: int = 3) -> Path:
    folder = BENCH_DIR / f"archive-{files}"
    marker = folder.with_name(folder.name + ".complete")
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rnd = random.Random(seed)
    per_folder = max(1, files // 1000)
    for n in range(files):
        path = folder / f"{n // per_folder:04d}" / f"L{n:07d}_1.jpg"
        if n % per_folder == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(rnd.randint(16, 64)))
    marker.write_text("ok")
    return folder


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def copied(database_url: str) -> int:
    """Manifest items copied so far."""
    from sqlalchemy import create_engine, func, select

    from core.models import MigrationItem

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(MigrationItem.status == "copied")).scalar_one()
    finally:
        engine.dispose()


def run(files: int, workers: int, database_url: str | None) -> str:
    source = archive(files)
    dest = BENCH_DIR / "migrate-memory-dest"
    shutil.rmtree(dest, ignore_errors=True)
    database = BENCH_DIR / "migrate-memory.db"
    database.unlink(missing_ok=True)
    url = database_url or f"sqlite:///{database}"
    env = {**os.environ, "MLSFEEDS_DATABASE_URL": url, "MLSFEEDS_SECRET_KEY": "bench"}
    subprocess.run([sys.executable, "-m", "mlsfeeds", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mlsfeeds", "images", "migrate", str(source), str(dest),
                              "--workers", str(workers), "--progress-interval", "30"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    marks, peak = _sample(child, url, files)
    out = child.communicate()[0]
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    lines = [f"images migrate, {files:,} files folder to folder, {workers} workers, manifest on "
             f"{url.split(':')[0]}: {elapsed:,.0f} s ({files / elapsed:,.0f} files/s), exit {child.returncode}"]
    lines += [f"  resident memory when {share:>3} % of the files were copied: {kb / 1024:7.1f} MB" for share, kb in marks]
    lines.append(f"  peak resident memory (VmHWM):                    {peak / 1024:7.1f} MB")
    lines += [f"  {line}" for line in out.splitlines() if line.strip().startswith(("job", "this run"))]
    return "\n".join(lines)


def _sample(child: subprocess.Popen, url: str, files: int) -> tuple[list[tuple[int, int]], int]:
    marks, wanted, peak = [], [10, 50, 90], 0
    while child.poll() is None:
        time.sleep(1)
        try:
            memory = status(child.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if "VmRSS" not in memory:  # exited, not reaped yet
            break
        peak = max(peak, memory.get("VmHWM", 0))
        if wanted and copied(url) >= files * wanted[0] / 100:
            marks.append((wanted.pop(0), memory["VmRSS"]))
    return marks, peak


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", help="the manifest's database (default: SQLite under var/bench)")
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    print(run(args.files, args.workers, args.database_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
