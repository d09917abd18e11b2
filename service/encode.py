"""Response envelopes written straight from plain records, in the shape spyne gives them.

spyne's generic serializer builds an lxml tree of model objects and costs about 0.29 ms per
ListingSummary; a search page of 200 is 58 ms. The contract does not need that generality: the
response types are fixed, so each one is compiled once, from the same spyne declarations that
write the WSDL, into a list of (tag, formatter) pairs, and a record (a tuple in field order, or
a mapping by field name) is written with string joins. The text of each value is spyne's
(``str`` of a Decimal, ``repr`` of a float, ``isoformat`` of a datetime), except where spyne's
would not be valid XSD (a Decimal in exponent form, an infinite double) or not XML at all
(control characters, which become U+FFFD instead of failing the whole response).

tests/unit/test_encode.py proves the output equal, after canonicalization, to spyne's for every
operation and for awkward values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from spyne.model.complex import Array, ComplexModelBase

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"

_NEEDS_WORK = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: str) -> str:
    """``value`` as XML character data."""
    if not _NEEDS_WORK.search(value):
        return value
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return _NOT_XML.sub("\ufffd", value)


def _string(value) -> str:
    return text(value if isinstance(value, str) else str(value))


def _integer(value) -> str:
    return str(int(value))


def _decimal(value) -> str:
    rendered = str(value)
    if "E" in rendered or "e" in rendered:  # str() of Decimal('1E+5'); not an xs:decimal
        rendered = format(Decimal(value), "f")
    return rendered


def _double(value) -> str:
    number = float(value)
    if math.isfinite(number):
        return repr(number)
    return "NaN" if math.isnan(number) else ("INF" if number > 0 else "-INF")


def _boolean(value) -> str:
    return "true" if value else "false"


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


FORMATTERS: dict[str, Callable[[Any], str]] = {
    "string": _string, "int": _integer, "long": _integer, "decimal": _decimal, "double": _double,
    "float": _double, "boolean": _boolean, "dateTime": _isoformat, "date": _isoformat,
}


class ComplexWriter:
    """Writes one complex type's element content from a record.

    The writer is a function generated for the type (as dataclasses and attrs generate theirs):
    one ``if value is not None: out.append(...)`` per field, tags as constants, formatters as
    fast locals. A record that is a mapping is first laid out in field order.
    """

    def __init__(self, kind, prefix: str, writers: dict):
        writers[kind] = self
        self.names = list(kind._type_info)
        namespace: dict[str, Any] = {"_needs": _NEEDS_WORK.search, "_text": text, "_Mapping": Mapping}
        lines = ["def write(record, out):",
                 "    if isinstance(record, _Mapping):",
                 "        record = [record.get(name) for name in _names]",
                 f"    {''.join(f'v{n}, ' for n in range(len(self.names)))}*_ = record"]
        for n, (name, member) in enumerate(kind._type_info.items()):
            opening, closing = f"<{prefix}:{name}>", f"</{prefix}:{name}>"
            formatter, nested = _member_writer(member, prefix, writers)
            lines.append(f"    if v{n} is not None:")
            if formatter is _string:  # inlined: most fields are text that needs no escaping
                lines.append(f"        out.append({opening!r} + (v{n} if v{n}.__class__ is str and not "
                             f"_needs(v{n}) else _text(str(v{n}))) + {closing!r})")
            elif formatter is not None:
                namespace[f"f{n}"] = formatter
                lines.append(f"        out.append({opening!r} + f{n}(v{n}) + {closing!r})")
            else:
                namespace[f"w{n}"] = nested
                lines.append(f"        w{n}(v{n}, {opening!r}, {closing!r}, out)")
        namespace["_names"] = self.names
        exec(compile("\n".join(lines), f"<writer of {kind.get_type_name()}>", "exec"), namespace)
        self.write = namespace["write"]


def _member_writer(member, prefix: str, writers: dict):
    """(formatter, None) for a simple type; (None, writer) for a complex type or an array."""
    if issubclass(member, Array):
        (item_name, item_kind), = member._type_info.items()
        item = writers.get(item_kind) or ComplexWriter(item_kind, prefix, writers)
        return None, _array_writer(item, f"<{prefix}:{item_name}>", f"</{prefix}:{item_name}>")
    if issubclass(member, ComplexModelBase):
        writer = writers.get(member) or ComplexWriter(member, prefix, writers)
        return None, _complex_writer(writer)
    if getattr(member.Attributes, "values", None):
        return _string, None  # an enumeration of strings
    type_name = member.get_type_name()
    if type_name not in FORMATTERS:
        raise TypeError(f"no formatter for the XSD type {type_name!r}")
    return FORMATTERS[type_name], None


def _array_writer(item: ComplexWriter, item_open: str, item_close: str):
    def write(records: Iterable, opening: str, closing: str, out: list[str]) -> None:
        start = len(out)
        out.append(opening)
        write_item, append = item.write, out.append
        for record in records:
            append(item_open)
            write_item(record, out)
            append(item_close)
        if len(out) == start + 1:
            out[start] = opening[:-1] + "/>"  # spyne writes an empty array as <tns:Name/>
        else:
            append(closing)

    return write


def _complex_writer(writer: ComplexWriter):
    def write(record, opening: str, closing: str, out: list[str]) -> None:
        out.append(opening)
        writer.write(record, out)
        out.append(closing)

    return write


class Encoder:
    """Writes the response envelope of each operation of a spyne service, and faults."""

    def __init__(self, service_class, namespace: str, prefix: str = "tns"):
        self._namespace, self._prefix = namespace, prefix
        self._head = (f'{DECLARATION}<soap11env:Envelope xmlns:soap11env="{SOAP11}" '
                      f'xmlns:{prefix}="{namespace}"><soap11env:Body>')
        self._bare_head = f'{DECLARATION}<soap11env:Envelope xmlns:soap11env="{SOAP11}"><soap11env:Body>'
        self._tail = "</soap11env:Body></soap11env:Envelope>"
        writers: dict = {}
        self._responses = {
            name: (descriptor.out_message.get_type_name(), ComplexWriter(descriptor.out_message, prefix, writers))
            for name, descriptor in service_class.public_methods.items()
        }

    def response(self, operation: str, values: Sequence) -> bytes:
        """The envelope answering ``operation`` with its output values, in declaration order."""
        element, writer = self._responses[operation]
        out = [self._head, f"<{self._prefix}:{element}>"]
        writer.write(values, out)
        out.append(f"</{self._prefix}:{element}>")
        out.append(self._tail)
        return "".join(out).encode("utf-8")

    def fault(self, code: str, message: str, detail: str | None = None) -> bytes:
        """A soap:Fault; ``detail`` names a declared fault element (its Message is ``message``)."""
        head = self._head if detail else self._bare_head
        body = [head, "<soap11env:Fault>", f"<faultcode>soap11env:{code}</faultcode>",
                f"<faultstring>{text(message)}</faultstring>", "<faultactor></faultactor>"]
        if detail:
            prefix = self._prefix
            body.append(f"<detail><{prefix}:{detail}><{prefix}:Message>{text(message)}</{prefix}:Message>"
                        f"</{prefix}:{detail}></detail>")
        body.append("</soap11env:Fault>")
        body.append(self._tail)
        return "".join(body).encode("utf-8")
