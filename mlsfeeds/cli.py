"""``mlsfeeds``: the command line.

Every flag falls back to a ``MLSFEEDS_*`` variable (named in ``--help``); settings are read once
here and handed down.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from core.errors import CoreError
from core.settings import Settings
from mlsfeeds.pipeline_cli import CommandFailed
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parent.parent
WSDL_FILE = ROOT / "wsdl" / "mlsfeeds.wsdl"
WSDL_ADDRESS = "http://localhost:8000/soap"  # the address written into the checked-in contract


class UsageError(Exception):
    """A command was given something it cannot use; the message says what."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args, Settings.from_env()) or 0
    except (UsageError, CoreError, PipelineError, CommandFailed) as exc:
        print(f"mlsfeeds: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsfeeds",
        description="MLS listing feeds, published over SOAP/WSDL.",
        epilog="Settings come from MLSFEEDS_* variables: MLSFEEDS_DATABASE_URL (default "
        "sqlite:///./var/mlsfeeds.db), MLSFEEDS_STORAGE_URL, MLSFEEDS_PUBLIC_URL, "
        "MLSFEEDS_PHOTO_BASE_URL, MLSFEEDS_SECRET_KEY, MLSFEEDS_BIND, MLSFEEDS_WORKERS.",
    )
    commands = parser.add_subparsers(title="commands")
    _add_db(commands)
    _add_sandbox(commands)
    _add_clients(commands)
    _add_serve(commands)
    _add_wsdl(commands)
    from mlsfeeds.pipeline_cli import add_commands

    add_commands(commands, _positive)
    from mlsfeeds.images_cli import add_commands as add_image_commands
    add_image_commands(commands)
    return parser


# -- db ---------------------------------------------------------------------------------------

def _add_db(commands) -> None:
    db = commands.add_parser("db", help="the database schema").add_subparsers(title="db commands")
    up = db.add_parser("upgrade", help="create or upgrade the schema at MLSFEEDS_DATABASE_URL")
    up.set_defaults(run=_db_upgrade)
    check = db.add_parser("check", help="fail if the models and the migrations disagree")
    check.set_defaults(run=_db_check)


def _db_upgrade(args, settings: Settings) -> int:
    from core import db

    db.upgrade(settings.database_url)
    print(f"schema is up to date at {_redact(settings.database_url)}")
    return 0


def _db_check(args, settings: Settings) -> int:
    from core import db

    db.check(settings.database_url)
    print("models and migrations agree")
    return 0


# -- sandbox ----------------------------------------------------------------------------------

def _add_sandbox(commands) -> None:
    sandbox = commands.add_parser("sandbox", help="the simulated outside world").add_subparsers(
        title="sandbox commands"
    )
    seed = sandbox.add_parser(
        "seed", help="write synthetic listings straight into the database (in bulk when the sources have none yet)"
    )
    seed.add_argument("--listings", type=_positive, required=True, metavar="N")
    seed.add_argument("--sources", type=_id_list, default=["sandbox"], metavar="A,B,C",
                      help="source ids (created if missing); default: sandbox")
    seed.add_argument("--seed", type=int, default=1, metavar="S", help="same seed, same listings (default 1)")
    seed.set_defaults(run=_sandbox_seed)
    serve = sandbox.add_parser("serve", help="start one local MLS server per connector kind, until stopped")
    serve.add_argument("--dir", required=True, type=Path, metavar="DIR",
                       help="keeps state.json, sources.toml, expected.json and what the servers publish")
    serve.add_argument("--listings", type=_positive, default=200, metavar="N", help="per source (default 200)")
    serve.add_argument("--seed", type=int, default=1, metavar="S")
    serve.add_argument("--kinds", type=_id_list, metavar="K,K", help="only these kinds (default: all)")
    serve.set_defaults(run=_sandbox_serve)
    mutate = sandbox.add_parser("mutate", help="change what the running sandbox servers publish")
    mutate.add_argument("--dir", required=True, type=Path, metavar="DIR")
    mutate.add_argument("--add", type=int, default=0, metavar="N", help="new listings per source")
    mutate.add_argument("--change", type=int, default=0, metavar="N", help="listings per source with a new price")
    mutate.add_argument("--remove", type=int, default=0, metavar="N", help="listings per source dropped from the feed")
    mutate.add_argument("--change-photos", type=int, default=0, metavar="N",
                        help="listings per source whose photos get new bytes (and a new PhotosChangeTimestamp)")
    mutate.set_defaults(run=_sandbox_mutate)
    quirks = sandbox.add_parser("quirks", help="make a sandbox server behave as some real server does")
    quirks.add_argument("--dir", required=True, type=Path, metavar="DIR")
    quirks.add_argument("source", help="a sandbox source id, e.g. retsmls")
    quirks.add_argument("settings", nargs="*", metavar="NAME=VALUE",
                        help="values in JSON (15, true, \"Description\"; other text as is); none: no quirks")
    quirks.set_defaults(run=_sandbox_quirks)


def _sandbox_seed(args, settings: Settings) -> int:
    from mlsfeeds.seed import progress_printer, seed

    with _session(settings) as session:
        report = seed(session, args.listings, args.sources, args.seed, progress=progress_printer())
    if report.created_sources:
        print(f"created sources: {', '.join(report.created_sources)}")
    print(report.summary())
    return 0


def _sandbox_serve(args, settings: Settings) -> int:
    import signal
    import threading

    from sandbox.world import KINDS, World, start_servers

    kinds = tuple(args.kinds or KINDS)
    if unknown := set(kinds) - set(KINDS):
        raise UsageError(f"unknown kind {sorted(unknown)[0]!r}; kinds: {', '.join(KINDS)}")
    if (args.dir / "state.json").exists():
        world = World.open(args.dir)
        world.publish()
        print(f"reusing the sandbox in {args.dir} (generation {world.state['generation']})")
    else:
        world = World.create(args.dir, args.listings, args.seed, kinds)
    running, _ = start_servers(world)
    for server in running:
        print(f"  {server.url}")
    print(f"wrote {args.dir / 'sources.toml'} and {args.dir / 'expected.json'}; Ctrl-C stops the servers", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    for server in running:
        server.stop()
    return 0


def _sandbox_mutate(args, settings: Settings) -> int:
    from sandbox.world import World

    try:
        world = World.open(args.dir)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    report = world.mutate(args.add, args.change, args.remove, args.change_photos)
    for sid, changes in sorted(report.items()):
        print(f"{sid}: +{len(changes['added'])} ~{len(changes['changed'])} -{len(changes['removed'])} "
              f"photos changed: {len(changes['photos'])}")
    return 0


def _sandbox_quirks(args, settings: Settings) -> int:
    import json

    from sandbox.world import World, quirks_of

    try:
        world = World.open(args.dir)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    entry = world.state["sources"].get(args.source)
    if entry is None:
        raise UsageError(f"no sandbox source {args.source!r}; there are {', '.join(sorted(world.state['sources']))}")
    chosen = dict(_quirk(text) for text in args.settings)
    try:
        world.set_quirks(args.source, **chosen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    known = quirks_of(entry["kind"])
    print(f"{args.source}: " + (json.dumps(chosen, sort_keys=True) if chosen else "no quirks")
          + (f"  (known: {', '.join(sorted(known))})" if known else ""))
    return 0


def _quirk(text: str) -> tuple[str, object]:
    import json

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"a quirk is NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


# -- clients ----------------------------------------------------------------------------------

def _add_clients(commands) -> None:
    clients = commands.add_parser("clients", help="SOAP clients").add_subparsers(title="clients commands")
    add = clients.add_parser("add", help="create a client, or reset its password and entitlements")
    add.add_argument("name")
    add.add_argument("--password-env", required=True, metavar="VAR",
                     help="name of the environment variable holding the password (never on the command line)")
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--sources", type=_id_list, metavar="A,B", help="the sources it may see")
    scope.add_argument("--all-sources", action="store_true", help="every source, present and future")
    add.add_argument("--role", choices=["consumer", "operator"], default="consumer")
    add.set_defaults(run=_clients_add)
    listing = clients.add_parser("list", help="the clients and what they may see")
    listing.set_defaults(run=_clients_list)


def _clients_add(args, settings: Settings) -> int:
    from core.clients import upsert_client

    password = settings.environ.get(args.password_env)
    if not password:
        raise UsageError(f"the variable {args.password_env} is not set (or empty): it must hold the password")
    with _session(settings) as session:
        client, created = upsert_client(
            session, args.name, password,
            secret_key=settings.secret_key,
            sources=args.sources or (),
            all_sources=args.all_sources,
            role=args.role,
        )
        session.commit()
    scope = "all sources" if client.all_sources else ", ".join(args.sources or []) or "no sources"
    print(f"{'created' if created else 'updated'} {args.role} {args.name!r}: {scope}")
    return 0


def _clients_list(args, settings: Settings) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from core.models import Client

    with _session(settings) as session:
        clients = session.scalars(select(Client).options(selectinload(Client.sources)).order_by(Client.name))
        for c in clients:
            scope = "*" if c.all_sources else ",".join(sorted(s.source_id for s in c.sources)) or "-"
            print(f"{c.name:<24} {c.role:<9} {'enabled' if c.enabled else 'disabled':<9} {scope}")
    return 0


# -- serve, demo --------------------------------------------------------------------------------

def _add_serve(commands) -> None:
    serve = commands.add_parser("serve", help="serve SOAP under gunicorn (gunicorn.conf.py)")
    _serve_flags(serve)
    serve.set_defaults(run=_serve)
    demo = commands.add_parser(
        "demo", help="embedded defaults: seed listings if empty, create a demo client, serve"
    )
    _serve_flags(demo)
    demo.set_defaults(run=_demo)


def _serve_flags(parser) -> None:
    parser.add_argument("--bind", metavar="HOST:PORT", help="default: MLSFEEDS_BIND or 127.0.0.1:8000")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="default: MLSFEEDS_WORKERS or 2 x CPUs + 1")


def _gunicorn(args) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if args.bind:
        env["MLSFEEDS_BIND"] = args.bind
    if args.workers:
        env["MLSFEEDS_WORKERS"] = str(args.workers)
    Settings.from_env(env)  # fail here, with the variable's name, not in every worker
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "service.app:create_app()"]
    return command, env


def _serve(args, settings: Settings) -> int:
    command, env = _gunicorn(args)
    sys.stdout.flush()
    os.execvpe(command[0], command, env)


def _demo(args, settings: Settings) -> int:
    from mlsfeeds import demo

    command, env = _gunicorn(args)
    public_url = Settings.from_env(env).public_url
    try:
        return demo.run(Settings.from_env(env), public_url, command, env)
    except demo.PortBusy as exc:
        raise UsageError(str(exc)) from None


# -- wsdl -------------------------------------------------------------------------------------

def _add_wsdl(commands) -> None:
    wsdl = commands.add_parser("wsdl", help="print the WSDL the service publishes")
    wsdl.add_argument("--write", action="store_true", help=f"rewrite {WSDL_FILE.relative_to(ROOT)}")
    wsdl.set_defaults(run=_wsdl)


def _wsdl(args, settings: Settings) -> int:
    from service.wsdl import published_wsdl

    document = published_wsdl(WSDL_ADDRESS)
    if args.write:
        WSDL_FILE.write_bytes(document)
        print(f"wrote {WSDL_FILE.relative_to(ROOT)}")
    else:
        sys.stdout.write(document.decode())
    return 0


# -- helpers ----------------------------------------------------------------------------------

def _session(settings: Settings):
    from core.db import make_engine, session_factory

    return session_factory(make_engine(settings.database_url))()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _id_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("give at least one id, e.g. a,b,c")
    for source_id in ids:
        if not source_id.replace("_", "").replace("-", "").isalnum() or len(source_id) > 64:
            raise argparse.ArgumentTypeError(f"not a valid id: {source_id!r} (letters, digits, - and _)")
    return list(dict.fromkeys(ids))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
