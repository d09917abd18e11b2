"""``mlsfeeds images migrate`` end to end: real FTP, HTTP and SeaweedFS S3 servers on 127.0.0.1.

Uploads go through ``CountingProxy`` (tests.support.s3), which records every request with the status SeaweedFS
gave it: "nothing is uploaded twice" is proved by counting the PUTs the server accepted for
each key, across a run killed with SIGKILL and the run that resumes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from core.models import MigrationItem, MigrationJob
from mlsfeeds.cli import main
from pipeline.images import manifest
from tests.conftest import backend_param


ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("naples", "miami", "tampa")
TEMPLATE = "photos/{source}/{listing}_{n}.jpg -> photos/{source}/{listing}/{n}.jpg"


# -- archives ---------------------------------------------------------------------------------

def write_archive(root: Path, listings: int, photos: int, seed: int) -> dict[str, str]:
    """A legacy layout, photos/{source}/{listing}_{n}.jpg, of JPEG-ish files of 2-30 KB.

    Returns relative path → MD5.
    """
    rnd, files = random.Random(seed), {}
    for number in range(listings):
        source = SOURCES[number % len(SOURCES)]
        for n in range(1, photos + 1):
            relative = f"photos/{source}/L{number:05d}_{n}.jpg"
            data = b"\xff\xd8\xff\xe0" + rnd.randbytes(rnd.randint(2_000, 30_000))
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
            files[relative] = hashlib.md5(data).hexdigest()
    return files


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """3,000 files."""
    root = tmp_path_factory.mktemp("archive-3000")
    return root, write_archive(root, 600, 5, seed=1)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """240 files."""
    root = tmp_path_factory.mktemp("archive-240")
    return root, write_archive(root, 80, 3, seed=2)


# -- servers ----------------------------------------------------------------------------------

@contextmanager
def ftp_server(root: Path, user: str = "mls", password: str = "s3cret", mlsd: bool = True,
               certificate: tuple[Path, Path] | None = None, max_connections: int = 0):
    """pyftpdlib serving ``root``; ``mlsd=False`` plays an old server listed with NLST and SIZE;
    ``certificate`` (cert, key) makes it FTPS, TLS required on control and data connections;
    ``max_connections`` greets the connection past it with 421, as vsftpd's max_per_ip does."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")
    attributes = {"authorizer": authorizer, "auth_failed_timeout": 0.2}
    if not mlsd:
        attributes["proto_cmds"] = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")}
    if certificate:
        attributes.update(certfile=str(certificate[0]), keyfile=str(certificate[1]), ssl_context=None,
                          tls_control_required=True, tls_data_required=True)
    handler = type("Handler", (TLS_FTPHandler if certificate else FTPHandler,), attributes)
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    server.max_cons_per_ip = max_connections
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"{'ftps' if certificate else 'ftp'}://{user}:{password}@127.0.0.1:{server.address[1]}"
    finally:
        stopping.set()
        thread.join(10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def http_server(root: Path):
    """What ``python -m http.server`` serves: HTML directory indexes and the files."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- helpers ----------------------------------------------------------------------------------

@pytest.fixture
def env(monkeypatch, database_url, s3_server) -> dict[str, str]:
    """The CLI's settings: the test database, the S3 credentials, no stray secret file."""
    values = {**s3_server.env(), "MLSFEEDS_DATABASE_URL": database_url, "MLSFEEDS_SECRET_KEY": "test"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def migrate(*args: str) -> int:
    return main(["images", "migrate", *args])


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlsfeeds", "images", "migrate", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def bucket_objects(server, bucket: str, prefix: str = "") -> dict[str, tuple[int, str]]:
    return {o.key: (o.size, o.etag) for o in server.store(bucket).list(prefix)}


def items(database_url: str) -> list[MigrationItem]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(MigrationItem).order_by(MigrationItem.id)))
    finally:
        engine.dispose()


def status_counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(MigrationItem.status, func.count()).group_by(MigrationItem.status))
            return dict(rows.all())
    finally:
        engine.dispose()


def once_after_puts(count: int, action, agent=lambda: ""):
    """A proxy hook running ``action`` once, when the server has accepted ``count`` PUTs (from
    clients whose User-Agent holds ``agent()``)."""
    lock, accepted, fired = threading.Lock(), [0], [False]

    def hook(exchange) -> None:
        if exchange.method != "PUT" or exchange.status != 200 or agent() not in exchange.agent:
            return
        with lock:
            accepted[0] += 1
            if accepted[0] < count or fired[0]:
                return
            fired[0] = True
        action()

    return hook


def expected_objects(files: dict[str, str], root: Path, prefix: str = "",
                     strip: str = "") -> dict[str, tuple[int, str]]:
    """What the bucket must hold: key → (size, MD5), keys = prefix / path without ``strip``."""
    return {"/".join(filter(None, [prefix, path.removeprefix(strip)])): ((root / path).stat().st_size, md5)
            for path, md5 in files.items()}


# -- folder → S3 ------------------------------------------------------------------------------

def test_folder_to_s3_copies_every_file_once_and_verified(env, s3_server, s3_bucket, s3_proxy,
                                                         big_archive, database_url, capsys):
    root, files = big_archive
    assert migrate(str(root), f"s3://{s3_bucket}/legacy", "--endpoint-url", s3_proxy.url) == 0

    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "legacy")
    assert set(s3_proxy.successful_puts().values()) == {1}
    report = capsys.readouterr().out
    assert "copied        3,000 files" in report and "failed            0" in report
    rows = items(database_url)
    assert {r.status for r in rows} == {"copied"} and all(r.verified_at for r in rows)
    assert {r.source_path: r.md5 for r in rows} == files

    assert migrate(str(root), f"s3://{s3_bucket}/legacy", "--endpoint-url", s3_proxy.url) == 0
    assert s3_proxy.count("PUT") == 3_000  # the second run had nothing to do
    assert "copied            0 files" in capsys.readouterr().out


def test_files_already_at_the_destination_are_skipped_and_changed_ones_replaced(
        env, s3_server, s3_bucket, s3_proxy, small_archive, capsys):
    root, files = small_archive
    store = s3_server.store(s3_bucket, "x")
    paths = sorted(files)
    for path in paths[:100]:
        store.put_bytes(path, (root / path).read_bytes())
    store.put_bytes(paths[100], b"an older version of the photo")

    assert migrate(str(root), f"s3://{s3_bucket}/x", "--endpoint-url", s3_proxy.url) == 0

    report = capsys.readouterr().out
    assert "skipped         100 files" in report and "copied          140 files" in report
    assert s3_proxy.count("PUT") == 140
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "x")


# -- FTP → folder, HTTP → S3 ------------------------------------------------------------------

@pytest.mark.parametrize("mlsd", [True, False], ids=["mlsd", "nlst"])
def test_ftp_to_folder(env, small_archive, tmp_path, capsys, mlsd):
    root, files = small_archive
    with ftp_server(root, mlsd=mlsd) as url:
        assert migrate(f"{url}/photos", str(tmp_path / "out"), "--workers", "4") == 0
    copied = {p.relative_to(tmp_path / "out").as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
              for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert copied == {path.removeprefix("photos/"): md5 for path, md5 in files.items()}
    assert "ftp://mls@127.0.0.1" in capsys.readouterr().out  # the password is never shown


@pytest.mark.parametrize("connections", [None, "2"], ids=["refused past the cap", "--source-connections"])
def test_an_ftp_server_that_caps_logins_is_read_over_those_it_allows(env, small_archive, tmp_path, capsys, caplog,
                                                                     connections):
    root, files = small_archive
    extra = ["--source-connections", connections] if connections else []
    with ftp_server(root, max_connections=2) as url, caplog.at_level(logging.WARNING, "pipeline.connectors.logins"):
        assert migrate(f"{url}/photos", str(tmp_path / "out"), "--workers", "8", *extra) == 0
    copied = {p.relative_to(tmp_path / "out").as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
              for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert copied == {path.removeprefix("photos/"): md5 for path, md5 in files.items()}
    assert f"{len(files)} files: {len(files)} copied, 0 skipped, 0 failed" in capsys.readouterr().out
    refusals = [r.getMessage() for r in caplog.records if r.name == "pipeline.connectors.logins"]
    if connections:
        assert refusals == []
    else:
        assert len(refusals) == 1 and "421 Too many connections" in refusals[0], refusals


def test_ftp_password_from_a_variable_is_not_recorded(env, small_archive, tmp_path, monkeypatch, database_url):
    root, _ = small_archive
    monkeypatch.setenv("ARCHIVE_FTP_PASSWORD", "s3cret")
    with ftp_server(root) as url:
        bare = url.replace(":s3cret@", "@")
        assert migrate(f"{bare}/photos/naples", str(tmp_path / "out"), "--source-password-env",
                       "ARCHIVE_FTP_PASSWORD") == 0
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert "s3cret" not in conn.execute(select(MigrationJob.source_url)).scalar_one()
    engine.dispose()


def test_ftps_to_s3_checks_the_server_certificate(env, s3_server, s3_bucket, small_archive, tmp_path, capsys):
    from sandbox.feeds._common import self_signed_certificate

    root, files = small_archive
    certificate = self_signed_certificate(tmp_path / "tls")
    with ftp_server(root, certificate=certificate) as url:
        assert url.startswith("ftps://")
        assert migrate(f"{url}/photos/naples", f"s3://{s3_bucket}", "--ca-file", str(certificate[0]),
                       "--workers", "4") == 0
        naples = {p: md5 for p, md5 in files.items() if p.startswith("photos/naples/")}
        assert bucket_objects(s3_server, s3_bucket) == expected_objects(naples, root, strip="photos/naples/")
        capsys.readouterr()
        assert migrate(f"{url}/photos/miami", f"s3://{s3_bucket}/untrusted") == 1  # the system CAs only
    assert "LISTING FAILED: FTPS: the server's certificate is not trusted" in capsys.readouterr().out
    assert not bucket_objects(s3_server, s3_bucket, "untrusted/")


@pytest.fixture
def sftp_archive(small_archive, tmp_path):
    """The small archive served over SFTP (asyncssh, password login, its host key known)."""
    from sandbox.feeds.sftp import SftpFeed

    root, files = small_archive
    served = tmp_path / "sftp-root"
    (served / "sftp").mkdir(parents=True)
    shutil.copytree(root / "photos", served / "sftp" / "photos")
    running = SftpFeed(username="archive", password="ssh-pw").start(served)
    try:
        yield running, root, files
    finally:
        running.stop()


def test_sftp_to_s3_with_a_pinned_host_key(env, s3_server, s3_bucket, sftp_archive, capsys):
    running, root, files = sftp_archive
    url = f"sftp://archive:ssh-pw@127.0.0.1:{running.details['port']}/photos"
    assert migrate(url, f"s3://{s3_bucket}/ssh", "--host-key-sha256", running.details["host_key_sha256"],
                   "--workers", "4") == 0
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "ssh", strip="photos/")
    assert "sftp://archive@127.0.0.1" in capsys.readouterr().out  # the password is never shown

    assert migrate(url, f"s3://{s3_bucket}/other", "--host-key-sha256", "SHA256:" + "A" * 43) == 1
    assert "LISTING FAILED" in (out := capsys.readouterr().out) and "is not the pinned" in out


def test_wrong_ftp_password_fails_the_listing_with_the_reason(env, small_archive, tmp_path, capsys):
    root, _ = small_archive
    with ftp_server(root) as url:
        assert migrate(url.replace("s3cret", "wrong"), str(tmp_path / "out")) == 1
    assert "LISTING FAILED: FTP refused the login: 530" in capsys.readouterr().out


def test_http_index_to_s3(env, s3_server, s3_bucket, s3_proxy, small_archive, capsys):
    root, files = small_archive
    with http_server(root) as url:
        assert migrate(f"{url}/photos/", f"s3://{s3_bucket}/web", "--endpoint-url", s3_proxy.url) == 0
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "web", strip="photos/")
    assert set(s3_proxy.successful_puts().values()) == {1}


def test_http_manifest_to_s3_reports_missing_files_grouped(env, s3_server, s3_bucket, small_archive, tmp_path, capsys):
    root, files = small_archive
    served = tmp_path / "site"
    (served / "archive").mkdir(parents=True)
    listed = sorted(files)[:30]
    for path in listed:
        (served / "archive" / path).parent.mkdir(parents=True, exist_ok=True)
        (served / "archive" / path).write_bytes((root / path).read_bytes())
    lines = ["# photo manifest", "", *listed, "photos/naples/GONE_1.jpg", "photos/naples/GONE_2.jpg"]
    (served / "archive" / "manifest.txt").write_text("\n".join(lines) + "\n")

    with http_server(served) as url:
        assert migrate(f"{url}/archive/manifest.txt", f"s3://{s3_bucket}") == 1

    assert set(bucket_objects(s3_server, s3_bucket)) == set(listed)
    report = capsys.readouterr().out
    assert "2 × source: HTTP 404 File not found when trying to download  (e.g. photos/naples/GONE_1.jpg)" in report


# -- resumability -----------------------------------------------------------------------------

@pytest.mark.parametrize("database_url", [backend_param("sqlite"), backend_param("postgres")], indirect=True)
def test_killed_run_resumes_without_uploading_anything_twice(env, s3_server, s3_bucket, s3_proxy_factory, big_archive,
                                                            database_url):
    root, files = big_archive
    # On PostgreSQL the job may be shared, so the dead process's claims are taken over only when
    # their lease runs out: a short one keeps the test short.
    args = [str(root), f"s3://{s3_bucket}/photos-v2", "--workers", "8", "--lease-seconds", "3"]
    child: list[subprocess.Popen] = []
    # SeaweedFS has stored the 1,500th upload; the tool is killed before it hears so.
    kill_at_1500th_upload = once_after_puts(1_500, lambda: child[0].send_signal(signal.SIGKILL))

    with s3_proxy_factory(after=kill_at_1500th_upload) as proxy:
        child.append(cli(*args, "--endpoint-url", proxy.url, env=env))
        child[0].communicate(timeout=300)
        assert child[0].returncode == -signal.SIGKILL

        at_kill = items(database_url)
        recorded = {r.dest_key for r in at_kill if r.status == "copied"}
        landed = {path.split("/", 3)[3] for path in proxy.successful_puts()}  # /bucket/photos-v2/KEY
        landed_unrecorded = landed - recorded
        assert 0 < len(recorded) < 3_000
        assert sum(r.status == "copying" for r in at_kill) > 0 and landed_unrecorded

        resumed = cli(*args, "--endpoint-url", proxy.url, "--verify", env=env)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out + err

        puts = proxy.successful_puts()
    assert len(puts) == 3_000 and set(puts.values()) == {1}, "some file was uploaded twice"
    assert f"{len(landed_unrecorded):,} of them had reached the destination" in out
    assert "verified      3,000 files match the destination" in out
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "photos-v2")
    assert status_counts(database_url) == {"copied": 3_000}


def job_lines(report: str) -> list[str]:
    """The part of a report about the whole job (from `job` on), not about the process printing it."""
    lines = report.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("  job "))
    return lines[start:]


@pytest.mark.parametrize("database_url", [backend_param("postgres")], indirect=True)
def test_two_processes_share_a_job_and_a_killed_one_loses_and_repeats_nothing(
        env, s3_server, s3_bucket, s3_proxy_factory, big_archive, database_url):
    root, files = big_archive
    children: dict[str, subprocess.Popen] = {}
    # The server has stored process A's 700th upload; A is killed before it hears so.
    kill_a = once_after_puts(700, lambda: children["a"].send_signal(signal.SIGKILL),
                             agent=lambda: f"pid {children['a'].pid})")
    with s3_proxy_factory(after=kill_a) as proxy:
        args = [str(root), f"s3://{s3_bucket}/shared", "--workers", "4", "--lease-seconds", "3",
                "--endpoint-url", proxy.url]
        children["a"] = cli(*args, env=env)
        children["b"] = cli(*args, env=env)
        children["a"].communicate(timeout=300)
        assert children["a"].returncode == -signal.SIGKILL
        left = status_counts(database_url)
        assert left.get("copying", 0) > 0, left  # A's claims, to be taken over after their lease

        children["c"] = cli(*args, env=env)  # A started again, while B goes on
        out_b, err_b = children["b"].communicate(timeout=300)
        out_c, err_c = children["c"].communicate(timeout=300)
        puts = proxy.successful_puts()
        by_b = sum(proxy.successful_puts(agent=f"pid {children['b'].pid})").values())

    assert children["b"].returncode == 0, out_b + err_b
    assert children["c"].returncode == 0, out_c + err_c
    assert len(puts) == 3_000 and set(puts.values()) == {1}, "some file was uploaded twice"
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "shared")
    assert status_counts(database_url) == {"copied": 3_000}
    assert job_lines(out_b) == job_lines(out_c), "the job's report depends on who finished last"
    assert "3,000 files: 3,000 copied, 0 skipped, 0 failed, 0 to do" in out_b
    assert "copies had landed when their process died: found at the destination, not uploaded again" in out_b
    assert 0 < by_b < 3_000 - 700  # the work was shared


def test_sigterm_stops_cleanly_and_the_next_run_finishes(env, s3_server, s3_bucket, s3_proxy_factory, big_archive,
                                                         database_url):
    root, files = big_archive
    args = [str(root), f"s3://{s3_bucket}", "--workers", "8"]
    child: list[subprocess.Popen] = []
    terminate_at_1000th_upload = once_after_puts(1_000, lambda: child[0].send_signal(signal.SIGTERM))

    with s3_proxy_factory(after=terminate_at_1000th_upload) as proxy:
        child.append(cli(*args, "--endpoint-url", proxy.url, env=env))
        out, err = child[0].communicate(timeout=300)
        assert child[0].returncode == 128 + signal.SIGTERM, out + err
        assert "stopped before the end: run the same command again to resume" in out
        assert "SIGTERM: finishing the files in flight" in err
        stopped = status_counts(database_url)
        assert "copying" not in stopped and stopped["copied"] == proxy.count("PUT", 200)

        assert main(["images", "migrate", *args, "--endpoint-url", proxy.url]) == 0
        puts = proxy.successful_puts()
    assert len(puts) == 3_000 and set(puts.values()) == {1}
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root)


def test_transient_s3_errors_are_retried(env, s3_server, s3_bucket, s3_proxy_factory, small_archive):
    root, files = small_archive
    every_seventh_put_slows_down = lambda method, path, n: 503 if method == "PUT" and n % 7 == 0 else None
    with s3_proxy_factory(fault=every_seventh_put_slows_down) as proxy:
        assert migrate(str(root), f"s3://{s3_bucket}/r", "--endpoint-url", proxy.url) == 0
    assert proxy.count("PUT", 503, injected=True) > 10
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "r")


def test_a_second_process_cannot_run_the_same_job(env, s3_bucket, small_archive, database_url, capsys):
    from core.db import make_engine, session_factory

    root, _ = small_archive
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        job = manifest.open_job(session, (root / "photos" / "tampa").resolve().as_uri(),
                                f"s3://{s3_bucket}/t?endpoint={env['MLSFEEDS_S3_ENDPOINT_URL']}", "{path}")
        session.commit()
    with manifest.exclusive(engine, job.id):
        assert migrate(str(root / "photos" / "tampa"), f"s3://{s3_bucket}/t") == 2
    assert "is being run by another process" in capsys.readouterr().err
    engine.dispose()


@pytest.mark.parametrize("database_url", [backend_param("sqlite"), backend_param("postgres")], indirect=True)
def test_processes_started_together_join_one_job(env, small_archive, tmp_path, database_url, monkeypatch):
    # Our look for the job finds none; another process inserts it just then; our insert then
    # collides with its row. We join that job instead of failing (seen with two processes
    # started at the same moment on PostgreSQL).
    from core.db import make_engine, session_factory

    root, _ = small_archive
    other = make_engine(database_url)
    real_find_job, raced = manifest.find_job, []

    def find_job(session, source_url, dest_url):
        if not raced:
            raced.append(source_url)
            with session_factory(other)() as theirs:
                manifest.open_job(theirs, source_url, dest_url, "{path}")
                theirs.commit()
            return None
        return real_find_job(session, source_url, dest_url)

    monkeypatch.setattr(manifest, "find_job", find_job)
    assert migrate(str(root / "photos" / "tampa"), str(tmp_path / "copy")) == 0
    other.dispose()
    assert raced
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(MigrationJob)) == 1
    engine.dispose()
    assert sorted(p.name for p in (tmp_path / "copy").rglob("*.jpg")) == sorted(
        p.name for p in (root / "photos" / "tampa").rglob("*.jpg"))


# -- dry run, verify, key templates -----------------------------------------------------------

def test_dry_run_to_a_folder_leaves_no_trace(env, small_archive, tmp_path, database_url, capsys):
    root, _ = small_archive
    assert migrate(str(root), str(tmp_path / "new" / "folder"), "--dry-run") == 0
    assert "files           240" in capsys.readouterr().out
    assert not (tmp_path / "new").exists() and items(database_url) == []


def test_dry_run_copies_and_records_nothing(env, s3_server, s3_bucket, s3_proxy, big_archive, database_url, capsys):
    root, _ = big_archive
    assert migrate(str(root), f"s3://{s3_bucket}/new", "--endpoint-url", s3_proxy.url, "--dry-run",
                   "--key-template", TEMPLATE) == 0
    out = capsys.readouterr().out
    assert "files         3,000" in out and "mapped        3,000" in out
    assert "photos/miami/L00001_1.jpg  ->  photos/miami/L00001/1.jpg" in out
    assert s3_proxy.count("PUT") == 0 and bucket_objects(s3_server, s3_bucket) == {}
    assert items(database_url) == []


def test_verify_detects_corrupted_and_missing_objects_and_next_run_repairs_them(
        env, s3_server, s3_bucket, s3_proxy, small_archive, database_url, capsys):
    root, files = small_archive
    dest = f"s3://{s3_bucket}/v"
    assert migrate(str(root), dest, "--endpoint-url", s3_proxy.url) == 0
    store = s3_server.store(s3_bucket, "v")
    corrupted, deleted = sorted(files)[5], sorted(files)[9]
    original = (root / corrupted).read_bytes()
    store.put_bytes(corrupted, bytes(reversed(original)))  # same size, other bytes
    store.delete([deleted])
    capsys.readouterr()

    assert migrate(str(root), dest, "--endpoint-url", s3_proxy.url, "--verify") == 1
    out = capsys.readouterr().out
    assert "verified        238 files match the destination (size and MD5); 2 DO NOT" in out
    assert f"1 × verify: the object at the destination has other bytes (ETag is not the MD5)  (e.g. {corrupted})" in out
    assert f"1 × verify: the object is missing at the destination  (e.g. {deleted})" in out

    puts_before = s3_proxy.count("PUT")
    assert migrate(str(root), dest, "--endpoint-url", s3_proxy.url, "--verify") == 0
    assert s3_proxy.count("PUT") == puts_before + 2
    assert bucket_objects(s3_server, s3_bucket) == expected_objects(files, root, "v")


def test_verify_on_a_folder_destination(env, small_archive, tmp_path, capsys):
    root, files = small_archive
    out_dir = tmp_path / "out"
    assert migrate(str(root), str(out_dir)) == 0
    (out_dir / sorted(files)[0]).write_bytes(b"truncated")
    assert migrate(str(root), str(out_dir), "--verify") == 1
    assert "1 × verify: the object at the destination has another size" in capsys.readouterr().out


def test_key_template_maps_legacy_paths_and_reports_what_does_not_match(
        env, s3_server, s3_bucket, small_archive, tmp_path, capsys):
    root, files = small_archive
    archive = tmp_path / "archive"
    for path in files:
        (archive / path).parent.mkdir(parents=True, exist_ok=True)
        (archive / path).write_bytes((root / path).read_bytes())
    (archive / "photos" / "README.txt").write_text("not a photo")
    dest = f"s3://{s3_bucket}/mapped"

    assert migrate(str(archive), dest, "--key-template", TEMPLATE) == 1
    out = capsys.readouterr().out
    assert "1 × the path does not match the --key-template pattern  (e.g. photos/README.txt)" in out
    stored = bucket_objects(s3_server, s3_bucket)
    assert len(stored) == len(files) and "mapped/photos/naples/L00000/1.jpg" in stored
    source, listing_n = "naples", "L00003_2.jpg"
    assert stored[f"mapped/photos/{source}/L00003/2.jpg"][1] == files[f"photos/{source}/{listing_n}"]

    assert migrate(str(archive), dest, "--key-template", "legacy/{path}") == 2
    assert "resume it with the same template, or pass --restart" in capsys.readouterr().err


def test_unmatched_files_can_be_left_out(env, s3_bucket, small_archive, tmp_path, capsys):
    root, _ = small_archive
    archive = tmp_path / "archive"
    (archive / "photos" / "naples").mkdir(parents=True)
    (archive / "photos" / "naples" / "L1_1.jpg").write_bytes(b"\xff\xd8 photo")
    (archive / "photos" / "naples" / "Thumbs.db").write_bytes(b"junk")
    assert migrate(str(archive), f"s3://{s3_bucket}", "--key-template", TEMPLATE, "--unmatched", "skip") == 0
    assert "left out          1 files the --key-template pattern does not match" in capsys.readouterr().out


# -- large files ------------------------------------------------------------------------------

def test_large_files_are_spooled_uploaded_in_parts_and_verified(env, s3_server, s3_bucket, tmp_path, capsys):
    from pipeline.images.destinations import IN_MEMORY_LIMIT

    archive = tmp_path / "archive"
    archive.mkdir()
    sizes = {"mid.tif": IN_MEMORY_LIMIT + 1, "huge.tif": 64 * 1024 * 1024 + 1, "small.jpg": 10}
    files = {}
    for name, size in sizes.items():
        data = random.Random(size).randbytes(size)
        (archive / name).write_bytes(data)
        files[name] = hashlib.md5(data).hexdigest()

    assert migrate(str(archive), f"s3://{s3_bucket}/big", "--workers", "3", "--verify") == 0

    stored = bucket_objects(s3_server, s3_bucket)
    assert stored["big/huge.tif"][1].endswith("-9")  # multipart, checked against the computed ETag
    assert stored["big/mid.tif"][1] == files["mid.tif"]
    assert re.search(r"verified +3 files match the destination", capsys.readouterr().out)
    with s3_server.store(s3_bucket, "big").open("huge.tif") as body:
        assert hashlib.md5(body.read()).hexdigest() == files["huge.tif"]
