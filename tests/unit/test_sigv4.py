"""SigV4 signing (core.s3fast) against AWS's published examples and botocore's signer.

The vectors are the worked examples of the S3 documentation ("Signature Calculations for the
Authorization Header", examplebucket, 2013-05-24) and of the general SigV4 documentation
("Deriving the signing key"). botocore is an independent implementation of the same
specification: both must produce the same Authorization header for the same request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from core.s3fast import (
    EMPTY_SHA256,
    Credentials,
    SigV4Signer,
    canonical_query,
    canonical_request,
    signing_key,
    string_to_sign,
    uri_encode,
)

EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
HOST = "examplebucket.s3.amazonaws.com"
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc)


def example_signer() -> SigV4Signer:
    return SigV4Signer(lambda: EXAMPLE, "us-east-1")


def signature(headers: dict[str, str]) -> str:
    return headers["authorization"].rsplit("Signature=", 1)[1]


def test_get_object_example_canonical_request_string_to_sign_and_signature():
    headers = {"host": HOST, "range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256,
               "x-amz-date": "20130524T000000Z"}
    canonical, signed = canonical_request("GET", "/test.txt", [], headers, EMPTY_SHA256)
    assert canonical == (
        "GET\n/test.txt\n\n"
        "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        f"x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n"
        f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
    )
    assert string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canonical) == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    sent = example_signer().sign("GET", HOST, "/test.txt", {"Range": "bytes=0-9"}, EMPTY_SHA256, when=WHEN)
    assert sent["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_put_object_example_signs_the_encoded_path_and_extra_headers():
    body = b"Welcome to Amazon S3."
    payload = hashlib.sha256(body).hexdigest()
    assert payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    headers = {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"}
    sent = example_signer().sign("PUT", HOST, "/test$file.text", headers, payload, when=WHEN)
    assert signature(sent) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


@pytest.mark.parametrize("query, expected", [
    ([("lifecycle", "")], "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ([("prefix", "J"), ("max-keys", "2")], "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
], ids=["get-bucket-lifecycle", "list-objects"])
def test_bucket_examples_sign_the_sorted_query(query, expected):
    sent = example_signer().sign("GET", HOST, "/", {}, EMPTY_SHA256, query=query, when=WHEN)
    assert signature(sent) == expected


def test_signing_key_derivation_example():
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize("text, keep_slash, expected", [
    ("photos/a b.jpg", True, "photos/a%20b.jpg"),
    ("a/b", False, "a%2Fb"),
    ("x+y=z&w", True, "x%2By%3Dz%26w"),
    ("Ünï~_-.", True, "%C3%9Cn%C3%AF~_-."),
    ("*()!'", True, "%2A%28%29%21%27"),
])
def test_uri_encoding_keeps_only_unreserved_characters(text, keep_slash, expected):
    assert uri_encode(text, keep_slash) == expected


def test_query_is_sorted_by_encoded_name_with_empty_values_kept():
    assert canonical_query([("prefix", "a b/"), ("acl", ""), ("max-keys", "2")]) == \
        "acl=&max-keys=2&prefix=a%20b%2F"


def test_header_values_are_trimmed_and_inner_spaces_collapsed():
    canonical, _ = canonical_request("GET", "/", [], {"x-amz-meta-a": "  one   two  "}, EMPTY_SHA256)
    assert "x-amz-meta-a:one two\n" in canonical


def test_session_token_is_sent_and_signed():
    signer = SigV4Signer(lambda: Credentials("AK", "SK", "token-1"), "us-east-1")
    sent = signer.sign("PUT", "h", "/b/k", {}, EMPTY_SHA256, when=WHEN)
    assert sent["x-amz-security-token"] == "token-1"
    assert "x-amz-security-token" in sent["authorization"].split("SignedHeaders=")[1]


def test_cached_signing_key_follows_the_date_and_rotated_secrets():
    secrets = ["first"]
    signer = SigV4Signer(lambda: Credentials("AK", secrets[0]), "us-east-1")
    day1 = signer.sign("GET", "h", "/b/k", {}, EMPTY_SHA256, when=WHEN)
    day2 = signer.sign("GET", "h", "/b/k", {}, EMPTY_SHA256, when=WHEN + dt.timedelta(days=1))
    secrets[0] = "rotated"
    rotated = signer.sign("GET", "h", "/b/k", {}, EMPTY_SHA256, when=WHEN + dt.timedelta(days=1))
    assert len({signature(day1), signature(day2), signature(rotated)}) == 3
    fresh = SigV4Signer(lambda: Credentials("AK", "rotated"), "us-east-1")
    assert signature(fresh.sign("GET", "h", "/b/k", {}, EMPTY_SHA256, when=WHEN + dt.timedelta(days=1))) == \
        signature(rotated)


@pytest.mark.parametrize("key", ["plain.jpg", "photos/naples/A 1/2.JPG", "ünïcode/ƒ+*(x)~.jpg", "a//b/./c"])
@pytest.mark.parametrize("token", [None, "session-token"])
def test_same_authorization_as_botocore(key, token):
    body = b"photo bytes"
    url = "http://127.0.0.1:8333/bucket-1/" + quote(key, safe="/~")
    headers = {"Content-MD5": "q1w2e3==", "Content-Type": "image/jpeg"}
    request = AWSRequest("PUT", url, headers=dict(headers), data=body)
    S3SigV4Auth(BotocoreCredentials("AKID", "se/cr+et", token), "s3", "eu-west-1").add_auth(request)
    when = dt.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)

    ours = SigV4Signer(lambda: Credentials("AKID", "se/cr+et", token), "eu-west-1").sign(
        "PUT", "127.0.0.1:8333", "/bucket-1/" + key, headers, request.headers["X-Amz-Content-SHA256"], when=when)

    assert ours["authorization"] == request.headers["Authorization"]
