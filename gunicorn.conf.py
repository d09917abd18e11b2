"""gunicorn settings for the SOAP service (``mlsfeeds serve`` uses this file).

Bind and worker count come from MLSFEEDS_BIND / MLSFEEDS_WORKERS (or the serve flags).
"""

import multiprocessing

from core.settings import Settings

_settings = Settings.from_env()

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
proc_name = "mlsfeeds-soap"
forwarded_allow_ips = "127.0.0.1"
