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


def _init(self, faultstring: str = "") -> None:
    name = type(self).__name__
    # <detail><tns:Name><tns:Message>...</tns:Message></tns:Name></detail>: the element the
    # WSDL declares for this fault, which typed clients map to their exception classes.
    detail = etree.Element(f"{{{NS}}}{name}", nsmap={"tns": NS})
    etree.SubElement(detail, f"{{{NS}}}Message").text = faultstring
    Fault.__init__(self, faultcode=f"Client.{name}", faultstring=faultstring, detail=detail)


def _declared(name: str, doc: str) -> type[Fault]:
    # Built directly on Fault (not on a shared base) so the WSDL has four flat fault types.
    return type(name, (Fault,), {
        "__doc__": doc,
        "__namespace__": NS,
        "__module__": __name__,
        "_type_info": [("Message", Unicode(min_occurs=1, nillable=False))],
        "__init__": _init,
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


def on_exception(ctx) -> None:
    """spyne ``method_exception_object`` handler: report validation as InvalidArgument."""
    error = ctx.out_error
    if isinstance(error, Fault) and error.faultcode in _SPYNE_VALIDATION:
        ctx.out_error = InvalidArgument(_clean(error.faultstring))


def _clean(message) -> str:
    text = str(message or "invalid request")
    return text.replace("{" + NS + "}", "")
