"""Encodings in a parse spec: refused at `sources apply` when unknown, read everywhere when known."""

import io

import pytest

from pipeline.errors import SourceConfigError
from pipeline.parsers import parser_for
from pipeline.spec import parse_source

TEXT = "Café Crème, Äpfel"


def source(parse):
    return {"id": "enc", "download": {"kind": "rets"}, "parse": parse, "fields": {"ListingKey": "K"}}


@pytest.mark.parametrize("encoding", ["b'mac_roman'", "klingon", "", 7])
@pytest.mark.parametrize("format_name", ["rets-compact", "xml", "delimited"])
def test_an_unknown_encoding_is_refused_at_apply_naming_the_key(format_name, encoding):
    with pytest.raises(SourceConfigError, match=r"source 'enc': parse\.encoding") as caught:
        parse_source(source({"format": format_name, "encoding": encoding, "record": "L"}))
    assert "LookupError" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["mac_roman", "latin-1", "cp1252", "utf-8", "utf-16"])
def test_xml_feeds_read_in_any_encoding_python_knows(encoding):
    # libxml2 alone refuses mac_roman and latin-1 by those names.
    assert parse_source(source({"format": "xml", "encoding": encoding, "record": "L"})).parse["encoding"] == encoding
    document = f'<?xml version="1.0" encoding="utf-8"?><Feed><L><City>{TEXT}</City></L></Feed>'.encode(encoding)
    [record] = parser_for("xml").records(io.BytesIO(document), {"record": "L", "encoding": encoding})
    assert record["City"] == TEXT


@pytest.mark.parametrize("encoding", ["mac_roman", "latin-1", "cp1252"])
def test_rets_compact_replies_read_in_any_encoding_python_knows(encoding):
    reply = (f'<RETS ReplyCode="0" ReplyText="ok"><COUNT Records="1"/><DELIMITER value="09"/>'
             f"<COLUMNS>\tK\tCity\t</COLUMNS><DATA>\t1\t{TEXT}\t</DATA></RETS>").encode(encoding)
    [record] = parser_for("rets-compact").records(io.BytesIO(reply), {"encoding": encoding})
    assert record == {"K": "1", "City": TEXT}
