"""Logs: one line per event, as text (the default) or JSON (``MLSFEEDS_LOG_FORMAT=json``).

Every line carries its time, level and logger; lines written while a run's step is in flight
carry the run id and source (``run_context``), and lines about a SOAP call the client's name
(``client=`` in the record's ``extra``, or the ``mlsfeeds.soap`` fault lines). JSON lines are
objects with ``time``, ``level``, ``logger``, ``message`` and, when known, ``run_id``,
``source``, ``client`` and ``exception``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
FIELDS = ("run_id", "source", "client")
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("mlsfeeds_log_context", default={})


@contextmanager
def run_context(run_id: int, source: str) -> Iterator[None]:
    """Lines logged inside carry this run's id and source."""
    token = _context.set({**_context.get(), "run_id": run_id, "source": source})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the run id, source and client on every record (from the context, or the record's extra)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        if getattr(record, "client", None) is None and record.name == "mlsfeeds.soap":
            record.client = _soap_client(record)
        known = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        record.context = f" [{' '.join(known)}]" if known else ""
        return True


def _soap_client(record: logging.LogRecord) -> str | None:
    """The client of a SOAP fault line (service/endpoint.py logs "%s %s client=%s ...")."""
    args = record.args if isinstance(record.args, tuple) else ()
    if "client=%s" in str(record.msg) and len(args) >= 3 and args[2] != "-":
        return str(args[2])
    return None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if getattr(record, name, None) is not None:
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: str) -> None:
    """The root logger writes to stderr in the chosen format (replacing any earlier set-up)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("spyne").setLevel(logging.WARNING)


def gunicorn_config(level: str, log_format: str) -> dict:
    """gunicorn's ``logconfig_dict``: its error and access logs in the same format as ours."""
    def handler(formatter: str) -> dict:
        return {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["context"],
                "stream": "ext://sys.stderr"}

    json_format = {"()": "core.logs.JsonFormatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "mlsfeeds": json_format if log_format == "json" else {"format": TEXT_FORMAT},
            # An access line (gunicorn.conf.py's access_log_format) starts with its own timestamp.
            "access": json_format if log_format == "json" else {"format": "%(message)s"},
        },
        "filters": {"context": {"()": "core.logs.ContextFilter"}},
        "handlers": {"stderr": handler("mlsfeeds"), "access": handler("access")},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            "spyne": {"level": "WARNING"},
        },
    }
