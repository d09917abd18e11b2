"""SOAP 1.1 to the letter, and what odd or hostile requests get, over a socket to gunicorn.

Every case asserts the exact answer: the HTTP status, the fault code and what its string says.
None may be an HTML page or a dropped connection.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import os
import re
import socket
import time
import zlib

import pytest
from lxml import etree

from tests.support.databases import fresh_database
from tests.support.http import NS, SOAP11, basic, envelope, exchange, post, read_reply
from tests.support.servers import soap_service
from tests.support.soap import CONSUMER, OPERATOR, prepare_database, service_env

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
STATUS = "<m:GetFeedStatus/>"
ALICE = {"Authorization": basic(*CONSUMER)}
OPS = {"Authorization": basic(*OPERATOR)}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocol")
    log = tmp / "gunicorn.log"
    with fresh_database("sqlite", tmp) as url:
        prepare_database(url, listings=300)
        env = {**service_env(url, "https://feeds.example.com"), "MLSFEEDS_LOG_LEVEL": "INFO"}
        with soap_service(env, log_path=log) as base:
            yield int(base.rsplit(":", 1)[1]), log


@pytest.fixture(scope="module")
def port(service):
    return service[0]


def assert_fault(reply, code: str, *phrases: str, status: int = 500):
    assert reply.status == status, reply.body[:300]
    assert reply.headers["content-type"].startswith("text/xml")
    fault_code, message = reply.fault
    assert fault_code == code, message
    for phrase in phrases:
        assert phrase in message, message
    assert not re.search(r"(^|[\s(=:])b['\"]|SCHEMAV|<string>|Traceback|\.py\b", message), message
    return message


# -- the envelope ----------------------------------------------------------------------------

def test_a_well_formed_call_answers(port):
    reply = post(port, envelope(STATUS), ALICE)
    assert reply.status == 200
    assert etree.fromstring(reply.body).find(f".//{{{NS}}}GetFeedStatusResponse") is not None


def test_a_soap_1_2_envelope_is_a_version_mismatch(port):
    reply = post(port, envelope(STATUS, namespace=SOAP12), {**ALICE, "Content-Type": "application/soap+xml; charset=utf-8"})
    assert_fault(reply, "VersionMismatch", "SOAP 1.1")
    reply = post(port, envelope(STATUS, namespace=SOAP12), ALICE)  # labelled text/xml
    assert_fault(reply, "VersionMismatch", "SOAP 1.2 Envelope")


def test_an_envelope_in_another_namespace_is_a_version_mismatch(port):
    assert_fault(post(port, envelope(STATUS, namespace="urn:not-soap"), ALICE), "VersionMismatch", "urn:not-soap")


def test_an_unprocessed_header_that_must_be_understood_is_refused(port):
    header = '<x:Trace xmlns:x="urn:example" s:mustUnderstand="1">on</x:Trace>'
    assert_fault(post(port, envelope(STATUS, header), ALICE), "MustUnderstand", "{urn:example}Trace")


def test_headers_that_may_be_ignored_are(port):
    optional = '<x:Trace xmlns:x="urn:example" s:mustUnderstand="0">on</x:Trace>'
    elsewhere = '<x:Trace xmlns:x="urn:example" s:mustUnderstand="1" s:actor="urn:some-proxy">on</x:Trace>'
    assert post(port, envelope(STATUS, optional + elsewhere), ALICE).status == 200


def test_a_bad_must_understand_value_is_a_client_fault(port):
    header = '<x:Trace xmlns:x="urn:example" s:mustUnderstand="true">on</x:Trace>'
    assert_fault(post(port, envelope(STATUS, header), ALICE), "Client", "mustUnderstand", "0 or 1")


def test_the_ws_security_header_is_understood(port):
    header = (f'<wsse:Security xmlns:wsse="{WSSE}" s:mustUnderstand="1"><wsse:UsernameToken>'
              f"<wsse:Username>{CONSUMER[0]}</wsse:Username><wsse:Password>{CONSUMER[1]}</wsse:Password>"
              "</wsse:UsernameToken></wsse:Security>")
    assert post(port, envelope(STATUS, header)).status == 200


def test_two_operations_in_one_body_are_refused(port):
    body = STATUS + "<m:GetListing><m:SourceId>a</m:SourceId><m:ListingKey>x</m:ListingKey></m:GetListing>"
    assert_fault(post(port, envelope(body), ALICE), "Client", "holds 2 elements", "exactly one")


@pytest.mark.parametrize("document,phrase", [
    (envelope(""), "the Body is empty"),
    (b'<s:Envelope xmlns:s="' + SOAP11.encode() + b'"/>', "has no Body"),
    (b'<s:Envelope xmlns:s="' + SOAP11.encode() + b'"><s:Header/></s:Envelope>', "has no Body"),
    (envelope("<s:Fault><faultcode>s:Server</faultcode><faultstring>x</faultstring></s:Fault>"), "holds a Fault"),
    (envelope("<m:DropTables/>"), "is not an operation of this service"),
    (envelope("<GetFeedStatus/>"), "is not an operation"),
    (envelope("text" + STATUS), "holds text"),
    (envelope(STATUS).replace(b"</s:Body>", b"</s:Body><m:After/>"), "after its Body"),
    (b"<notsoap/>", "a SOAP request is a soap:Envelope"),
])
def test_envelopes_that_are_not_requests_are_client_faults(port, document, phrase):
    assert_fault(post(port, document, ALICE), "Client", phrase)


def test_an_empty_post_is_a_client_fault_with_a_response(port):
    assert_fault(post(port, b"", ALICE), "Client", "has no body")
    assert_fault(post(port, b"", {}), "Client", "has no body")  # before asking who it is
    no_length = f"POST /soap HTTP/1.1\r\nHost: x\r\nAuthorization: {ALICE['Authorization']}\r\nConnection: close\r\n\r\n"
    assert_fault(exchange(port, no_length.encode()), "Client", "has no body")


@pytest.mark.parametrize("body,content_type,phrase", [
    (envelope(STATUS).decode().encode("utf-16"), "text/xml; charset=utf-8", "not valid utf-8"),
    (envelope(STATUS).replace(b"Feed", b"F\xe9ed\xff"), "text/xml; charset=utf-8", "byte 0xe9"),
    (envelope(STATUS), "text/xml; charset=klingon", "charset 'klingon' is not supported"),
    (envelope(STATUS).replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'), "text/xml; charset=utf-8",
     "says encoding 'ISO-8859-1'"),
    (envelope(STATUS), "application/json", "Content-Type is 'application/json'"),
    (envelope(STATUS).replace(b"<m:GetFeedStatus/>", b"<m:GetFeedStatus>&boom;</m:GetFeedStatus>"),
     "text/xml; charset=utf-8", "not well-formed XML"),
    (envelope(STATUS)[:-20], "text/xml; charset=utf-8", "not well-formed XML"),
])
def test_bytes_that_are_not_a_sound_document_are_client_faults(port, body, content_type, phrase):
    assert_fault(post(port, body, {**ALICE, "Content-Type": content_type}), "Client", phrase)


@pytest.mark.parametrize("coding,pack", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # a raw deflate stream, as some clients send
    ("identity", lambda data: data),
])
def test_a_compressed_request_body_is_inflated(port, coding, pack):
    # PHP's SoapClient with SOAP_COMPRESSION_GZIP sends its requests gzipped.
    reply = post(port, pack(envelope(STATUS)), {**ALICE, "Content-Encoding": coding})
    assert reply.status == 200
    assert etree.fromstring(reply.body).find(f".//{{{NS}}}GetFeedStatusResponse") is not None


@pytest.mark.parametrize("coding,body,code,status,phrase", [
    ("br", envelope(STATUS), "Client", 415, "Content-Encoding is 'br'"),
    ("gzip", envelope(STATUS), "Client", 500, "not gzip data"),
    ("gzip", gzip.compress(envelope(STATUS))[:-12], "Client", 500, "cut short"),
    ("gzip", gzip.compress(b" " * 20_000_000), "Client", 413, "larger than 1048576 bytes once inflated"),
])
def test_a_body_in_a_coding_it_is_not_is_a_client_fault(port, coding, body, code, status, phrase):
    assert_fault(post(port, body, {**ALICE, "Content-Encoding": coding}), code, phrase, status=status)


def test_utf_16_labelled_utf_16_is_read(port):
    body = envelope(STATUS).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert post(port, body, {**ALICE, "Content-Type": "text/xml; charset=utf-16"}).status == 200


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY a "' + b"A" * 10_000 + b'">'
                  + b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                  + envelope("<m:GetFeedStatus><m:SourceId>" + "&b;" * 90 + "</m:SourceId></m:GetFeedStatus>")
                  .split(b"?>", 1)[1])


def test_a_doctype_is_refused_before_any_entity_is_expanded(port):
    started = time.monotonic()
    reply = post(port, BILLION_LAUGHS, OPS)
    assert_fault(reply, "Client", "must not contain a DOCTYPE")
    assert len(reply.body) < 2000 and b"AAAA" not in reply.body
    assert time.monotonic() - started < 2


def test_a_doctype_in_a_multipart_request_is_refused_too(port):
    boundary = "uuid:0ae5"
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n"
            f"Content-ID: <root>\r\n\r\n").encode() + BILLION_LAUGHS + f"\r\n--{boundary}--\r\n".encode()
    content_type = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                    'start="<root>"; start-info="text/xml"')
    reply = post(port, body, {**OPS, "Content-Type": content_type})
    assert_fault(reply, "Client", "must not contain a DOCTYPE")
    assert b"AAAA" not in reply.body


def test_a_multipart_request_without_tricks_is_answered(port):
    boundary = "MIMEBoundary_1"
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n"
            f"Content-ID: <root.message@cxf.apache.org>\r\n\r\n").encode() + envelope(STATUS) \
        + f"\r\n--{boundary}--\r\n".encode()
    content_type = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                    'start="<root.message@cxf.apache.org>"; start-info="text/xml"')
    assert post(port, body, {**ALICE, "Content-Type": content_type}).status == 200


# -- arguments -------------------------------------------------------------------------------

def search(port, inner: str, headers=ALICE):
    return post(port, envelope(f"<m:SearchListings>{inner}</m:SearchListings>"), headers)


def test_nil_on_an_optional_element_means_absent(port):
    inner = ('<m:City xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>'
             '<m:PageToken xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>')
    nil = search(port, inner)
    plain = search(port, "")
    assert nil.status == plain.status == 200
    assert etree.fromstring(nil.body).findtext(f".//{{{NS}}}TotalCount") == \
        etree.fromstring(plain.body).findtext(f".//{{{NS}}}TotalCount")


def test_modified_since_without_a_zone_is_utc(port):
    naive = search(port, "<m:ModifiedSince>2026-05-01T00:00:00</m:ModifiedSince>")
    utc = search(port, "<m:ModifiedSince>2026-05-01T00:00:00Z</m:ModifiedSince>")
    assert naive.status == 200
    assert etree.fromstring(naive.body).findtext(f".//{{{NS}}}TotalCount") == \
        etree.fromstring(utc.body).findtext(f".//{{{NS}}}TotalCount")


@pytest.mark.parametrize("inner,phrase", [
    ("<m:SortBy>Price</m:SortBy>", "SortBy: 'Price' is not one of ListPrice, ModificationTimestamp, ListingKey"),
    ("<m:PageSize>lots</m:PageSize>", "PageSize: 'lots' is not a whole number"),
    ("<m:PageSize>0</m:PageSize>", "PageSize must be between 1 and 200"),
    ("<m:MinPrice>cheap</m:MinPrice>", "MinPrice: 'cheap' is not a decimal number"),
    ("<m:Bedrooms>3</m:Bedrooms>", "element Bedrooms is not part of SearchListings"),
    ("<m:StandardStatus>Sold</m:StandardStatus>", "unknown StandardStatus 'Sold'"),
    ("<m:North>1</m:North>", "a bounding box needs all of North, South, East and West"),
])
def test_bad_arguments_are_invalid_argument_in_plain_words(port, inner, phrase):
    assert_fault(search(port, inner), "Client.InvalidArgument", phrase)


def test_only_the_declared_and_soap_fault_codes_exist(port):
    codes = set()
    for document in (envelope(""), envelope(STATUS, namespace=SOAP12), b"",
                     envelope("<m:SearchListings><m:PageSize>x</m:PageSize></m:SearchListings>"),
                     envelope("<m:GetListing><m:SourceId>b</m:SourceId><m:ListingKey>k</m:ListingKey></m:GetListing>"),
                     envelope("<m:GetListing><m:SourceId>a</m:SourceId><m:ListingKey>k</m:ListingKey></m:GetListing>")):
        codes.add(post(port, document, ALICE).fault[0])
    codes.add(post(port, envelope(STATUS), {"Authorization": basic("nobody", "x")}).fault[0])
    assert codes == {"Client", "VersionMismatch", "Client.InvalidArgument", "Client.Forbidden", "Client.NotFound",
                     "Client.AuthenticationFailed"}


# -- sources a client may not know about ---------------------------------------------------

@pytest.mark.parametrize("body", [
    "<m:SearchListings><m:SourceId>{}</m:SourceId></m:SearchListings>",
    "<m:GetFeedStatus><m:SourceId>{}</m:SourceId></m:GetFeedStatus>",
    "<m:GetListing><m:SourceId>{}</m:SourceId><m:ListingKey>1</m:ListingKey></m:GetListing>",
    "<m:GetListingImages><m:SourceId>{}</m:SourceId><m:ListingKey>1</m:ListingKey></m:GetListingImages>",
])
def test_a_consumer_cannot_tell_an_unknown_source_from_a_forbidden_one(port, body):
    forbidden = assert_fault(post(port, envelope(body.format("b")), ALICE), "Client.Forbidden")
    unknown = assert_fault(post(port, envelope(body.format("zz")), ALICE), "Client.Forbidden")
    assert forbidden.replace("'b'", "'zz'") == unknown


@pytest.mark.parametrize("body", [
    "<m:SearchListings><m:SourceId>zz</m:SourceId></m:SearchListings>",
    "<m:GetFeedStatus><m:SourceId>zz</m:SourceId></m:GetFeedStatus>",
])
def test_an_operator_is_told_a_source_does_not_exist(port, body):
    assert_fault(post(port, envelope(body), OPS), "Client.NotFound", "no source 'zz'")


# -- who is calling -------------------------------------------------------------------------

def test_no_credentials_get_a_challenge_and_the_declared_fault(port):
    reply = post(port, envelope(STATUS))
    assert_fault(reply, "Client.AuthenticationFailed", "no credentials", status=401)
    assert reply.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("authorization,phrase", [
    ("Bearer abc", "scheme 'Bearer' is not supported"),
    ("Basic !!!", "malformed HTTP Basic credentials"),
    (basic("alice", "wrong"), "invalid username or password"),
])
def test_bad_http_credentials_are_refused_before_the_body_is_read(port, authorization, phrase):
    # The body is announced but never sent: the answer comes from the headers alone.
    head = (f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 1000000\r\n"
            f"Authorization: {authorization}\r\n\r\n")
    assert_fault(exchange(port, head.encode(), timeout=5), "Client.AuthenticationFailed", phrase)


def test_expect_100_continue_gets_continue_then_the_answer(port):
    body = envelope(STATUS)
    head = (f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: {ALICE['Authorization']}\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        assert read_reply(sock).status == 100
        sock.sendall(body)
        assert read_reply(sock).status == 200


def digest_header(user: str, password: str, created: str | None, nonce: bytes | None) -> str:
    created_el = f"<wsu:Created>{created}</wsu:Created>" if created else ""
    nonce_el = f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>" if nonce else ""
    digest = base64.b64encode(hashlib.sha1((nonce or b"") + (created or "").encode() + password.encode()).digest())
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
            f"<wsse:Username>{user}</wsse:Username><wsse:Password Type=\"{DIGEST}\">{digest.decode()}</wsse:Password>"
            f"{nonce_el}{created_el}</wsse:UsernameToken></wsse:Security>")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("created,nonce", [("2020-01-01T00:00:00Z", b"n"), (None, b"n"), ("now", None)])
def test_a_digest_fault_says_the_same_for_known_and_unknown_users(port, created, nonce):
    created = now() if created == "now" else created
    known = post(port, envelope(STATUS, digest_header("alice", "wrong", created, nonce and os.urandom(8))))
    unknown = post(port, envelope(STATUS, digest_header("mallory", "wrong", created, nonce and os.urandom(8))))
    assert known.fault == unknown.fault and known.fault[0] == "Client.AuthenticationFailed"


def test_a_wrong_password_and_an_unknown_user_look_the_same(port):
    def timed(user):
        started = time.perf_counter()
        reply = post(port, envelope(STATUS), {"Authorization": basic(user, os.urandom(6).hex())})
        return time.perf_counter() - started, reply.fault

    samples = {user: [timed(user) for _ in range(15)] for user in ("alice", "mallory")}
    faults = {fault for runs in samples.values() for _, fault in runs}
    assert faults == {("Client.AuthenticationFailed", "invalid username or password")}
    median = {user: sorted(t for t, _ in runs)[7] for user, runs in samples.items()}
    # Neither costs a slow hash; both are held back the same quarter second (a client looping on
    # bad credentials is slowed down), and answer within a few milliseconds of each other.
    assert abs(median["alice"] - median["mallory"]) < 0.01, median
    assert all(0.25 <= m < 0.3 for m in median.values()), median


# -- logs ------------------------------------------------------------------------------------

def test_client_faults_are_one_warning_line_with_values_cut(service):
    port, log = service
    mark = log.stat().st_size
    huge = "K" * 100_000
    post(port, envelope(f"<m:GetListing><m:SourceId>a</m:SourceId><m:ListingKey>{huge}</m:ListingKey></m:GetListing>"),
         ALICE)
    post(port, envelope("<m:SearchListings><m:PageSize>x</m:PageSize></m:SearchListings>"), ALICE)
    time.sleep(0.3)
    new = log.read_bytes()[mark:].decode()
    faults = [line for line in new.splitlines() if "mlsfeeds.soap" in line]
    assert len(faults) == 2, new
    assert all("WARNING" in line and len(line) < 800 for line in faults), faults
    assert "Client.NotFound client=alice" in faults[0] and "Client.InvalidArgument" in faults[1]
    assert "Traceback" not in new and huge not in new


def test_access_lines_carry_a_timestamp(service):
    port, log = service
    post(port, envelope(STATUS), ALICE)
    time.sleep(0.3)
    access = [line for line in log.read_text().splitlines() if '"POST /soap HTTP/1.1" 200' in line]
    assert access and re.match(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] ", access[-1]), access[-1:]


# -- HTTP as clients really speak it --------------------------------------------------------

def test_a_chunked_request_body_is_read(port):
    body = envelope(STATUS)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]) for i in range(0, len(body), 100))
    head = (f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Authorization: {ALICE['Authorization']}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + chunks + b"0\r\n\r\n")
        assert read_reply(sock).status == 200


def test_one_keep_alive_connection_carries_pipelined_requests(port):
    body = envelope(STATUS)
    request = (f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
               f"Content-Length: {len(body)}\r\nAuthorization: {ALICE['Authorization']}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request * 3)  # three at once, before reading any answer
        replies = [read_reply(sock) for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 200]
        assert all(r.headers["connection"] == "keep-alive" for r in replies)
        sock.sendall(request)  # and the connection is still good afterwards
        assert read_reply(sock).status == 200


def test_http_1_0_gets_its_answer_and_the_connection_closes(port):
    body = envelope(STATUS)
    request = (f"POST /soap HTTP/1.0\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
               f"Authorization: {ALICE['Authorization']}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = read_reply(sock)
        assert reply.status == 200 and reply.headers["connection"] == "close"
        assert sock.recv(10) == b""


@pytest.mark.parametrize("request_bytes,status", [
    (b"POST /soap HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
    (b"POST /soap HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
])
def test_requests_the_worker_refuses_are_answered_not_dropped(port, request_bytes, status):
    reply = exchange(port, request_bytes, timeout=10)
    assert reply.status == status
    if b"/soap" in request_bytes[:12]:
        assert reply.fault[0] == "Client"


def test_a_refusal_is_held_a_quarter_second_and_logged_once(service):
    # A client looping on a refused request (a body over the limit, again and again) would
    # otherwise keep a worker busy refusing; it waits as long as a failed authentication.
    port, log = service
    mark = log.stat().st_size
    started = time.monotonic()
    reply = exchange(port, b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + b"<" * 70_000,
                     timeout=10)
    elapsed = time.monotonic() - started
    assert reply.status == 413 and reply.fault == ("Client", "the request body is larger than 1048576 bytes")
    assert 0.25 <= elapsed < 1.5, elapsed
    time.sleep(0.3)
    lines = [line for line in log.read_bytes()[mark:].decode().splitlines() if "larger than" in line]
    assert len(lines) == 1 and "WARNING mlsfeeds.soap" in lines[0], lines
    for request, status, said in [  # refusals elsewhere than /soap (plain text): one line each too
        (b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413,
         "413 Content Too Large from 127.0.0.1"),
        (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "the request line is longer than 8190 bytes"),
    ]:
        mark = log.stat().st_size
        assert exchange(port, request, timeout=10).status == status
        time.sleep(0.3)
        lines = [line for line in log.read_bytes()[mark:].decode().splitlines() if "WARNING" in line]
        assert len(lines) == 1 and said in lines[0], log.read_bytes()[mark:].decode()


def test_wsdl_and_health_answer_get_and_other_methods_are_told_what_to_do(port):
    assert exchange(port, b"GET /soap?wsdl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 200
    assert exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 200
    assert exchange(port, b"PUT /soap HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status == 405
