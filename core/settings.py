"""One settings object, read from ``MLSFEEDS_*`` variables.

This is the only module that reads ``os.environ``. Every value has a default that makes the
embedded mode (SQLite and a local folder under ``./var``) work with no configuration at all.
A malformed value fails at start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from core.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./var/mlsfeeds.db"
DEFAULT_STORAGE_URL = "file://./var/objects"
DEFAULT_BIND = "127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    storage_url: str = DEFAULT_STORAGE_URL
    s3_endpoint_url: str | None = None
    bind: str = DEFAULT_BIND
    workers: int | None = None
    public_url_setting: str | None = None
    photo_base_url: str | None = None
    secret_key: str = field(default="", repr=False)
    wss_created_window: int = 300
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_bind: str | None = None
    census_geocoder_url: str | None = None
    lease_seconds: int = 300
    max_attempts: int = 5
    retry_backoff_seconds: int = 60
    photo_grace_days: int = 7
    photo_threads: int = 8
    photo_url_ttl: int = 3600
    max_request_bytes: int = 1024 * 1024
    header_timeout: int = 10
    body_timeout: int = 30
    answer_cache_mb: int = 32
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def public_url(self) -> str:
        """The service's public base URL; the WSDL's address is ``{public_url}/soap``."""
        if self.public_url_setting:
            return self.public_url_setting.rstrip("/")
        host, _, port = self.bind.rpartition(":")
        if host in ("0.0.0.0", "", "::", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        database_url = env.get("MLSFEEDS_DATABASE_URL") or DEFAULT_DATABASE_URL
        return cls(
            database_url=database_url,
            storage_url=env.get("MLSFEEDS_STORAGE_URL") or DEFAULT_STORAGE_URL,
            s3_endpoint_url=env.get("MLSFEEDS_S3_ENDPOINT_URL") or None,
            bind=_bind(env.get("MLSFEEDS_BIND") or DEFAULT_BIND, "MLSFEEDS_BIND"),
            workers=_positive_int(env, "MLSFEEDS_WORKERS"),
            public_url_setting=_url(env, "MLSFEEDS_PUBLIC_URL"),
            photo_base_url=_url(env, "MLSFEEDS_PHOTO_BASE_URL"),
            secret_key=env.get("MLSFEEDS_SECRET_KEY") or _local_secret(env),
            wss_created_window=_positive_int(env, "MLSFEEDS_WSS_CREATED_WINDOW") or 300,
            log_level=(env.get("MLSFEEDS_LOG_LEVEL") or "INFO").upper(),
            log_format=_choice(env, "MLSFEEDS_LOG_FORMAT", ("text", "json")),
            metrics_bind=_bind(env["MLSFEEDS_METRICS_BIND"], "MLSFEEDS_METRICS_BIND") if env.get("MLSFEEDS_METRICS_BIND") else None,
            census_geocoder_url=_url(env, "MLSFEEDS_CENSUS_GEOCODER_URL"),
            lease_seconds=_positive_int(env, "MLSFEEDS_LEASE_SECONDS") or 300,
            max_attempts=_positive_int(env, "MLSFEEDS_MAX_ATTEMPTS") or 5,
            retry_backoff_seconds=_positive_int(env, "MLSFEEDS_RETRY_BACKOFF_SECONDS") or 60,
            photo_grace_days=_non_negative_int(env, "MLSFEEDS_PHOTO_GRACE_DAYS", 7),
            photo_threads=_positive_int(env, "MLSFEEDS_PHOTO_THREADS") or 8,
            photo_url_ttl=_positive_int(env, "MLSFEEDS_PHOTO_URL_TTL") or 3600,
            max_request_bytes=_positive_int(env, "MLSFEEDS_MAX_REQUEST_BYTES") or 1024 * 1024,
            header_timeout=_positive_int(env, "MLSFEEDS_HEADER_TIMEOUT") or 10,
            body_timeout=_positive_int(env, "MLSFEEDS_BODY_TIMEOUT") or 30,
            answer_cache_mb=_non_negative_int(env, "MLSFEEDS_ANSWER_CACHE_MB", 32),
            environ=env,
        )


def _bind(value: str, name: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{name} must be HOST:PORT, got {value!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or choices[0]).lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return raw


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number of at least 0, got {raw!r}")
    return int(raw)


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _local_secret(env: Mapping[str, str]) -> str:
    """The embedded mode's secret: kept in a file beside the default database.

    Production sets MLSFEEDS_SECRET_KEY (the same value on every host), because page
    tokens and sealed WS-Security passwords must verify on any host behind the balancer.
    """
    path = Path(env.get("MLSFEEDS_SECRET_KEY_FILE") or "./var/secret.key")
    if path.exists() and path.stat().st_size:
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        # 'x': two workers starting at once must agree on one key, not overwrite each other's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
