"""gunicorn settings for the SOAP service (``mlsfeeds serve`` uses this file).

Bind and worker count come from MLSFEEDS_BIND / MLSFEEDS_WORKERS (or the serve flags).
"""

import multiprocessing
import os
import shutil
import tempfile

from core.logs import gunicorn_config
from core.settings import Settings

# Metrics: every worker writes its SOAP counters under one folder (prometheus_client's
# multiprocess mode); it must be known before a worker imports prometheus_client, and start empty.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlsfeeds-metrics-")
_settings = Settings.from_env()

# Imported now, with the folder set: child_exit runs in the master's SIGCHLD handler, and an
# import begun there can be interrupted by the next worker's exit (at shutdown, several exit at
# once), which then finds the module half made and stops the master with an AttributeError.
from prometheus_client import multiprocess  # noqa: E402

bind = _settings.bind
workers = _settings.workers or multiprocessing.cpu_count() * 2 + 1
# Each worker reads requests whole in an event loop (slow clients cost a buffer, not a worker),
# then runs the application one request at a time: see service/server.py.
worker_class = "service.server.BufferingWorker"
worker_connections = 1000      # open connections per worker; the longest-idle one makes room
timeout = 30                   # a worker silent this long is killed and replaced
graceful_timeout = 20
keepalive = 15                 # seconds an idle keep-alive connection is kept
max_requests = 200_000         # recycle workers now and then (a safety net: memory stays flat), with jitter
max_requests_jitter = 20_000
limit_request_line = 8190
accesslog = "-"
# No request bodies in the log, ever: they carry credentials (WS-Security) and client queries.
access_log_format = '%(t)s %(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = gunicorn_config(_settings.log_level, _settings.log_format)
proc_name = "mlsfeeds-soap"
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """A fresh metrics folder: counters left by an earlier service would be summed in."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    """A dead worker's gauges go; its counters stay summed in (prometheus_client multiprocess)."""
    multiprocess.mark_process_dead(worker.pid)
