"""The published WSDL: identical to the checked-in contract, and WS-I Basic Profile friendly.

wsdl/mlsfeeds.wsdl is what client teams diff and generate code from; the service must publish
exactly that document, apart from the address it is deployed at. The Basic Profile checks are
the ones a WSDL can be held to without a full WS-I analyzer: document/literal throughout,
element-based parts, no SOAP encoding, no unbounded integers, and the four declared faults on
every operation, so that every typed client maps them to its own exception classes.
"""

from __future__ import annotations

import difflib
import re

import pytest
import requests
from lxml import etree

from tests.contract.conftest import PUBLIC_URL
from tests.support.servers import ROOT
from tests.support.soap import CONSUMER

CHECKED_IN = ROOT / "wsdl" / "mlsfeeds.wsdl"

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"
TNS = "urn:mlsfeeds:soap:1"
NS = {"wsdl": WSDL, "soap": SOAP, "xs": XS}

OPERATIONS = {"SearchListings", "GetListing", "GetListingImages", "GetFeedStatus"}
FAULTS = {"AuthenticationFailed", "Forbidden", "NotFound", "InvalidArgument"}
# xs:integer and its unbounded relatives: .NET reads them as string, JAXB as BigInteger.
UNBOUNDED_INTEGERS = {"integer", "nonNegativeInteger", "positiveInteger", "negativeInteger", "nonPositiveInteger"}

ADDRESS = re.compile(rb'(<[\w.-]+:address\s+location=")[^"]*(")')


@pytest.fixture(scope="module")
def served(deployment) -> bytes:
    reply = requests.get(deployment.wsdl_url, timeout=10)
    assert reply.status_code == 200, reply.text[:500]
    return reply.content


@pytest.fixture(scope="module")
def wsdl(served):
    return etree.fromstring(served)


def without_address(document: bytes) -> bytes:
    replaced, count = ADDRESS.subn(rb"\1ADDRESS\2", document)
    assert count == 1, f"expected exactly one soap:address location, found {count}"
    return replaced


# -- the checked-in contract -------------------------------------------------------------------

def test_served_wsdl_is_the_checked_in_contract_byte_for_byte(served):
    published, checked_in = without_address(served), without_address(CHECKED_IN.read_bytes())
    if published != checked_in:
        diff = "".join(difflib.unified_diff(
            checked_in.decode("utf-8", "replace").splitlines(keepends=True),
            published.decode("utf-8", "replace").splitlines(keepends=True),
            fromfile="wsdl/mlsfeeds.wsdl (checked in)", tofile="/soap?wsdl (served)", n=2,
        ))
        pytest.fail(
            "The WSDL the service publishes differs from the checked-in contract "
            "wsdl/mlsfeeds.wsdl (soap:address aside). If the change is intended, run "
            "`mlsfeeds wsdl --write` and commit wsdl/mlsfeeds.wsdl, so client teams see it in "
            "review; if not, the service changed its contract by accident.\n\n" + diff[:20_000],
            pytrace=False,
        )


def test_served_wsdl_names_the_configured_public_address(wsdl):
    address = wsdl.find("wsdl:service/wsdl:port/soap:address", NS)
    assert address is not None and address.get("location") == PUBLIC_URL + "/soap"


# -- WS-I Basic Profile, the parts a WSDL can be checked for ------------------------------------

def resolve(element, qname: str) -> tuple[str | None, str]:
    """A QName-valued attribute as (namespace, local name), using the element's prefixes."""
    prefix, _, local = qname.rpartition(":")
    return element.nsmap.get(prefix or None), local


def test_every_binding_is_document_literal_over_http(wsdl):
    bindings = wsdl.findall("wsdl:binding", NS)
    assert bindings
    for binding in bindings:
        soap_binding = binding.find("soap:binding", NS)
        assert soap_binding is not None, f"binding {binding.get('name')} is not a SOAP 1.1 binding"
        assert soap_binding.get("style") == "document", f"binding {binding.get('name')} is style={soap_binding.get('style')}"
        assert soap_binding.get("transport") == SOAP_HTTP, f"binding {binding.get('name')} is not over HTTP"
        for operation in binding.findall("wsdl:operation", NS):
            style = operation.find("soap:operation", NS).get("style")
            assert style in (None, "document"), f"{operation.get('name')} is style={style}"


def test_every_soap_body_fault_and_header_is_literal_without_encoding(wsdl):
    uses = wsdl.findall(".//soap:body", NS) + wsdl.findall(".//soap:fault", NS) + wsdl.findall(".//soap:header", NS)
    assert uses
    for element in uses:
        where = f"{etree.QName(element).localname} in {element.getparent().get('name')}"
        assert element.get("use") == "literal", f"{where}: use={element.get('use')}"
        assert element.get("encodingStyle") is None, f"{where} has an encodingStyle"
        # R2716: document-literal soap:body must not carry a namespace attribute.
        assert element.get("namespace") is None, f"{where} has a namespace attribute"


def test_every_message_part_is_one_declared_element(wsdl):
    declared = {(TNS, e.get("name")) for e in wsdl.findall("wsdl:types/xs:schema/xs:element", NS)}
    messages = wsdl.findall("wsdl:message", NS)
    assert messages
    for message in messages:
        parts = message.findall("wsdl:part", NS)
        # R2201/R2210: a document-literal message has (at most) one body part.
        assert len(parts) == 1, f"message {message.get('name')} has {len(parts)} parts"
        part = parts[0]
        assert part.get("type") is None, f"message {message.get('name')} uses type= (must use element=)"
        assert part.get("element"), f"message {message.get('name')} has no element="
        assert resolve(part, part.get("element")) in declared, f"{part.get('element')} is not declared"


def test_no_soap_encoding_or_soapenc_arrays_anywhere(served, wsdl):
    assert SOAP_ENCODING.encode() not in served, f"the WSDL refers to SOAP encoding ({SOAP_ENCODING})"
    assert b"arrayType" not in served, "the WSDL uses soapenc:arrayType"
    for element in wsdl.iter(etree.Element):
        for value in element.attrib.values():
            if ":" in value and not value.startswith(("http:", "https:", "urn:")):
                namespace, local = resolve(element, value)
                assert namespace != SOAP_ENCODING, f"{value} refers to SOAP encoding"
                assert local != "Array" or namespace == TNS, f"{value} is a soapenc-style array"


def test_no_xs_integer_anywhere(wsdl):
    offenders = []
    for element in wsdl.iter(etree.Element):
        for attribute in ("type", "base", "itemType"):
            value = element.get(attribute)
            if value and resolve(element, value) in {(XS, name) for name in UNBOUNDED_INTEGERS}:
                offenders.append(f"{element.get('name') or element.getparent().get('name')}: {attribute}={value}")
        for member in (element.get("memberTypes") or "").split():
            if resolve(element, member) in {(XS, name) for name in UNBOUNDED_INTEGERS}:
                offenders.append(f"{element.get('name')}: memberTypes {member}")
    assert not offenders, "use xs:int or xs:long, not unbounded integers: " + "; ".join(offenders)


def test_every_operation_declares_the_four_faults_in_port_type_and_binding(wsdl):
    port_types = wsdl.findall("wsdl:portType", NS)
    assert len(port_types) == 1
    port_ops = {op.get("name"): op for op in port_types[0].findall("wsdl:operation", NS)}
    binding_ops = {op.get("name"): op for op in wsdl.findall("wsdl:binding/wsdl:operation", NS)}
    assert set(port_ops) == set(binding_ops) == OPERATIONS

    messages = {m.get("name"): m for m in wsdl.findall("wsdl:message", NS)}
    for name in sorted(OPERATIONS):
        declared = {f.get("name"): f.get("message") for f in port_ops[name].findall("wsdl:fault", NS)}
        assert set(declared) == FAULTS, f"{name} declares faults {sorted(declared)}"
        for fault, message in declared.items():
            # The fault's detail is the element named like the fault: typed clients key on it.
            assert resolve(port_ops[name], message) == (TNS, fault)
            part = messages[fault].find("wsdl:part", NS)
            assert resolve(part, part.get("element")) == (TNS, fault)
        bound = binding_ops[name].findall("wsdl:fault", NS)
        assert {f.get("name") for f in bound} == FAULTS, f"{name} binds faults {[f.get('name') for f in bound]}"
        for fault in bound:
            # R2721/R2754: soap:fault has a name, the same as its wsdl:fault.
            soap_fault = fault.find("soap:fault", NS)
            assert soap_fault is not None and soap_fault.get("name") == fault.get("name"), (
                f"{name}: wsdl:fault {fault.get('name')} has no soap:fault of the same name"
            )


def test_operations_have_distinct_wire_signatures(wsdl):
    # R2710: the body's child element alone tells the operations apart.
    messages = {m.get("name"): m for m in wsdl.findall("wsdl:message", NS)}
    inputs = []
    for operation in wsdl.findall("wsdl:portType/wsdl:operation", NS):
        message = resolve(operation, operation.find("wsdl:input", NS).get("message"))[1]
        part = messages[message].find("wsdl:part", NS)
        inputs.append(resolve(part, part.get("element")))
    assert len(inputs) == len(set(inputs)) == len(OPERATIONS)


def test_every_fault_detail_type_carries_a_required_message(wsdl):
    types = {t.get("name"): t for t in wsdl.findall("wsdl:types/xs:schema/xs:complexType", NS)}
    for fault in sorted(FAULTS):
        children = types[fault].findall("xs:sequence/xs:element", NS)
        assert [(c.get("name"), c.get("type"), c.get("minOccurs")) for c in children] == [("Message", "xs:string", None)]


# -- the wire, as the WSDL promises it ---------------------------------------------------------

def test_fault_envelopes_carry_only_the_soap_1_1_fault_children(deployment):
    body = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>'
        f'<GetListing xmlns="{TNS}"><SourceId>b</SourceId><ListingKey>x</ListingKey></GetListing>'
        "</s:Body></s:Envelope>"
    )
    reply = requests.post(deployment.base_url + "/soap", data=body, auth=CONSUMER, timeout=10,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetListing"'})
    fault = etree.fromstring(reply.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, reply.text[:500]
    children = [etree.QName(c).text for c in fault]
    assert set(children) <= {"faultcode", "faultstring", "faultactor", "detail"}, children
    detail = fault.find("detail")
    assert [etree.QName(c).text for c in detail] == [f"{{{TNS}}}Forbidden"]
