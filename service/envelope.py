"""Reading a SOAP 1.1 request: bytes in, one operation element out, or a SoapFault.

Everything here happens before any operation runs, and in this order, so that nothing costly
is done for a message that is not going anywhere:

1. the content coding (a gzip or deflate body, as PHP's SoapClient sends it with
   ``SOAP_COMPRESSION_GZIP``, is inflated, never past the size limit); the media type and
   charset (SOAP 1.2's ``application/soap+xml`` is a VersionMismatch; a multipart/related
   (MTOM / SwA) request is reduced to its root part); the bytes are decoded strictly, and a
   charset label that disagrees with the bytes or the XML declaration is refused;
2. no DOCTYPE, ever (SOAP 1.1 section 3), checked before the parser sees the bytes; the parser
   itself resolves no entities, loads nothing from the network and keeps libxml2's size limits;
3. the Envelope (namespace: VersionMismatch), its Header entries (an entry aimed at us with
   ``mustUnderstand="1"`` that we do not process is a MustUnderstand fault) and its Body (exactly
   one element, not a Fault, naming an operation of this service).

:func:`read_header` parses only as far as the start of the Body, so credentials carried in a
WS-Security header can be checked before the rest of a large body is even parsed.
"""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import re
import threading
import zlib
from dataclasses import dataclass

from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HEADER_LIMIT = 64 * 1024  # bytes of a request that may come before its Body starts

_ENVELOPE = f"{{{SOAP11}}}Envelope"
_HEADER = f"{{{SOAP11}}}Header"
_BODY = f"{{{SOAP11}}}Body"
_FAULT = f"{{{SOAP11}}}Fault"
_MUST_UNDERSTAND = f"{{{SOAP11}}}mustUnderstand"
_ACTOR = f"{{{SOAP11}}}actor"

_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf-16le": "utf-16-le",
             "utf-16be": "utf-16-be", "us-ascii": "ascii", "ascii": "ascii",
             "iso-8859-1": "latin-1", "latin1": "latin-1", "latin-1": "latin-1"}
_FAMILY = {"utf-16-le": "utf-16", "utf-16-be": "utf-16"}
_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
_DECLARED_ENCODING = re.compile(rb"""\A<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class SoapFault(Exception):
    """A fault of SOAP itself: ``code`` is VersionMismatch, MustUnderstand, Client or Server."""

    def __init__(self, code: str, message: str, status: int = 500):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def client_fault(message: str) -> SoapFault:
    return SoapFault("Client", message)


@dataclass
class Message:
    """A request that passed every envelope rule: its operation's element and its Header."""

    operation: str  # the local name of the Body's element
    element: etree._Element
    header: etree._Element | None


# -- bytes to an XML document ----------------------------------------------------------------

def document_bytes(body: bytes, content_type: str | None) -> bytes:
    """The request's XML document as UTF-8 bytes, after the media type and charset rules."""
    media, params = _media_type(content_type)
    if media == "multipart/related":
        body, media, params = _root_part(body, params)
    if media == "application/soap+xml":
        raise SoapFault("VersionMismatch", "this is a SOAP 1.1 service: send text/xml with a SOAP 1.1 "
                                           f"Envelope (namespace {SOAP11})")
    if media not in ("text/xml", "application/xml", ""):
        raise client_fault(f"the request's Content-Type is {media!r}; a SOAP 1.1 request is text/xml")
    if not body.strip():
        raise client_fault("the request has no body: send a SOAP Envelope")
    return _to_utf8(body, params.get("charset"))


# Content codings a request body may arrive in, and how zlib reads them ("deflate" is zlib's
# format by RFC 9110, but some clients send a raw deflate stream: tried when that fails).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflated(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body without its content coding; at most ``limit`` bytes once inflated."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in _CODINGS:
        raise SoapFault("Client", f"the request's Content-Encoding is {content_encoding.strip()[:40]!r}; send the "
                                  "body as it is, or gzip or deflate it", 415)
    for wbits in (_CODINGS[coding], -zlib.MAX_WBITS) if coding == "deflate" else (_CODINGS[coding],):
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(data) > limit:
            raise SoapFault("Client", f"the request is larger than {limit} bytes once inflated", 413)
        if not inflater.eof or inflater.unused_data:
            raise client_fault(f"the request body's {coding} data is cut short or followed by other bytes")
        return data
    raise client_fault(f"the request body is not {coding} data, as its Content-Encoding says")


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media, *rest = content_type.split(";")
    params = {}
    for item in rest:
        name, _, value = item.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def _to_utf8(raw: bytes, label: str | None) -> bytes:
    codec = _codec(raw, label)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        named = label or codec
        raise client_fault(f"the request body is not valid {named}: byte 0x{raw[exc.start]:02x} at offset "
                           f"{exc.start} cannot be decoded") from None
    text = text.removeprefix("\ufeff")
    if codec == "utf-8" and not raw.startswith(codecs.BOM_UTF8):
        document = raw
    else:
        document = text.encode("utf-8")
    _check_declaration(document, codec, label)
    return document


def _codec(raw: bytes, label: str | None) -> str:
    if label:
        codec = _CHARSETS.get(label.lower())
        if codec is None:
            raise client_fault(f"the charset {label!r} is not supported: send UTF-8 or UTF-16")
        return codec
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    declared = _DECLARED_ENCODING.match(raw.lstrip(codecs.BOM_UTF8))
    if declared:
        return _CHARSETS.get(declared.group(1).decode().lower()) or "utf-8"
    return "utf-8"


def _check_declaration(document: bytes, codec: str, label: str | None) -> None:
    declared = _DECLARED_ENCODING.match(document)
    if not declared:
        return
    name = declared.group(1).decode()
    declared_codec = _CHARSETS.get(name.lower())
    if declared_codec is None:
        raise client_fault(f"the XML declaration names the encoding {name!r}, which is not supported")
    if _FAMILY.get(declared_codec, declared_codec) != _FAMILY.get(codec, codec):
        raise client_fault(f"the XML declaration says encoding {name!r} but the Content-Type says "
                           f"charset {label or codec!r}")


def _root_part(body: bytes, params: dict[str, str]) -> tuple[bytes, str, dict[str, str]]:
    """The root part of a multipart/related request (MTOM or SOAP with attachments)."""
    boundary = params.get("boundary")
    if not boundary:
        raise client_fault("a multipart/related request needs a boundary parameter")
    header = f'Content-Type: multipart/related; boundary="{boundary}"\r\n\r\n'.encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    start = params.get("start")
    root = next((p for p in parts if start and p.get("Content-ID", "").strip() == start.strip()), None)
    root = root or (parts[0] if parts else None)
    if root is None:
        raise client_fault("the multipart/related request has no parts")
    media, part_params = _media_type(root.get("Content-Type"))
    if media == "application/xop+xml":
        part_type = (part_params.get("type") or params.get("start-info") or "").lower()
        media = "application/soap+xml" if part_type == "application/soap+xml" else "text/xml"
    return root.get_payload(decode=True) or b"", media, part_params


# -- parsing ---------------------------------------------------------------------------------

_local = threading.local()


def _parser_options() -> dict:
    return dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False,
                encoding="utf-8")


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(**_parser_options())
    return parser


def refuse_doctype(document: bytes) -> None:
    """SOAP 1.1 section 3: a SOAP message MUST NOT contain a Document Type Declaration."""
    prolog = _PROLOG.match(document)
    if document.startswith(b"<!DOCTYPE", prolog.end()):
        raise client_fault("a SOAP message must not contain a DOCTYPE (document type declaration)")


def parse(document: bytes) -> etree._Element:
    """The document's root element; never a DTD, an entity or a network access."""
    refuse_doctype(document)
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as exc:
        raise client_fault(f"the request is not well-formed XML: {_syntax_message(exc)}") from None
    return _checked_root(root)


@dataclass
class Partial:
    """A request parsed up to the start of its Body (or whole, when it has no Body)."""

    header: etree._Element | None
    parser: etree.XMLPullParser
    offset: int
    root: etree._Element | None = None  # set when the whole document has been read


def read_header(document: bytes) -> Partial:
    """Parse only up to the start of the Body, so the credentials in its Header can be checked
    before the rest is parsed; finish with :func:`finish`. A message whose Body does not start
    within HEADER_LIMIT bytes is refused unread."""
    refuse_doctype(document)
    parser = etree.XMLPullParser(events=("start",), **_parser_options())
    offset = 0
    try:
        while offset < len(document):
            if offset >= HEADER_LIMIT:
                raise client_fault(f"the SOAP Header is larger than {HEADER_LIMIT // 1024} KB")
            parser.feed(document[offset: offset + 8192])
            offset += 8192
            found, header = _scan_start_events(parser)
            if found:
                return Partial(header, parser, offset)
    except etree.XMLSyntaxError as exc:
        raise client_fault(f"the request is not well-formed XML: {_syntax_message(exc)}") from None
    root = finish(Partial(None, parser, offset))
    return Partial(root.find(_HEADER), parser, offset, root)


def _scan_start_events(parser) -> tuple[bool, etree._Element | None]:
    """(Body has started, the Header) from the parser's new start events."""
    for _, element in parser.read_events():
        parent = element.getparent()
        if parent is None:
            _check_envelope_tag(element)
        elif parent.getparent() is None and element.tag == _BODY:
            return True, parent.find(_HEADER)
    return False, None


def finish(partial: Partial, document: bytes = b"") -> etree._Element:
    """The whole document's root element, once :func:`read_header` has read its start."""
    if partial.root is not None:
        return partial.root
    try:
        if partial.offset < len(document):
            partial.parser.feed(document[partial.offset:])
        root = partial.parser.close()
    except etree.XMLSyntaxError as exc:
        raise client_fault(f"the request is not well-formed XML: {_syntax_message(exc)}") from None
    return _checked_root(root)


def _checked_root(root) -> etree._Element:
    if root.getroottree().docinfo.doctype:
        raise client_fault("a SOAP message must not contain a DOCTYPE (document type declaration)")
    _check_envelope_tag(root)
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    message = (exc.msg or str(exc)).split(" (<string>", 1)[0].rstrip(".")
    line, column = getattr(exc, "position", (None, None)) or (None, None)
    if line and f"line {line}" not in message:
        message += f" (line {line}, column {column})"
    return message


# -- the envelope ----------------------------------------------------------------------------

def _check_envelope_tag(root) -> None:
    namespace, local = _split(root.tag)
    if local != "Envelope":
        raise client_fault(f"the root element is {local!r}; a SOAP request is a soap:Envelope")
    if namespace == SOAP12:
        raise SoapFault("VersionMismatch", "this is a SOAP 1.1 service; the request is a SOAP 1.2 "
                                           f"Envelope (use the namespace {SOAP11})")
    if namespace != SOAP11:
        raise SoapFault("VersionMismatch", f"the Envelope's namespace is {namespace or 'none'!r}; "
                                           f"SOAP 1.1 uses {SOAP11}")


def read_message(root: etree._Element, operations: frozenset[str], namespace: str,
                 understood: frozenset[str]) -> Message:
    """The operation element of a parsed Envelope, after the SOAP 1.1 and WS-I rules."""
    header, body = _envelope_children(root)
    if header is not None:
        _check_header(header, understood)
    element = _only_child(body)
    if element.tag == _FAULT:
        raise client_fault("the Body holds a Fault; a request must hold an operation element")
    element_ns, local = _split(element.tag)
    if element_ns != namespace or local not in operations:
        raise client_fault(f"{_name(element.tag)} is not an operation of this service; it offers "
                           f"{', '.join(sorted(operations))} in the namespace {namespace}")
    return Message(local, element, header)


def _envelope_children(root) -> tuple[etree._Element | None, etree._Element]:
    _no_text(root, "the Envelope")
    children = list(root)
    header = children.pop(0) if children and children[0].tag == _HEADER else None
    if not children or children[0].tag != _BODY:
        if children and children[0].tag == _HEADER:
            raise client_fault("the Envelope has two Header elements")
        found = _name(children[0].tag) if children else "nothing"
        raise client_fault(f"the Envelope has no Body (found {found} where soap:Body belongs)")
    if len(children) > 1:
        raise client_fault(f"the Envelope has {_name(children[1].tag)} after its Body; nothing may follow "
                           "the Body (WS-I Basic Profile R1011)")
    return header, children[0]


def _check_header(header, understood: frozenset[str]) -> None:
    _no_text(header, "the Header")
    for entry in header:
        namespace, _ = _split(entry.tag)
        if not namespace:
            raise client_fault(f"the header entry {_name(entry.tag)} is not namespace-qualified")
        flag = entry.get(_MUST_UNDERSTAND)
        if flag not in (None, "0", "1"):
            raise client_fault(f"mustUnderstand on {_name(entry.tag)} is {flag!r}; SOAP 1.1 allows 0 or 1")
        actor = entry.get(_ACTOR)
        if flag == "1" and actor in (None, "", NEXT_ACTOR) and entry.tag not in understood:
            raise SoapFault("MustUnderstand", f"the header {_name(entry.tag)} is marked mustUnderstand, "
                                              "and this service does not process it")


def _only_child(body) -> etree._Element:
    _no_text(body, "the Body")
    children = list(body)
    if not children:
        raise client_fault("the Body is empty: it must hold one operation element")
    if len(children) > 1:
        names = ", ".join(_name(c.tag) for c in children[:3])
        raise client_fault(f"the Body holds {len(children)} elements ({names}); it must hold exactly one "
                           "operation element")
    return children[0]


def _no_text(element, what: str) -> None:
    texts = [element.text] + [child.tail for child in element]
    if any(t and t.strip() for t in texts):
        raise client_fault(f"{what} holds text; only elements may appear in it")


def _split(tag) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", str(tag)
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _name(tag) -> str:
    namespace, local = _split(tag)
    return f"{{{namespace}}}{local}" if namespace else local
