"""Faults reach the caller as declared; anything unexpected reveals nothing internal."""

import io

from lxml import etree
from sqlalchemy import create_engine

from core.settings import Settings
from service.app import build_dispatcher

ENVELOPE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<GetFeedStatus xmlns="urn:mlsfeeds:soap:1"/></s:Body></s:Envelope>'
)


def call(app, body=ENVELOPE, path="/soap", method="POST", query="", headers=None):
    headers = {"HTTP_AUTHORIZATION": "Basic YTpi"} if headers is None else headers
    captured = {}

    def start_response(status, headers):
        captured["status"] = status

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "SERVER_NAME": "evil.example.net", "SERVER_PORT": "80",
        "HTTP_HOST": "evil.example.net", "wsgi.url_scheme": "http", "HTTP_SOAPACTION": '"GetFeedStatus"',
        **headers,
    }
    body = b"".join(app(environ, start_response))
    return captured["status"], body


def _refuse_to_connect():
    raise RuntimeError("password=hunter2 at db-7.internal")


broken_sessions = create_engine("sqlite://", creator=_refuse_to_connect)  # every query fails


def test_an_unexpected_error_is_a_bare_server_fault_with_nothing_internal():
    settings = Settings(secret_key="s", public_url_setting="https://feeds.example.com")
    app = build_dispatcher(settings, broken_sessions)
    status, body = call(app)
    assert status.startswith("500")
    fault = etree.fromstring(body).find(".//faultcode")
    assert fault.text.endswith(":Server")
    assert b"hunter2" not in body and b"db-7" not in body and b"RuntimeError" not in body


def test_the_wsdl_is_addressed_from_configuration():
    settings = Settings(secret_key="s", public_url_setting="https://feeds.example.com")
    app = build_dispatcher(settings, broken_sessions)
    status, body = call(app, b"", method="GET", query="wsdl")
    assert status.startswith("200")
    assert b'location="https://feeds.example.com/soap"' in body and b"evil" not in body


def test_unknown_paths_are_404():
    settings = Settings(secret_key="s")
    app = build_dispatcher(settings, broken_sessions)
    assert call(app, b"", path="/admin", method="GET")[0].startswith("404")


def test_a_call_without_any_credentials_is_challenged_with_the_declared_fault():
    settings = Settings(secret_key="s")
    app = build_dispatcher(settings, broken_sessions)
    status, body = call(app, headers={})
    assert status.startswith("401")
    assert etree.fromstring(body).find(".//faultcode").text == "soap11env:Client.AuthenticationFailed"
