"""Pipeline commands: sources apply/list, tick, worker, run, status."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading

from sqlalchemy import select

from core.models import FeedRun, Source
from core.settings import Settings
from core.types import utcnow


worker_log = logging.getLogger("mlsfeeds.worker")


class CommandFailed(Exception):
    """A pipeline command could not do what was asked; the message says why."""


def add_commands(commands, positive) -> None:
    sources = commands.add_parser("sources", help="source definitions").add_subparsers(title="sources commands")
    apply = sources.add_parser("apply", help="create or update sources from a TOML file")
    apply.add_argument("file")
    apply.set_defaults(run=sources_apply)
    listing = sources.add_parser("list", help="the sources and their schedules")
    listing.set_defaults(run=sources_list)

    tick = commands.add_parser("tick", help="one pass: start due runs, advance claimable ones, then photos (for cron)")
    _job_flags(tick)
    tick.set_defaults(run=run_tick)
    worker = commands.add_parser("worker", help="tick every --interval seconds until SIGTERM/SIGINT")
    worker.add_argument("--interval", type=positive, default=60, metavar="SECONDS", help="default 60")
    worker.add_argument("--metrics-bind", metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: MLSFEEDS_METRICS_BIND; "
                             "unset: none)")
    _job_flags(worker)
    worker.set_defaults(run=run_worker)

    run = commands.add_parser("run", help="run one source now, whatever the clock, printing each step")
    run.add_argument("source")
    what = run.add_mutually_exclusive_group()
    what.add_argument("--full", action="store_true", help="a full pull (default: incremental after a first success)")
    what.add_argument("--from-step", choices=["download", "parse", "load", "geocode"],
                      help="start here, reusing the latest run's payload")
    what.add_argument("--release-removals", action="store_true",
                      help="no new run: remove the listings a full run held back (more than max_removed_share "
                           "missing) that are still missing; those back in the feed since stay")
    run.add_argument("--no-images", action="store_true", help="skip the photo job after the data steps")
    run.set_defaults(run=run_source)

    status = commands.add_parser("status", help="every source and its latest run; with SOURCE, its recent runs")
    status.add_argument("source", nargs="?", help="show this source's recent runs")
    status.add_argument("--runs", type=positive, default=30, metavar="N", help="with SOURCE: how many runs (default 30)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=show_status)


def _job_flags(parser) -> None:
    jobs = parser.add_mutually_exclusive_group()
    jobs.add_argument("--images", action="store_true", help="only the image job (photo machines)")
    jobs.add_argument("--no-images", action="store_true", help="only the data steps")


def _sessions(settings: Settings):
    from core.db import make_engine, session_factory

    return session_factory(make_engine(settings.database_url))


def sources_apply(args, settings: Settings) -> int:
    from pipeline.spec import apply, load_file

    specs = load_file(args.file)
    with _sessions(settings)() as session:
        report = apply(session, specs)
        session.commit()
    print("\n".join(report))
    return 0


def sources_list(args, settings: Settings) -> int:
    table = _table("source", "on", "kind", "from", "zone", "repeat", "images", "name")
    with _sessions(settings)() as session:
        for s in session.scalars(select(Source).order_by(Source.id)):
            repeat = f"every {s.repeat_every_seconds // 60} min" if s.repeat_every_seconds else "-"
            table.add_row(s.id, "on" if s.enabled else "off", s.download.get("kind", "?"), f"{s.earliest_download:%H:%M}",
                          s.timezone, repeat, s.images.get("strategy", "none"), s.name)
    _console().print(table)
    return 0


def _printer(run: FeedRun, step: str, summary: str) -> None:
    print(f"  {run.source_id}#{run.id} {step:<9} {summary}", flush=True)


def _photo_printer(run: FeedRun, message: str) -> None:
    print(f"  {run.source_id}#{run.id} photos    {message}", flush=True)


def _one_pass(args, balancer, images, should_stop=lambda: False) -> None:
    if not args.images:
        report = balancer.tick()
        for created in report.created:
            worker_log.info("started %s", created)
    if not args.no_images:
        images.run_pending(should_stop)


def _logged_step(run: FeedRun, step: str, summary: str) -> None:
    level = logging.WARNING if run.status in ("waiting", "failed") else logging.INFO
    worker_log.log(level, "%s#%s %s %s", run.source_id, run.id, step, summary,
                   extra={"run_id": run.id, "source": run.source_id})


def _logged_photos(run: FeedRun, message: str) -> None:
    worker_log.info("%s#%s photos %s", run.source_id, run.id, message,
                    extra={"run_id": run.id, "source": run.source_id})


def run_tick(args, settings: Settings) -> int:
    from core.logs import configure
    from mlsfeeds.wiring import build_balancer, build_image_job

    configure(settings.log_level, settings.log_format)
    balancer = build_balancer(settings, on_step=_logged_step)
    _one_pass(args, balancer, build_image_job(settings, balancer.worker, _logged_photos))
    return 0


def run_worker(args, settings: Settings) -> int:
    from core.logs import configure
    from mlsfeeds.wiring import build_balancer, build_image_job
    from pipeline.metrics import WorkerMetrics, serve

    configure(settings.log_level, settings.log_format)
    stop = threading.Event()

    def on_signal(signum, frame):
        worker_log.info("received %s: finishing the step in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = WorkerMetrics()
    balancer = build_balancer(settings, should_stop=stop.is_set, on_step=_both(_logged_step, metrics.step),
                              on_lease_lost=metrics.lease_lost)
    images = build_image_job(settings, balancer.worker, _both(_logged_photos, metrics.photo_job))
    bind = args.metrics_bind or settings.metrics_bind
    server = serve(bind) if bind else None
    jobs = "photos only" if args.images else "data only" if args.no_images else "data and photos"
    worker_log.info("worker %s: %s, ticking every %s s%s", balancer.worker, jobs, args.interval,
                    f", metrics at http://{bind}/metrics" if bind else "")
    while not stop.is_set():
        metrics.tick()
        _one_pass(args, balancer, images, stop.is_set)
        stop.wait(args.interval)
    if server is not None:
        server.shutdown()
    worker_log.info("worker stopped")
    return 0


def _both(first, second):
    def both(*args) -> None:
        first(*args)
        second(*args)

    return both


def run_source(args, settings: Settings) -> int:
    from mlsfeeds.wiring import build_balancer, build_image_job

    if args.release_removals:
        return release_removals(args, settings)
    balancer = build_balancer(settings, on_step=_printer, progress=lambda m: print(f"    {m}", flush=True))
    with balancer.sessions() as session:
        run = _manual_run(session, args)
        session.commit()
        run_id = run.id
        print(f"{run.source_id}#{run.id}: {run.kind} run from {run.step}", flush=True)
    if balancer.claim(run_id) is None:
        raise CommandFailed(f"run {run_id} is queued but cannot start now: another run of {args.source} is in flight")
    balancer.advance(run_id)
    if not args.no_images:
        images = build_image_job(settings, balancer.worker, _photo_printer)
        if images.claim(run_id) is not None:
            images.process(run_id)
    with balancer.sessions() as session:
        run = session.get(FeedRun, run_id)
        print(f"{run.source_id}#{run.id}: {run.status}" + (f" — {run.last_error}" if run.last_error else ""))
        if run.warning:
            print(f"{run.source_id}#{run.id}: warning: {run.warning}")
        if run.images_error:
            print(f"{run.source_id}#{run.id}: {run.images_error}")
        return 0 if run.status == "succeeded" else 1


def release_removals(args, settings: Settings) -> int:
    """``run SOURCE --release-removals``: the held removals of SOURCE, released."""
    from pipeline.clock import db_now
    from pipeline.removals import release

    with _sessions(settings)() as session:
        if session.get(Source, args.source) is None:
            raise CommandFailed(f"no source {args.source!r}; `mlsfeeds sources list` shows them")
        report = release(session, args.source, db_now(session))
        session.commit()
    if not report.runs:
        print(f"{args.source}: no removals are held")
        return 0
    runs = ", ".join(f"#{run}" for run in report.runs)
    print(f"{args.source}: released the removals held by run {runs}: {report.removed:,} listings removed, "
          f"{report.came_back:,} back in the feed since (kept)")
    return 0


def _manual_run(session, args) -> FeedRun:
    from pipeline.schedule import business_date, last_success

    source = session.get(Source, args.source)
    if source is None:
        raise CommandFailed(f"no source {args.source!r}; `mlsfeeds sources list` shows them")
    now = utcnow()
    previous = last_success(session, source.id)
    kind = "full" if args.full or previous is None else "incremental"
    run = FeedRun(source_id=source.id, business_date=business_date(source, now), kind=kind,
                  slot=f"manual-{now:%H%M%S%f}", window_end=now)
    if kind == "incremental":
        run.window_start = (previous.window_end or previous.started_at) - dt.timedelta(minutes=5)
    if args.from_step and args.from_step != "download":
        donor = _latest_with_payload(session, source.id)
        if donor is None:
            raise CommandFailed(f"--from-step {args.from_step}: no earlier run of {source.id} kept a payload")
        run.raw_keys, run.kind, run.window_start = donor.raw_keys, donor.kind, donor.window_start
        run.step = args.from_step
    session.add(run)
    session.flush()
    return run


def _latest_with_payload(session, source_id: str) -> FeedRun | None:
    for run in session.scalars(select(FeedRun).where(FeedRun.source_id == source_id).order_by(FeedRun.id.desc())):
        if (run.raw_keys or {}).get("files"):
            return run
    return None


def show_status(args, settings: Settings) -> int:
    from core.overview import overview

    with _sessions(settings)() as session:
        if args.source:
            return _show_source(args, session)
        views = sorted(overview(session, utcnow()), key=lambda v: v.id)
        rows = [_status_row(v) for v in views]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = _table("source", "state", "run", "kind", "status", "step", "try", "parsed", "rej", "ins", "upd", "rem",
                   "held", "listings", "removed", "photos", "ph.failed", "last success", "error")
    for v, r in zip(views, rows):
        run = r["run"] or {}
        table.add_row(r["source"], v.state, str(run.get("id", "-")), run.get("kind", "-"), run.get("status", "never"),
                      run.get("step", "-"), _n(run.get("attempt")), _n(run.get("rows_parsed")),
                      _n(run.get("rows_rejected")), _n(run.get("rows_inserted")), _n(run.get("rows_updated")),
                      _n(run.get("rows_removed")), _n((r["held_removals"] or {}).get("listings")), _n(r["listings"]),
                      _n(r["removed"]), _n(r["photos"]["stored"] + r["photos"]["linked"]), _n(r["photos"]["failed"]),
                      _since(v.age), (run.get("last_error") or v.error or "")[:80])
    _console().print(table)
    for line in _warnings(rows):
        print(line)
    return 0


def _show_source(args, session) -> int:
    """``status SOURCE``: the source's recent runs, newest first."""
    from core.overview import history

    if session.get(Source, args.source) is None:
        raise CommandFailed(f"no source {args.source!r}; `mlsfeeds sources list` shows them")
    runs = history(session, args.source, args.runs)
    if args.json:
        print(json.dumps([{f: getattr(r, f) for f in RUN_FIELDS} for r in runs], indent=2, default=str))
        return 0
    table = _table("run", "date", "kind", "status", "step", "try", "started", "took", "parsed", "rej", "ins", "upd",
                   "rem", "held", "photos", "ph.failed", "error or warning")
    for r in runs:
        took = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
        table.add_row(str(r.id), str(r.business_date), r.kind, r.status, r.step, _n(r.attempt),
                      f"{r.started_at:%Y-%m-%d %H:%M}" if r.started_at else "-", _seconds(took), _n(r.rows_parsed),
                      _n(r.rows_rejected), _n(r.rows_inserted), _n(r.rows_updated), _n(r.rows_removed),
                      _n(r.removals_held), _n(r.photos_stored + r.photos_linked), _n(r.photos_failed),
                      r.last_error or r.images_error or r.warning or "")
    _console().print(table)
    return 0


def _console():
    """A console as wide as the terminal, or wide enough not to fold a table into a pipe or file."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=240, no_color=True)


def _table(*columns: str):
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        numeric = name in {"run", "try", "parsed", "rej", "ins", "upd", "rem", "held", "listings", "removed",
                           "photos", "ph.failed", "took"}
        table.add_column(name, justify="right" if numeric else "left", no_wrap=name not in ("error", "error or warning"))
    return table


def _n(value) -> str:
    return f"{value:,}" if value else "0" if value == 0 else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}s" if value < 600 else f"{value / 60:,.0f}m"


def _since(age) -> str:
    if age is None:
        return "never"
    hours = age.total_seconds() / 3600
    return f"{age.total_seconds() / 60:.0f}m ago" if hours < 1 else f"{hours:.1f}h ago" if hours < 48 else f"{hours / 24:.0f}d ago"


def _warnings(rows: list[dict]) -> list[str]:
    """Below the table: held removals waiting for an operator, and each latest run's warning."""
    lines = []
    for r in rows:
        held, run = r["held_removals"], r["run"] or {}
        if held:
            lines.append(f"! {r['source']}: run #{held['run']} holds {held['listings']:,} removals; "
                         f"release them with `{held['release']}`")
        if run.get("warning") and not (held and held["run"] == run.get("id")):
            lines.append(f"! {r['source']}#{run['id']}: {run['warning']}")
    return lines


RUN_FIELDS = ("id", "kind", "business_date", "status", "step", "attempt", "next_attempt_at", "lease_owner",
              "started_at", "finished_at", "bytes_downloaded", "rows_parsed", "rows_rejected", "rows_inserted",
              "rows_updated", "rows_unchanged", "rows_removed", "removals_held", "removals_released_at",
              "rows_geocoded", "images_ready", "step_timings", "last_error", "warning", "photos_fetched",
              "photos_stored", "photos_unchanged", "photos_removed", "photos_failed", "photos_linked", "photo_bytes",
              "images_attempt", "images_next_attempt_at", "images_error")


def _status_row(view) -> dict:
    s, run = view.source, view.run
    return {
        "source": s.id, "enabled": s.enabled, "timezone": s.timezone,
        "earliest_download": s.earliest_download.strftime("%H:%M"), "state": view.state, "stale": view.stale,
        "last_success": view.last_success, "listings": view.listings["active"], "removed": view.listings["removed"],
        "photos": {**view.photos, "failed": view.photos_failed, "jobs_pending": view.photo_jobs_pending},
        "run": {f: getattr(run, f) for f in RUN_FIELDS} if run else None,
        "held_removals": view.held,
    }
