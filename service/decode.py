"""Request elements to Python values, checked against the contract the WSDL publishes.

The rules come from the spyne declarations in service/api.py (the same ones that write the
WSDL), read once at start-up: each operation's wrapper is an ``xs:sequence`` of qualified
elements with their XSD type, occurrence bounds and enumerations. Decoding walks the children
once, in order, and says what is wrong in a sentence that names the element:

    PageSize: 'abc' is not a whole number
    SortBy: 'Price' is not one of ListPrice, ModificationTimestamp, ListingKey
    element Color is not part of SearchListings (expected one of: SourceId, City, ...)

``xsi:nil="true"`` on an optional element means the element is absent (node's ``soap``
package sends it for a null argument). A dateTime without a time zone is read as UTC.
tests/unit/test_decode.py checks these rules against libxml2's schema validation of the WSDL.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from service.errors import InvalidArgument, shown

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
UNBOUNDED = float("inf")


@dataclass(frozen=True)
class Field:
    name: str
    tag: str  # {namespace}name
    parse: Callable[[str, str], Any]  # (element name, text) -> value
    min_occurs: int
    max_occurs: float
    repeated: bool


@dataclass(frozen=True)
class Operation:
    name: str
    fields: tuple[Field, ...]

    def decode(self, element) -> dict[str, Any]:
        """The operation's arguments by name: absent optional ones None, repeated ones a list."""
        _check_attributes(element, self.name)
        _check_no_text(element, self.name)
        children = list(element)
        values: dict[str, Any] = {}
        position = 0
        for field in self.fields:
            found = []
            while position < len(children) and children[position].tag == field.tag:
                found.append(children[position])
                position += 1
            values[field.name] = _field_value(field, found, self.name)
        if position < len(children):
            raise InvalidArgument(self._misplaced(children[position]))
        return values

    def _misplaced(self, child) -> str:
        local = _local(child.tag)
        known = {f.tag: f for f in self.fields}
        if child.tag in known:
            field = known[child.tag]
            if not field.repeated and any(c.tag == child.tag for c in child.itersiblings(preceding=True)):
                return f"{local} may appear only once in {self.name}"
            return f"{local} is out of order in {self.name}: the elements follow the order " + \
                ", ".join(f.name for f in self.fields)
        if any(f.name == local for f in self.fields):
            return f"{local} must be in the namespace {_namespace(self.fields[0].tag)}"
        return f"element {local} is not part of {self.name} (expected one of: " + \
            ", ".join(f.name for f in self.fields) + ")"


def _field_value(field: Field, found: list, operation: str) -> Any:
    present = [e for e in found if not _nil(e, field)]
    if len(present) < field.min_occurs:
        raise InvalidArgument(f"{field.name} is required in {operation}")
    if len(found) > field.max_occurs:
        raise InvalidArgument(f"{field.name} may appear only once in {operation}")
    values = [field.parse(field.name, _simple_text(e, field.name)) for e in present]
    if field.repeated:
        return values
    return values[0] if values else None


def _nil(element, field: Field) -> bool:
    flag = element.get(XSI_NIL)
    if flag is None:
        return False
    if flag.strip() not in ("true", "1", "false", "0"):
        raise InvalidArgument(f"{field.name}: xsi:nil must be true or false, got {shown(flag)}")
    if flag.strip() in ("false", "0"):
        return False
    if len(element) or (element.text and element.text.strip()):
        raise InvalidArgument(f"{field.name} is marked xsi:nil but has content")
    return True


def _simple_text(element, name: str) -> str:
    _check_attributes(element, name)
    if len(element):
        raise InvalidArgument(f"{name} holds the element {_local(element[0].tag)}; it takes a plain value")
    return element.text or ""


def _check_attributes(element, name: str) -> None:
    for attribute in element.attrib:
        if not attribute.startswith(XSI):
            raise InvalidArgument(f"{name} has the attribute {_local(attribute)}, which is not part of it")


def _check_no_text(element, name: str) -> None:
    texts = [element.text] + [child.tail for child in element]
    if any(t and t.strip() for t in texts):
        raise InvalidArgument(f"{name} holds text between its elements")


# -- XSD lexical spaces ---------------------------------------------------------------------

# XSD digits are ASCII digits only (re.ASCII: \d would also match other scripts' digits).
_INTEGER = re.compile(r"[+-]?\d+\Z", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)\Z", re.ASCII)
_DOUBLE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z|-?INF\Z|NaN\Z", re.ASCII)
_DATETIME = re.compile(
    r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?\Z", re.ASCII
)
_DATE = re.compile(r"(-?\d{4,})-(\d\d)-(\d\d)(Z|[+-]\d\d:\d\d)?\Z", re.ASCII)


def parse_string(name: str, text: str) -> str:
    return text


def integer_parser(low: int, high: int, kind: str) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        value = text.strip()
        if not _INTEGER.match(value):
            raise InvalidArgument(f"{name}: {shown(text)} is not a whole number")
        digits = value.lstrip("+-").lstrip("0")
        number = int(value) if len(digits) <= 20 else high + 1  # int() of 5,000 digits is refused
        if not low <= number <= high:
            raise InvalidArgument(f"{name}: {shown(text)} is out of range for {kind} ({low} to {high})")
        return number

    return parse


def parse_decimal(name: str, text: str) -> Decimal:
    value = text.strip()
    if not _DECIMAL.match(value):
        raise InvalidArgument(f"{name}: {shown(text)} is not a decimal number (like 250000 or 1234.50)")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidArgument(f"{name}: {shown(text)} is not a decimal number") from None


def parse_double(name: str, text: str) -> float:
    value = text.strip()
    if not _DOUBLE.match(value):
        raise InvalidArgument(f"{name}: {shown(text)} is not a number")
    if value.endswith("INF"):
        return -math.inf if value.startswith("-") else math.inf
    return float(value)


def parse_boolean(name: str, text: str) -> bool:
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidArgument(f"{name}: {shown(text)} is not a boolean (true, false, 1 or 0)")


def parse_datetime(name: str, text: str) -> dt.datetime:
    """An xs:dateTime; without a time zone it is taken as UTC."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise InvalidArgument(f"{name}: {shown(text)} is not a date and time like 2026-05-01T12:00:00Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        extra = dt.timedelta(0)
        if (hour, minute, second) == ("24", "00", "00") and not (fraction or "").strip(".0"):
            hour, extra = "00", dt.timedelta(days=1)  # 24:00:00 is the end of the day
        micro = int((fraction or ".0")[1:7].ljust(6, "0"))
        value = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                            tzinfo=_zone(zone)) + extra
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{name}: {shown(text)} is not a valid date and time ({exc})") from None
    return value.astimezone(dt.timezone.utc)


def parse_date(name: str, text: str) -> dt.date:
    match = _DATE.match(text.strip())
    if not match:
        raise InvalidArgument(f"{name}: {shown(text)} is not a date like 2026-05-01")
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise InvalidArgument(f"{name}: {shown(text)} is not a valid date ({exc})") from None


def _zone(text: str | None) -> dt.timezone:
    if not text or text == "Z":
        return dt.timezone.utc
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59 or (hours == 14 and minutes):
        raise ValueError(f"time zone offset {text} is out of range")
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def enumeration_parser(values: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        if text not in values:
            raise InvalidArgument(f"{name}: {shown(text)} is not one of {', '.join(values)}")
        return text

    return parse


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "string": parse_string,
    "int": integer_parser(-(2**31), 2**31 - 1, "xs:int"),
    "long": integer_parser(-(2**63), 2**63 - 1, "xs:long"),
    "decimal": parse_decimal,
    "double": parse_double,
    "float": parse_double,
    "boolean": parse_boolean,
    "dateTime": parse_datetime,
    "date": parse_date,
}


# -- from the spyne declarations -------------------------------------------------------------

def operations_of(service_class, namespace: str) -> dict[str, Operation]:
    """Every public method of a spyne ServiceBase, as decoding rules."""
    return {
        name: Operation(name, tuple(_field(key, kind, namespace) for key, kind in
                                    descriptor.in_message._type_info.items()))
        for name, descriptor in service_class.public_methods.items()
    }


def _field(name: str, kind, namespace: str) -> Field:
    attributes = kind.Attributes
    values = tuple(getattr(attributes, "values", None) or ())
    if values:
        parse = enumeration_parser(values)
    else:
        type_name = kind.get_type_name()
        if type_name not in _PARSERS:
            raise TypeError(f"no decoder for the XSD type {type_name!r} of {name}")
        parse = _PARSERS[type_name]
    max_occurs = attributes.max_occurs
    max_occurs = UNBOUNDED if max_occurs in ("unbounded", float("inf")) else int(max_occurs)
    return Field(name, f"{{{namespace}}}{name}", parse, int(attributes.min_occurs), max_occurs,
                 max_occurs > 1)


def _local(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else str(tag)


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0]
