"""Errors of the SOAP service, raised by the domain code and turned into faults in faults.py.

    ServiceError
    ├── AuthenticationFailed   no, unknown or wrong credentials; a replayed WS-Security nonce
    ├── Forbidden              a source the client is not entitled to
    ├── NotFound               no such listing (or source)
    └── InvalidArgument        a bad value: MinPrice > MaxPrice, PageSize 0, a forged PageToken...
"""


class ServiceError(Exception):
    """Root of the errors a SOAP caller can be told about."""


class AuthenticationFailed(ServiceError):
    pass


class Forbidden(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class InvalidArgument(ServiceError):
    pass


def shown(value, limit: int = 60) -> str:
    """A value a client sent, quoted for a message: never more than ``limit`` characters of it."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")
