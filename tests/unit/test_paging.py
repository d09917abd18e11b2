import pytest

from service.errors import InvalidArgument
from service.paging import PageTokens, fingerprint


def test_a_token_reads_back_the_position_it_was_issued_for():
    tokens = PageTokens("k")
    token = tokens.issue(fingerprint({"City": "Naples"}), [0, "350000.00", 42])
    assert tokens.read(token, fingerprint({"City": "Naples"})) == [0, "350000.00", 42]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: t[:10],
    lambda t: "%%%",
    lambda t: "",
])
def test_an_edited_token_is_refused(mangle):
    tokens = PageTokens("k")
    token = tokens.issue("q", [1, None, 7])
    with pytest.raises(InvalidArgument):
        tokens.read(mangle(token) or "A", "q")


def test_a_token_from_another_secret_or_query_is_refused():
    token = PageTokens("k").issue("q", ["x", 1])
    with pytest.raises(InvalidArgument, match="not a token"):
        PageTokens("other").read(token, "q")
    with pytest.raises(InvalidArgument, match="another query"):
        PageTokens("k").read(token, "q2")


def test_fingerprints_ignore_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
