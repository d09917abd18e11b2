import json

import pytest

from pipeline.connectors.rets.replies import (
    SessionExpired,
    check,
    error_for,
    http_error,
    parse_key_values,
    parse_reply,
)
from pipeline.connectors.rets.session import capability_urls, ua_authorization
from pipeline.errors import (
    FeedFormatError,
    FeedNotFound,
    PermanentError,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
)
from tests.support.rets_fixtures import fixture


def reply_of(relative):
    return parse_reply(fixture(relative).read_bytes(), relative)


def test_login_reply_gives_absolute_capability_urls():
    reply = reply_of("refindly/Login.xml")
    urls = capability_urls(reply, "http://server.rets.com/rets/Login.ashx")
    assert reply.code == 0 and reply.get("metadataversion") == "1.11.75995"
    assert urls["Search"] == "http://server.rets.com/rets/Search.ashx"
    assert urls["GetObject"] == "http://server.rets.com/rets/GetObject.ashx"
    assert "Action" not in urls


def test_relative_capability_urls_are_resolved_against_the_login_url():
    urls = capability_urls(reply_of("refindly/Login_relative_url.xml"), "https://mls.example:6103/rets/Login.ashx?x=1")
    assert urls["Search"] == "https://mls.example:6103/rets/Search.ashx"
    assert urls["Logout"] == "https://mls.example:6103/rets/Logout.ashx"
    no_host = capability_urls(reply_of("refindly/Errors/Login_no_host.xml"), "http://h:80/rets/Login.ashx")
    assert no_host["GetMetadata"] == "http://h:80/rets/GetMetadata.ashx"


def test_action_url_and_spaced_key_value_lines_are_read():
    assert capability_urls(reply_of("refindly/Login_with_Action.xml"), "http://x/")["Action"] == (
        "http://server.rets.com/rets/Action.ashx")
    old = reply_of("librets/login-valid15.xml")
    urls = capability_urls(old, "http://example.com:6103/rets/login")
    assert urls["Search"] == "http://example.com:6103/rets/search"
    assert old.get("Broker") == "" and old.get("Balance") == "3,197.35"


def test_key_values_tolerate_spaces_blank_lines_and_lines_without_equals():
    assert parse_key_values("\n A = 1 \nnoise\nB=x=y\n\n") == {"A": "1", "B": "x=y"}


def test_failed_login_is_an_auth_error():
    with pytest.raises(SourceAuthError, match="20036"):
        check(reply_of("librets/login-invalid.xml"), "login")


def test_logout_reply_is_read():
    reply = reply_of("librets/logout-valid15.xml")
    assert reply.code == 0 and reply.get("SignOffMessage") == "Goodbye"


def test_an_html_page_where_xml_was_expected_is_a_format_error():
    with pytest.raises(FeedFormatError, match="HTML page"):
        reply_of("refindly/Logout.html")


@pytest.mark.parametrize("body", [b"", b"   \n", b"not xml at all", b"<OTHER/>", b'<RETS ReplyText="x"/>'])
def test_what_is_not_a_rets_envelope_is_a_format_error(body):
    with pytest.raises(FeedFormatError):
        parse_reply(body)


def test_a_sloppy_small_reply_is_still_read():
    assert parse_reply(b'<RETS ReplyCode="20203" ReplyText="Fields & Co"/>').code == 20203


def test_rets_status_inside_the_body_is_kept():
    reply = parse_reply(b'<RETS ReplyCode="0" ReplyText="OK"><RETS-STATUS ReplyCode="20208" ReplyText="Max"/></RETS>')
    assert reply.ok and reply.status.code == 20208


def test_error_fixtures_map_to_their_classes():
    with pytest.raises(SourceConfigError, match="20514"):
        check(reply_of("refindly/Errors/20514.xml"), "metadata")
    with pytest.raises(SourceConfigError, match="20205"):
        check(reply_of("librets/search-response-error.xml"), "search")


@pytest.mark.parametrize("code", [20201, 20403, 20503, 0, 20208])
def test_empty_results_and_successes_are_not_errors(code):
    reply = parse_reply(f'<RETS ReplyCode="{code}" ReplyText="x"/>'.encode())
    assert check(reply, "here") is reply


@pytest.mark.parametrize("code, error", [
    (20209, SourceUnavailable), (20210, SourceUnavailable), (20412, SourceUnavailable), (20050, SourceUnavailable),
    (20036, SourceAuthError), (20037, SourceAuthError), (20207, SourceAuthError),
    (20203, SourceConfigError), (20204, SourceConfigError), (20205, SourceConfigError), (20206, SourceConfigError),
    (20200, SourceConfigError), (20202, SourceConfigError),
    (20400, FeedNotFound), (20401, FeedNotFound), (20500, FeedNotFound),
    (29999, PermanentError),
])
def test_reply_codes_map_to_transient_or_permanent_errors(code, error):
    mapped = error_for(code, "text", "where")
    assert type(mapped) is error and mapped.reply_code == code
    assert mapped.transient == (error is SourceUnavailable)
    assert str(code) in str(mapped) and "where" in str(mapped)


def test_not_logged_in_is_a_session_expiry_that_is_transient_if_it_persists():
    expired = error_for(20701, "Not logged in", "search")
    assert isinstance(expired, SessionExpired) and expired.transient
    assert isinstance(expired.then, SourceUnavailable)


def test_every_documented_reply_code_maps_to_a_pipeline_error():
    for entry in json.loads(fixture("refindly/rets_reply_codes.json").read_text()):
        code = entry["Code"]
        if code in (0, 20201, 20208, 20403, 20503):
            continue
        assert isinstance(error_for(code, entry["Message"], "w"), (SourceUnavailable, PermanentError))


@pytest.mark.parametrize("status, error", [
    (500, SourceUnavailable), (502, SourceUnavailable), (503, SourceUnavailable), (429, SourceUnavailable),
    (408, SourceUnavailable), (401, SourceAuthError), (403, SourceAuthError), (404, FeedNotFound),
    (400, SourceConfigError),
])
def test_http_statuses_map_to_errors(status, error):
    assert type(http_error(status, "reason", "where")) is error


def test_http_401_once_logged_in_means_one_new_login_then_an_auth_error():
    expired = http_error(401, "Unauthorized", "search", logged_in=True)
    assert isinstance(expired, SessionExpired)
    assert isinstance(expired.then, SourceAuthError)


def test_ua_authorization_matches_a_hand_computed_vector():
    # md5("mlsfeeds/0.1:ua-secret") = ff303cf1932a471c5120bf26af7f038a, then
    # md5("ff30...038a::4f1c2a7e9b:RETS/1.7.2") computed with md5sum.
    assert ua_authorization("mlsfeeds/0.1", "ua-secret", "", "4f1c2a7e9b", "RETS/1.7.2") == (
        "Digest 6ac75f7352fec2acd0a952f3468e1cba")
    assert ua_authorization("mlsfeeds/0.1", "ua-secret", "REQ-7", "4f1c2a7e9b", "RETS/1.7.2") == (
        "Digest 2504db4a627a75d30a260047701eed50")
    assert ua_authorization("mlsfeeds/0.1", "ua-secret", "", "", "RETS/1.7.2") == (
        "Digest b1a4ac9d1e64c69de20f1447f9a983dc")


def test_repeated_login_lines_are_all_kept_in_order():
    body = (b'<RETS ReplyCode="0" ReplyText="ok"><RETS-RESPONSE>\nInfo=USERID;Character;joe\n'
            b"Info=USERLEVEL;Int;3\nSearch=/search\nInfo=MEMBERNAME;Character;Joe Schmoe\n</RETS-RESPONSE></RETS>")
    reply = parse_reply(body)
    assert reply.get_all("info") == ["USERID;Character;joe", "USERLEVEL;Int;3", "MEMBERNAME;Character;Joe Schmoe"]
    assert reply.get("Search") == "/search" and reply.get_all("Nope") == []
