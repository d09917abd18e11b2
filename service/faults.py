"""The declared SOAP faults, and the one place that maps errors to them.

Each declared fault is ``soap:Client.<Name>`` with a ``<detail><tns:Name/></detail>``, so typed
clients (JAX-WS, .NET, zeep) can tell them apart. Anything unexpected becomes spyne's bare
``Server`` fault with the string "Internal Error": no internals reach the caller.
"""

from __future__ import annotations

from lxml import etree
from spyne import Fault, Unicode

from service import errors
from service.types import NS


class _Raised(Fault):
    """What is raised at run time: the standard fault children and our detail, nothing else.

    The declared classes below carry a ``Message`` field so the WSDL describes the detail
    element; spyne would also write that field straight into ``soap:Fault`` (which WS-I
    forbids), so the fault actually sent is this field-less twin with the same code and detail.
    """

    __namespace__ = NS


def _raise_as(name: str):
    def __new__(cls, faultstring: str = ""):
        return _Raised(faultcode=f"Client.{name}", faultstring=faultstring, detail=detail_element(name, faultstring))

    return __new__


def detail_element(name: str, message: str):
    """``<tns:Name><tns:Message>...</tns:Message></tns:Name>``: the element the WSDL declares."""
    detail = etree.Element(f"{{{NS}}}{name}", nsmap={"tns": NS})
    etree.SubElement(detail, f"{{{NS}}}Message").text = message
    return detail


def _declared(name: str, doc: str) -> type[Fault]:
    # Built directly on Fault (not on a shared base) so the WSDL has four flat fault types.
    return type(name, (Fault,), {
        "__doc__": doc,
        "__namespace__": NS,
        "__module__": __name__,
        "_type_info": [("Message", Unicode(min_occurs=1, nillable=False))],
        "__new__": _raise_as(name),
    })


AuthenticationFailed = _declared(
    "AuthenticationFailed", "The credentials are missing, unknown or wrong, or a WS-Security nonce was replayed."
)
Forbidden = _declared("Forbidden", "The caller is not entitled to a source it asked for.")
NotFound = _declared("NotFound", "No such listing, or no such source.")
InvalidArgument = _declared("InvalidArgument", "A request value is out of range, malformed or inconsistent.")

DECLARED = [AuthenticationFailed, Forbidden, NotFound, InvalidArgument]

_BY_ERROR = {
    errors.AuthenticationFailed: AuthenticationFailed,
    errors.Forbidden: Forbidden,
    errors.NotFound: NotFound,
    errors.InvalidArgument: InvalidArgument,
}

# spyne's own complaints about a request's values: they are the caller's bad arguments.
_SPYNE_VALIDATION = ("Client.ValidationError", "Client.SchemaValidationError")


def to_fault(exc: errors.ServiceError) -> Fault:
    return _BY_ERROR[type(exc)](str(exc))


def fault_envelope(name: str, message: str) -> bytes:
    """A whole SOAP 1.1 envelope carrying one declared fault (for replies made outside spyne)."""
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"soap11env": soap})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{soap}}}Body"), f"{{{soap}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap11env:Client.{name}"
    etree.SubElement(fault, "faultstring").text = message
    etree.SubElement(fault, "detail").append(detail_element(name, message))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def on_exception(ctx) -> None:
    """spyne ``method_exception_object`` handler: report validation as InvalidArgument."""
    error = ctx.out_error
    if isinstance(error, Fault) and error.faultcode in _SPYNE_VALIDATION:
        ctx.out_error = InvalidArgument(_clean(error.faultstring))


def _clean(message) -> str:
    text = str(message or "invalid request")
    return text.replace("{" + NS + "}", "")
