"""The published contract: spyne's WSDL, made byte-stable, addressed from configuration."""

from __future__ import annotations

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"


def published_wsdl(address: str) -> bytes:
    """The WSDL with ``soap:address`` set to ``address``; no database needed."""
    from spyne.server.wsgi import WsgiApplication

    from service.app import MlsfeedsApplication

    return render_wsdl(WsgiApplication(MlsfeedsApplication(None)), address)


def render_wsdl(soap, address: str) -> bytes:
    """spyne's WSDL, made byte-stable: schema items sorted, unused namespaces dropped.

    spyne emits schema types in dict order, which changes with PYTHONHASHSEED; a contract
    that clients diff and code-generate from must not.
    """
    soap.doc.wsdl11.build_interface_document(address)
    document = etree.fromstring(soap.doc.wsdl11.get_interface_document())
    for schema in document.iter(f"{{{XS}}}schema"):
        _sort_schema(schema)
    etree.cleanup_namespaces(document, keep_ns_prefixes=["xs", "tns", "wsdl", "wsdlsoap11"])
    etree.indent(document, space="  ")
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8") + b"\n"


def _sort_schema(schema) -> None:
    rank = {f"{{{XS}}}import": 0, f"{{{XS}}}simpleType": 1, f"{{{XS}}}complexType": 2, f"{{{XS}}}element": 3}
    items = sorted(schema, key=lambda e: (rank.get(e.tag, 9), e.get("name") or e.get("namespace") or ""))
    schema[:] = items
