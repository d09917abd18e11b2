"""Sources as configuration: a TOML file of ``[[source]]`` tables, validated and applied.

Secrets stay ``${ENV_VAR}`` references in the database; ``resolve_secrets`` replaces them when
a run needs them, and a missing variable fails that run with a message naming it.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Source
from core.reso import LISTING_FIELDS
from pipeline.connectors import KINDS
from pipeline.errors import SourceConfigError
from pipeline.parsers import FORMATS
from pipeline.parsers.encoding import codec

IMPLIED_FORMATS = {"rets": "rets-compact", "reso": "odata", "sql": "ndjson", "soap": "xml"}
IMAGE_STRATEGIES = {"none", "url_template", "mls_urls", "http", "ftp", "rets", "sql_blob"}
MAPPABLE = set(LISTING_FIELDS) | {"Media"}
DEFAULT_MAX_REMOVED_SHARE = 0.1
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_INTERVAL = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class SourceSpec:
    id: str
    name: str
    timezone: str
    earliest_download: dt.time
    repeat_every_seconds: int | None
    enabled: bool
    download: dict[str, Any]
    parse: dict[str, Any]
    images: dict[str, Any] = field(default_factory=lambda: {"strategy": "none"})
    max_removed_share: float = DEFAULT_MAX_REMOVED_SHARE

    def columns(self) -> dict[str, Any]:
        return {
            "name": self.name, "timezone": self.timezone, "earliest_download": self.earliest_download,
            "repeat_every_seconds": self.repeat_every_seconds, "enabled": self.enabled,
            "download": self.download, "parse": self.parse, "images": self.images,
            "max_removed_share": self.max_removed_share,
        }


def load_file(path: Path) -> list[SourceSpec]:
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"{path}: not valid TOML: {exc}") from None
    tables = document.get("source")
    if not isinstance(tables, list) or not tables:
        raise SourceConfigError(f"{path}: no [[source]] tables")
    specs = [parse_source(t, where=f"{path}: source #{n}") for n, t in enumerate(tables, 1)]
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise SourceConfigError(f"{path}: source {spec.id!r} is defined twice")
        seen.add(spec.id)
    return specs


def parse_source(table: Mapping[str, Any], where: str = "source") -> SourceSpec:
    source_id = str(table.get("id", ""))
    if not _ID.match(source_id):
        raise SourceConfigError(f"{where}: id must be a short code of a-z, 0-9, - and _, got {source_id!r}")
    where = f"source {source_id!r}"
    download = dict(_table(table, "download", where))
    kind = download.get("kind")
    if kind not in KINDS | {"ftps"}:
        raise SourceConfigError(f"{where}: download.kind must be one of {', '.join(sorted(KINDS | {'ftps'}))}, got {kind!r}")
    return SourceSpec(
        id=source_id,
        name=str(table.get("name") or source_id),
        timezone=_timezone(table.get("timezone", "UTC"), where),
        earliest_download=_time_of_day(table.get("earliest_download", "02:00"), where),
        repeat_every_seconds=_interval(table.get("repeat_every"), where),
        enabled=bool(table.get("enabled", True)),
        download=download,
        parse=_parse_spec(table, kind, where),
        images=_images(table, where),
        max_removed_share=_share(table.get("max_removed_share", DEFAULT_MAX_REMOVED_SHARE), where),
    )


def _table(table: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, Mapping):
        raise SourceConfigError(f"{where}: [{name}] must be a table")
    return value


def _parse_spec(table: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
    parse = dict(_table(table, "parse", where))
    parse.setdefault("format", IMPLIED_FORMATS.get(kind))
    if parse["format"] not in FORMATS:
        raise SourceConfigError(f"{where}: parse.format must be one of {', '.join(sorted(FORMATS))}, got {parse['format']!r}")
    if "encoding" in parse:
        try:
            codec(parse["encoding"])
        except SourceConfigError as exc:
            raise SourceConfigError(f"{where}: {exc}") from None
    fields = dict(_table(table, "fields", where))
    values = {k: dict(v) for k, v in _table(table, "values", where).items()}
    defaults = dict(_table(table, "defaults", where))
    for section, names in (("fields", fields), ("values", values), ("defaults", defaults)):
        if unknown := sorted(set(names) - MAPPABLE):
            raise SourceConfigError(f"{where}: [{section}] names unknown RESO field {unknown[0]!r}")
    if "ListingKey" not in fields:
        raise SourceConfigError(f"{where}: [fields] must map ListingKey (the source's unique key)")
    parse.update(fields=fields, values=values, defaults=defaults)
    return parse


def _images(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    images = dict(_table(table, "images", where)) or {"strategy": "none"}
    if images.get("strategy") not in IMAGE_STRATEGIES:
        raise SourceConfigError(
            f"{where}: images.strategy must be one of {', '.join(sorted(IMAGE_STRATEGIES))}, got {images.get('strategy')!r}"
        )
    return images


def _share(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise SourceConfigError(
            f"{where}: max_removed_share must be a number from 0 to 1 (0.1 = 10 % of the listings), got {value!r}")
    return float(value)


def _timezone(value: Any, where: str) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceConfigError(f"{where}: timezone {value!r} is not an IANA time zone (e.g. America/New_York)") from None
    return str(value)


def _time_of_day(value: Any, where: str) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise SourceConfigError(f"{where}: earliest_download must be HH:MM, got {value!r}") from None


def _interval(value: Any, where: str) -> int | None:
    if value in (None, "", 0):
        return None
    match = _INTERVAL.match(str(value).strip())
    seconds = (int(match[1] or 0) * 3600 + int(match[2] or 0) * 60 + int(match[3] or 0)) if match else 0
    if seconds < 60:
        raise SourceConfigError(f"{where}: repeat_every must be like 1h, 30m or 1h30m (at least 1m), got {value!r}")
    return seconds


def apply(session: Session, specs: list[SourceSpec]) -> list[str]:
    """Create or update sources; returns one line per source saying what changed."""
    existing = {s.id: s for s in session.scalars(select(Source).where(Source.id.in_([x.id for x in specs])))}
    report = []
    for spec in specs:
        source = existing.get(spec.id)
        if source is None:
            session.add(Source(id=spec.id, state={}, **spec.columns()))
            report.append(f"created {spec.id}")
            continue
        changed = [k for k, v in spec.columns().items() if getattr(source, k) != v]
        for key in changed:
            setattr(source, key, spec.columns()[key])
        report.append(f"updated {spec.id}: {', '.join(changed)}" if changed else f"unchanged {spec.id}")
    others = session.scalars(select(Source.id).where(Source.id.not_in([x.id for x in specs])))
    report += [f"not in the file, left as is: {other}" for other in others]
    return report


def resolve_secrets(value: Any, environ: Mapping[str, str], where: str = "source") -> Any:
    """A copy of ``value`` with every ``${VAR}`` replaced from ``environ``."""
    if isinstance(value, str):
        def replace(match: re.Match) -> str:
            name = match[1]
            if name not in environ:
                raise SourceConfigError(f"{where}: the variable {name} is not set (named as ${{{name}}})")
            return environ[name]

        return _SECRET.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: resolve_secrets(v, environ, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, environ, where) for v in value]
    return value
