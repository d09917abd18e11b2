"""Photo commands: ``mlsfeeds images migrate SRC DEST``.

Wired into the parser by ``mlsfeeds.cli.build_parser`` through ``add_commands``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager

from core.errors import ConfigError
from core.settings import Settings

MIGRATE_DESCRIPTION = """\
Copy a photo archive into the object store: in parallel, verified (size and MD5 of every
file), resumable after a crash or kill -9 without copying anything twice, with progress on
stderr and a report on stdout. Run the same command again to resume; the manifest lives in
the database (MLSFEEDS_DATABASE_URL; create it with `mlsfeeds db upgrade`). On PostgreSQL,
run the same command on as many hosts as you like: they share the work, each file is copied
by one of them, and the files of a process that dies go to the others after --lease-seconds.

SRC   a folder (or file:///path);
      ftp://user[:password]@host[:port]/path   (or --source-password-env VAR);
      ftps://...  the same over explicit TLS (--ca-file for a private CA);
      sftp://user[:password]@host[:port]/path  (host key: --host-key-sha256 or --known-hosts,
      else ~/.ssh/known_hosts; --key-file to log in with a key);
      http(s)://host/path/ serving a directory index (python -m http.server, nginx
      autoindex, Apache), followed recursively; or the URL of a text manifest, one path
      per line, relative to the manifest's folder (blank lines and # comments ignored).
DEST  s3://bucket[/prefix] (at --endpoint-url / MLSFEEDS_S3_ENDPOINT_URL; credentials
      from the usual AWS_* variables or profile), or a folder.
"""

MIGRATE_EPILOG = """\
key templates (--key-template):
  {path}                                          the default: keep the relative path
  legacy/{path}                                   a template alone applies to every file
  photos/{source}/{listing}_{n}.jpg -> photos/{source}/{listing}/{n}.jpg
  **/{listing}_{n:\\d+}.{ext} -> photos/naples/{listing}/{n}.{ext|lower}
  re:^(?P<listing>\\w+)-(?P<n>\\d+)\\.jpg$ -> photos/naples/{listing}/{n}.jpg
  Pattern: {name} = one or more characters within a folder name, {name:REGEX} = what
  REGEX matches, * = within a folder name, ** = across folders; the rest is literal.
  Template fields: the pattern's names and path, dir, name, stem, ext; filters |lower
  |upper. Files the pattern does not match fail (or are left out with --unmatched skip).

exit status: 0 all copied and verified; 1 some files failed (the report groups them by
reason); 2 bad arguments or settings; 128+N stopped by signal N (resumable).
"""


def add_commands(commands) -> None:
    """Add ``images`` and its subcommands to the top-level subparsers."""
    images = commands.add_parser("images", help="photos: migrate an existing archive (on many hosts at once)").add_subparsers(
        title="images commands")
    migrate = images.add_parser(
        "migrate", help="copy a photo archive (folder, FTP, HTTP) into the object store, resumably",
        description=MIGRATE_DESCRIPTION, epilog=MIGRATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _migrate_arguments(migrate)
    migrate.set_defaults(run=run_migrate)


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="the archive: folder, ftp(s)://..., sftp://..., http(s)://...")
    parser.add_argument("dest", metavar="DEST", help="s3://bucket[/prefix] or a folder")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="S3-compatible endpoint for an s3:// DEST (default: MLSFEEDS_S3_ENDPOINT_URL, else AWS)")
    parser.add_argument("--workers", type=_positive, default=16, metavar="N", help="parallel copies (default 16)")
    parser.add_argument("--key-template", metavar="SPEC", help="[PATTERN -> ]TEMPLATE mapping archive paths to "
                        "object keys (default {path}; see below)")
    parser.add_argument("--unmatched", choices=["fail", "skip"], default="fail",
                        help="files the pattern does not match: report as failed (default) or leave out")
    parser.add_argument("--verify", action="store_true",
                        help="afterwards, re-check every copied file against the destination (size, MD5/ETag)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list and map only: counts and sample mappings; copies and records nothing")
    parser.add_argument("--restart", action="store_true",
                        help="forget this SRC -> DEST manifest and start over (files already copied are skipped)")
    parser.add_argument("--source-password-env", metavar="VAR",
                        help="read the FTP/SFTP/HTTP password from this variable instead of the URL")
    parser.add_argument("--source-connections", type=_positive, metavar="N",
                        help="FTP/SFTP: at most N logins at once (default: --workers); a server that refuses "
                        "more is read over the logins it allowed")
    trust = parser.add_argument_group("FTPS and SFTP sources")
    trust.add_argument("--ca-file", metavar="PATH", help="ftps: CA certificates to check the server's certificate with")
    trust.add_argument("--insecure-tls", action="store_true", help="ftps: accept any certificate (tests only)")
    trust.add_argument("--host-key-sha256", metavar="SHA256:...", help="sftp: the server's pinned host key "
                       "fingerprint, as ssh-keygen -lf prints it")
    trust.add_argument("--known-hosts", metavar="PATH", help="sftp: an OpenSSH known_hosts file")
    trust.add_argument("--insecure-accept-any-host-key", action="store_true",
                       help="sftp: no host key check at all (tests only)")
    trust.add_argument("--key-file", metavar="PATH", help="sftp: log in with this private key")
    parser.add_argument("--lease-seconds", type=_positive, default=60, metavar="SECONDS",
                        help="on PostgreSQL, files a process claimed go to another process when it has "
                        "been silent this long (it died); default 60")
    parser.add_argument("--progress-interval", type=_positive, default=10, metavar="SECONDS",
                        help="seconds between progress lines when stderr is not a terminal (default 10)")


def run_migrate(args, settings: Settings) -> int:
    from pipeline.images.archives import open_archive
    from pipeline.images.destinations import open_destination
    from pipeline.images.keymap import parse_key_template

    mapping = parse_key_template(args.key_template)
    archive = open_archive(args.source, _source_password(args, settings), security=_security(args),
                           connections=args.source_connections or args.workers)
    try:
        destination = open_destination(args.dest, args.endpoint_url or settings.s3_endpoint_url, args.workers)
        try:
            report = _dry_run(archive, destination, mapping) if args.dry_run else \
                _migrate(args, settings, archive, destination, mapping)
        finally:
            destination.close()
    finally:
        archive.close()
    print(report.render(), flush=True)
    return report.exit_code


def _dry_run(archive, destination, mapping):
    from pipeline.images.migrate import dry_run

    with _stop_on_signals() as (stop, _):
        return dry_run(archive, destination, mapping, stop=stop)


def _migrate(args, settings: Settings, archive, destination, mapping):
    from core.db import make_engine, session_factory
    from pipeline.images.migrate import MigrateOptions, Migration
    from pipeline.images.progress import Progress

    engine = make_engine(settings.database_url, immediate=True)
    _require_manifest_tables(engine)
    options = MigrateOptions(workers=args.workers, verify=args.verify, unmatched=args.unmatched, restart=args.restart,
                             lease_seconds=args.lease_seconds)
    progress = Progress(sys.stderr, interval=args.progress_interval)
    try:
        with _stop_on_signals() as (stop, stopped_by):
            migration = Migration(session_factory(engine), engine, archive, destination, mapping, options,
                                  progress, stop, stopped_by)
            return migration.run()
    finally:
        engine.dispose()


def _require_manifest_tables(engine) -> None:
    from sqlalchemy import inspect

    if not inspect(engine).has_table("migration_items"):
        raise ConfigError(f"the database at MLSFEEDS_DATABASE_URL ({engine.url.render_as_string(hide_password=True)}) "
                          "has no migration manifest: run `mlsfeeds db upgrade` first")


def _security(args):
    from pipeline.images.archives import Security

    return Security(ca_file=args.ca_file, verify_tls=not args.insecure_tls, host_key_sha256=args.host_key_sha256,
                    known_hosts=args.known_hosts, insecure_accept_any_host_key=args.insecure_accept_any_host_key,
                    key_file=args.key_file)


def _source_password(args, settings: Settings) -> str | None:
    if not args.source_password_env:
        return None
    password = settings.environ.get(args.source_password_env)
    if password is None:
        raise ConfigError(f"the variable {args.source_password_env} (--source-password-env) is not set")
    return password


@contextmanager
def _stop_on_signals():
    """SIGINT/SIGTERM set a stop event (the run ends cleanly and resumably); a second one
    interrupts at once (still resumable: the manifest is written as the copy goes)."""
    stop, received = threading.Event(), []

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()
        print(f"\nmlsfeeds: {signal.Signals(signum).name}: finishing the files in flight, then stopping "
              "(again to stop at once)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value
