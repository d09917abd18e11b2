"""Mapping: a parsed record in, a RESO-named, typed listing out, or RecordRejected with a reason.

The mapping keys of a source's parse spec (the parser's own keys are ignored here):

``fields``
    ``{RESO name: source field}``; ``ListingKey`` is required. A source field is tried verbatim as a
    key of the record first (flattened keys such as ``"Address/City"`` or ``"L.Price"``), then as a
    dot path into nested objects and arrays (``"address.city"``, ``"Media.0.MediaURL"``). A list of
    source fields means the first that has a value. ``Media`` may name a list of photos (below).
``values``
    ``{RESO name: {source value: RESO value}}``, applied to a value's text before coercion: an exact
    match first, then one ignoring case. A value without an entry passes through; ``""`` as the
    RESO value means "no value".
``defaults``
    ``{RESO name: constant}``, used when a record has no value for that field.
``timestamp_format``
    A ``strptime`` format, or a list of them, tried before ISO 8601 and epoch seconds.

What ``Mapper.map`` returns, keyed by RESO name:

- every field of ``core.reso.LISTING_FIELDS`` the source maps (in ``fields`` or ``defaults``, or
  derived), ``None`` when the record has no value for it. Fields the source does not map are
  absent, so a loader can tell "this feed does not carry it" from "this listing has none".
- types: text stripped (blank → None); int / decimal / float read leniently (``"$1,250,000"`` →
  ``Decimal("1250000")``, ``"3.0"`` → 3 for an int, but ``"2.5"`` is no int); timestamps as aware
  UTC datetimes from ISO 8601 with an offset, epoch seconds (or milliseconds), or local times of
  the source's timezone (zoneinfo: a time in the spring-forward gap is read with the offset before
  the change, an ambiguous fall-back time as its first occurrence).
- StandardStatus and PropertyType in RESO's spelling when they match it ignoring case.
- UnparsedAddress built as ``"123 Oak St #4, Naples, FL 34102"`` when the record has street parts but
  no full address (a full address is kept as sent).
- Latitude and Longitude both 0 mean "not geocoded": both become None.
- ``"Media"`` when ``fields`` maps it: ``[{"Order": n, "MediaURL": url}, ...]`` by Order, from a
  list of objects (MediaURL, Order), a list of URLs, or one string of URLs separated by commas,
  pipes or spaces; then PhotosCount, unless mapped, is their number.
- ``"extra"``: the record's other non-empty source fields, JSON-safe (dates as ISO text, decimals
  as numbers, binary as a placeholder). A source field used through a dot path keeps its whole
  top-level key out of extra.

A record is rejected (RecordRejected, never transient) when the parser marked it (``__error__``),
ListingKey is missing, a value cannot be coerced (the reason names the RESO field, the source
field and the value), StandardStatus is not a RESO StandardStatus, a coordinate is out of range,
or a value does not fit its column in the listings table. Mistakes in the spec itself raise
SourceConfigError when the Mapper is built.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Float, Integer, Numeric, String

from core.models import Listing
from core.reso import LISTING_FIELDS, PROPERTY_TYPE, STANDARD_STATUS
from pipeline.errors import PipelineError, SourceConfigError

VOCABULARIES = {"StandardStatus": STANDARD_STATUS, "PropertyType": PROPERTY_TYPE}
CANONICAL = {name: {term.casefold(): term for term in terms} for name, terms in VOCABULARIES.items()}
KIND_WORDS = {"text": "text", "int": "a whole number", "decimal": "a number", "float": "a number",
              "timestamp": "a timestamp"}
NUMBER_NOISE = re.compile(r"[\s,$€£_]")
EPOCH = re.compile(r"-?\d{9,}(\.\d+)?")
URL_SEPARATORS = re.compile(r"[\s,|]+")
MEDIA_URL_KEYS = ("MediaURL", "MediaUrl", "Url", "URL", "url", "uri", "href")
ADDRESS_PARTS = ("StreetNumber", "StreetName", "UnitNumber", "City", "StateOrProvince", "PostalCode")
RANGES = {"Latitude": 90, "Longitude": 180}
BINARY_TEXT_LIMIT = 4096


class RecordRejected(PipelineError):
    """A record that cannot become a listing. It is counted and kept; the feed goes on."""

    def __init__(self, reason: str, *, listing_key: str | None = None, line: int | None = None):
        super().__init__(reason)
        self.reason, self.listing_key, self.line = reason, listing_key, line


class _Invalid(ValueError):
    """A reason to reject, raised below map() and turned into RecordRejected there."""


class Mapper:
    """Maps one source's parsed records to RESO listings (see the module docstring)."""

    def __init__(self, parse_spec: dict[str, Any], timezone: str):
        fields = _fields(parse_spec.get("fields"))
        self._media_paths = fields.pop("Media", None)
        self._fields = {"ListingKey": fields.pop("ListingKey"), **fields}
        self._consumed = _consumed_keys([*self._fields.values(), self._media_paths or ()])
        self._values = _value_maps(parse_spec.get("values"))
        self._zone = _zone(timezone)
        self._formats = _formats(parse_spec.get("timestamp_format"))
        self._coercers: dict[str, Callable[[Any], Any]] = {
            "text": to_text, "int": to_int, "decimal": to_decimal, "float": to_float, "timestamp": self.to_timestamp,
        }
        self._defaults = self._typed_defaults(parse_spec.get("defaults"))

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        """The listing of one parsed record; raises RecordRejected with a reason."""
        if "__error__" in record:
            raise RecordRejected(str(record["__error__"]), line=record.get("__line__"))
        key = self._listing_key(record)
        try:
            listing = self._listing(record)
        except _Invalid as exc:
            raise RecordRejected(str(exc), listing_key=key) from None
        listing["extra"] = self._extra(record)
        return listing

    def _listing_key(self, record: dict[str, Any]) -> str:
        path, raw = _lookup(record, self._fields["ListingKey"])
        try:
            key = to_text(self._translate("ListingKey", _scalar(raw)))
        except ValueError as exc:
            raise RecordRejected(_unreadable("ListingKey", path, raw, exc)) from None
        if key is None:
            raise RecordRejected(f"ListingKey is missing (source field {path!r})")
        return key

    def _listing(self, record: dict[str, Any]) -> dict[str, Any]:
        listing: dict[str, Any] = {}
        origins: dict[str, tuple[str, Any]] = {}
        for name, paths in self._fields.items():
            origins[name] = path, raw = _lookup(record, paths)
            listing[name] = self._field(name, path, raw)
        for name, value in self._defaults.items():
            if listing.get(name) is None:
                listing[name] = value
        _derive_address(listing)
        _check_status(listing, origins)
        _check_coordinates(listing)
        _check_columns(listing)
        if self._media_paths is not None:
            self._add_media(listing, record)
        return listing

    def _field(self, name: str, path: str, raw: Any) -> Any:
        try:
            return self.coerce(name, self._translate(name, _scalar(raw)))
        except ValueError as exc:
            raise _Invalid(_unreadable(name, path, raw, exc)) from None

    def coerce(self, name: str, value: Any) -> Any:
        """``value`` as the type of RESO field ``name`` (None for no value); ValueError if it cannot be."""
        value = self._coercers[LISTING_FIELDS[name][1]](value)
        if name in CANONICAL and value is not None:
            return CANONICAL[name].get(value.casefold(), value)
        return value

    def _translate(self, name: str, value: Any) -> Any:
        """Apply the field's value map, if any, to a scalar value."""
        if value is None or name not in self._values:
            return value
        text = str(value).strip()
        exact, folded = self._values[name]
        if text in exact:
            return exact[text]
        return folded.get(text.casefold(), value)

    def to_timestamp(self, value: Any) -> dt.datetime | None:
        """An aware UTC datetime from a datetime, a date, epoch seconds or text (see the module docstring)."""
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return self._utc(value)
        if isinstance(value, dt.date):
            return self._utc(dt.datetime.combine(value, dt.time()))
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return _epoch(value)
        return self._parse_timestamp(str(value).strip())

    def _parse_timestamp(self, text: str) -> dt.datetime | None:
        if not text:
            return None
        for fmt in self._formats:
            try:
                return self._utc(dt.datetime.strptime(text, fmt))
            except ValueError:
                continue
        try:
            return self._utc(dt.datetime.fromisoformat(text))
        except ValueError:
            pass
        if EPOCH.fullmatch(text):
            return _epoch(Decimal(text))
        raise ValueError("expected ISO 8601, epoch seconds, or the source's timestamp_format")

    def _utc(self, moment: dt.datetime) -> dt.datetime:
        """Naive times are wall-clock times of the source's timezone (fold=0: see the module docstring)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._zone)
        return moment.astimezone(dt.timezone.utc)

    def _add_media(self, listing: dict[str, Any], record: dict[str, Any]) -> None:
        path, raw = _lookup(record, self._media_paths)
        try:
            listing["Media"] = media_list(raw)
        except ValueError as exc:
            raise _Invalid(f"Media: {_shown(raw)} (source field {path!r}) is not a list of photos: {exc}") from None
        if "PhotosCount" not in self._fields and "PhotosCount" not in self._defaults:
            listing["PhotosCount"] = len(listing["Media"])

    def _extra(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            key: json_safe(value)
            for key, value in record.items()
            if key not in self._consumed and not key.startswith("__") and not _empty(value)
        }

    def _typed_defaults(self, defaults: Any) -> dict[str, Any]:
        typed = {}
        for name, value in _table(defaults, "defaults").items():
            _known(name, "defaults")
            try:
                typed[name] = self.coerce(name, value)
            except ValueError as exc:
                kind = KIND_WORDS[LISTING_FIELDS[name][1]]
                raise SourceConfigError(f"defaults.{name} = {value!r} is not {kind}: {exc}") from None
            _check_vocabulary(name, typed[name], f"defaults.{name}")
        return typed


# -- the spec ------------------------------------------------------------------------------------


def _fields(fields: Any) -> dict[str, tuple[str, ...]]:
    table = _table(fields, "fields")
    paths = {}
    for name, source in table.items():
        _known(name, "fields", also=("Media",))
        paths[name] = _source_paths(name, source)
    if "ListingKey" not in paths:
        raise SourceConfigError("fields.ListingKey is required: the source field that identifies a listing")
    return paths


def _source_paths(name: str, source: Any) -> tuple[str, ...]:
    sources = [source] if isinstance(source, str) else source
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        raise SourceConfigError(f"fields.{name} must name a source field (or a list of them), not {source!r}")
    return tuple(s.strip() for s in sources)


def _consumed_keys(path_groups: list[tuple[str, ...]]) -> frozenset[str]:
    """The record keys that mapping uses, and so keeps out of extra."""
    keys = set()
    for paths in path_groups:
        for path in paths:
            keys.update((path, path.split(".", 1)[0]))
    return frozenset(keys)


def _value_maps(values: Any) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    maps = {}
    for name, table in _table(values, "values").items():
        _known(name, "values")
        table = _table(table, f"values.{name}")
        for source_value, target in table.items():
            _check_vocabulary(name, CANONICAL.get(name, {}).get(str(target).casefold(), target),
                              f"values.{name}.{source_value!r}")
        maps[name] = (
            {str(k).strip(): v for k, v in table.items()},
            {str(k).strip().casefold(): v for k, v in table.items()},
        )
    return maps


def _check_vocabulary(name: str, value: Any, where: str) -> None:
    if name == "StandardStatus" and value not in (None, "") and value not in STANDARD_STATUS:
        raise SourceConfigError(f"{where}: {value!r} is not a RESO StandardStatus ({', '.join(STANDARD_STATUS)})")


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SourceConfigError(f"parse spec: {where} must be a table, not {value!r}")
    return value


def _known(name: str, where: str, also: tuple[str, ...] = ()) -> None:
    if name in LISTING_FIELDS or name in also:
        return
    close = difflib.get_close_matches(name, [*LISTING_FIELDS, *also], n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; use one of {', '.join([*LISTING_FIELDS, *also])}"
    raise SourceConfigError(f"{where}.{name}: not a RESO field that listings store{hint}")


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise SourceConfigError(f"unknown timezone {timezone!r}: use an IANA name such as America/New_York") from None


def _formats(formats: Any) -> tuple[str, ...]:
    formats = [formats] if isinstance(formats, str) else formats or []
    if not isinstance(formats, list) or not all(isinstance(f, str) and f for f in formats):
        raise SourceConfigError(f"timestamp_format must be a strptime format or a list of them, not {formats!r}")
    return tuple(formats)


# -- reading a record ----------------------------------------------------------------------------


def _lookup(record: dict[str, Any], paths: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``paths`` that has a value in the record, and that value."""
    for path in paths:
        value = resolve(record, path)
        if not _empty(value):
            return path, value
    return paths[0], None


def resolve(record: dict[str, Any], path: str) -> Any:
    """The value at ``path``: a key of the record, else a dot path through objects and arrays."""
    if path in record or "." not in path:
        return record.get(path)
    node: Any = record
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        else:
            return None
    return node


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, dict)) and not value)


def _scalar(value: Any) -> Any:
    """One value: a list holding a single non-empty value is that value."""
    if isinstance(value, list):
        values = [v for v in value if not _empty(v)]
        if len(values) > 1:
            raise ValueError(f"{len(values)} values where one was expected")
        value = values[0] if values else None
    if isinstance(value, dict):
        raise ValueError("an object where one value was expected")
    return value


def _unreadable(name: str, path: str, raw: Any, exc: ValueError) -> str:
    kind = KIND_WORDS[LISTING_FIELDS[name][1]]
    detail = f" ({exc})" if str(exc) else ""
    return f"{name}: {_shown(raw)} (source field {path!r}) is not {kind}{detail}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# -- coercion ------------------------------------------------------------------------------------


def to_text(value: Any) -> str | None:
    """Stripped text; None for nothing or blanks."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() or None


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal; currency signs, thousands separators and spaces are ignored."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    else:
        text = NUMBER_NOISE.sub("", repr(value) if isinstance(value, float) else str(value))
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("") from None
    if not number.is_finite():
        raise ValueError("not finite")
    return number


def to_int(value: Any) -> int | None:
    """An int from anything ``to_decimal`` reads that has no fraction (``"3.0"`` → 3)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = to_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ValueError("it has a fraction")
    return int(number)


def to_float(value: Any) -> float | None:
    """A finite float, read as leniently as ``to_decimal``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value
    number = to_decimal(value)
    return None if number is None else float(number)


def _epoch(value: int | float | Decimal) -> dt.datetime:
    seconds = float(value)
    if abs(seconds) > 1e11:  # milliseconds: 1e11 seconds is the year 5138
        seconds /= 1000
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError("epoch value out of range") from None


# -- derived fields and checks -------------------------------------------------------------------


def _derive_address(listing: dict[str, Any]) -> None:
    if listing.get("UnparsedAddress") is None and (listing.get("StreetNumber") or listing.get("StreetName")):
        listing["UnparsedAddress"] = compose_address(*(listing.get(part) for part in ADDRESS_PARTS))


def compose_address(number, street, unit, city, state, postal) -> str:
    """``"123 Oak St #4, Naples, FL 34102"``, leaving out the parts that are missing."""
    line = " ".join(p for p in (number, street) if p)
    if unit:
        line += f" #{unit}" if unit[0].isdigit() or len(unit) == 1 else f" {unit}"
    region = " ".join(p for p in (state, postal) if p)
    return ", ".join(p for p in (line, city, region) if p)


def _check_status(listing: dict[str, Any], origins: dict[str, tuple[str, Any]]) -> None:
    if "StandardStatus" not in listing or listing["StandardStatus"] in STANDARD_STATUS:
        return
    path, raw = origins.get("StandardStatus", ("StandardStatus", None))
    if listing["StandardStatus"] is None:
        raise _Invalid(f"StandardStatus is missing (source field {path!r}); give the source defaults.StandardStatus "
                       f"if its feed has none")
    raise _Invalid(
        f"StandardStatus {listing['StandardStatus']!r} (source field {path!r} = {_shown(raw)}) is not a RESO "
        f"StandardStatus; add it to [source.values.StandardStatus]: \"{str(raw).strip()}\" = one of "
        f"{', '.join(STANDARD_STATUS)}"
    )


def _check_coordinates(listing: dict[str, Any]) -> None:
    if listing.get("Latitude") == 0 and listing.get("Longitude") == 0:
        listing["Latitude"] = listing["Longitude"] = None  # "not geocoded" in many feeds
    for name, limit in RANGES.items():
        value = listing.get(name)
        if value is not None and not -limit <= value <= limit:
            raise _Invalid(f"{name} {value} is out of range (-{limit} to {limit})")


def _column_limits() -> dict[str, tuple[str, int]]:
    """What each RESO field's column in the listings table holds: ("characters", n) or ("below", n)."""
    limits = {}
    for name, (column, _) in LISTING_FIELDS.items():
        type_ = Listing.__table__.c[column].type if column in Listing.__table__.c else None
        if isinstance(type_, String) and type_.length:
            limits[name] = ("characters", type_.length)
        elif isinstance(type_, Numeric) and not isinstance(type_, Float) and type_.precision:
            limits[name] = ("below", 10 ** (type_.precision - (type_.scale or 0)))
        elif isinstance(type_, Integer):
            limits[name] = ("below", 2**31)  # a 32-bit INTEGER on every database
    return limits


COLUMN_LIMITS = _column_limits()


def _check_columns(listing: dict[str, Any]) -> None:
    for name, (unit, limit) in COLUMN_LIMITS.items():
        value = listing.get(name)
        if value is None:
            continue
        if unit == "characters" and len(value) > limit:
            raise _Invalid(f"{name} is {len(value)} characters long; the listings table holds {limit}: {_shown(value)}")
        if unit == "below" and abs(value) >= limit:
            raise _Invalid(f"{name} {value} is too large for the listings table (it holds less than {limit:,})")


# -- media and extra -----------------------------------------------------------------------------


def media_list(value: Any) -> list[dict[str, Any]]:
    """``[{"Order": n, "MediaURL": url}, ...]`` sorted by Order, from the shapes the module docstring lists."""
    if _empty(value):
        return []
    if isinstance(value, str):
        value = URL_SEPARATORS.split(value.strip())
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    media = [_photo(item, position) for position, item in enumerate(value, start=1)]
    return sorted((m for m in media if m["MediaURL"]), key=lambda m: m["Order"])


def _photo(item: Any, position: int) -> dict[str, Any]:
    """One photo; its position in the list stands in for a missing or unreadable Order."""
    url, order = item, None
    if isinstance(item, dict):
        url = next((item[key] for key in MEDIA_URL_KEYS if item.get(key)), None)
        order = item.get("Order")
    try:
        order = to_int(_scalar(order))
    except ValueError:
        order = None
    return {"Order": position if order is None else order, "MediaURL": to_text(url) if isinstance(url, str) else None}


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types: str, int, float, bool, None, lists and string-keyed objects."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (float, Decimal)):
        return _number(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary(bytes(value))
    return str(value)


def _number(value: float | Decimal) -> int | float | str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    return value if math.isfinite(value) else str(value)


def _binary(data: bytes) -> str:
    if len(data) <= BINARY_TEXT_LIMIT:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return f"<{len(data)} bytes of binary data>"
