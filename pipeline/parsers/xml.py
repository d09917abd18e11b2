"""XML feeds, streamed with lxml's iterparse: memory stays flat however large the file.

Spec keys:

``record`` (required)
    The local name of the element that holds one listing, e.g. ``"Listing"``. It is matched at any
    depth and in any namespace, so a SOAP envelope (``soap:Envelope/soap:Body/...``) is transparent.
``encoding``
    Overrides the encoding the document declares (for feeds that declare UTF-8 and send cp1252);
    any encoding Python knows (:mod:`pipeline.parsers.encoding`).

Each record element becomes one flat dict, keyed by local names (namespaces dropped):

- child elements by their slash-joined path below the record: ``"ListPrice"``, ``"Address/City"``;
- attributes as ``"@name"`` on the record itself, ``"Address/@type"`` below it (``xsi:`` attributes
  such as ``xsi:nil`` are left out);
- an element that occurs more than once in a record gives a list of its values in document order:
  ``"Photos/Photo": ["u1", "u2"]`` (once: a plain value). Repeated groups come out column-wise:
  ``"Rooms/Room/Type": ["Bed", "Bath"]``, ``"Rooms/Room/Area": ["12x14", "8x10"]``;
- text is kept as sent; an empty or blank element is ``None``. Comments, processing instructions and
  blank text between child elements are ignored.

Malformed XML raises FeedFormatError with the line; a SOAP Fault where records were expected raises
FeedFormatError with its fault string.

Memory: each record is cleared once flattened, and everything before it in the document is
dropped, so the tree never holds more than the record being read and its ancestors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from lxml import etree

from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.parsers.encoding import xml_input

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
CHUNK = 1 << 16


class XmlParser:
    """Streams flattened records out of an XML document (see the module docstring)."""

    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        record = _record_name(spec)
        stream, encoding = xml_input(stream, spec.get("encoding") or None)
        try:
            for _, element in _ends(stream, (f"{{*}}{record}", "{*}Fault"), encoding):
                if _local(element.tag) != record:
                    raise _fault(element)
                yield flatten(element)
                _release(element)
        except etree.XMLSyntaxError as exc:
            raise FeedFormatError(f"malformed XML: {exc.msg}", line=exc.lineno or None) from exc
        except LookupError as exc:  # an unknown encoding, given or declared
            raise FeedFormatError(f"cannot read the XML: {exc}") from exc


def _ends(stream: BinaryIO, tags: tuple[str, ...], encoding: str | None) -> Iterator[tuple[str, etree._Element]]:
    """The end events of ``tags``, chunk by chunk. The records before a syntax error come out
    before it is raised (lxml's iterparse may raise first when both sit in one chunk)."""
    parser = etree.XMLPullParser(events=("end",), tag=tags, encoding=encoding)
    while True:
        chunk = stream.read(CHUNK)
        try:
            if chunk:
                parser.feed(chunk)
            else:
                parser.close()
        except etree.XMLSyntaxError:
            yield from parser.read_events()
            raise
        yield from parser.read_events()
        if not chunk:
            return


def _record_name(spec: dict[str, Any]) -> str:
    record = spec.get("record")
    if not isinstance(record, str) or not record.strip():
        raise SourceConfigError('xml parse spec needs record = "<local name of the listing element>"')
    return _local(record.strip())


def flatten(record: etree._Element) -> dict[str, Any]:
    """One record element as ``{path: text | None | [values]}``."""
    values: dict[str, Any] = {}
    if record.attrib:
        _attributes(record, "", values)
    _walk(record, "", values)
    return values


def _walk(element: etree._Element, prefix: str, values: dict[str, Any]) -> None:
    """Add the children of ``element``; this runs once per element of the feed, so it stays lean."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):  # a comment or processing instruction
            continue
        path = prefix + tag.rpartition("}")[2]
        if child.attrib:
            _attributes(child, path + "/", values)
        text = child.text
        if len(child):
            if text and not text.isspace():
                _add(values, path, text)
            _walk(child, path + "/", values)
        else:
            _add(values, path, text if text and not text.isspace() else None)


def _attributes(element: etree._Element, prefix: str, values: dict[str, Any]) -> None:
    for name, value in element.attrib.items():
        if not name.startswith(XSI):
            _add(values, f"{prefix}@{_local(name)}", value)


def _add(values: dict[str, Any], key: str, value: str | None) -> None:
    if key not in values:
        values[key] = value
    elif isinstance(values[key], list):
        values[key].append(value)
    else:
        values[key] = [values[key], value]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _release(element: etree._Element) -> None:
    """Free a flattened record and everything that came before it in the document."""
    element.clear(keep_tail=True)
    node = element
    while (parent := node.getparent()) is not None:
        while node.getprevious() is not None:
            del parent[0]
        node = parent


def _fault(element: etree._Element) -> FeedFormatError:
    texts = [e.text.strip() for e in element.iter() if _local(str(e.tag)) in ("faultstring", "Text") and e.text]
    return FeedFormatError(f"the payload is a SOAP fault: {'; '.join(texts) or 'no fault string'}")


PARSER = XmlParser()
