import io
import json as stdlib_json

import pytest

import pipeline.parsers.json as json_module
from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.parsers import parser_for
from pipeline.parsers.json import PARSER


def parse(data, **spec):
    if not isinstance(data, bytes):
        data = stdlib_json.dumps(data).encode() if not isinstance(data, str) else data.encode()
    return list(PARSER.records(io.BytesIO(data), {"format": "json", **spec}))


def parse_ndjson(data: bytes):
    return list(PARSER.records(io.BytesIO(data), {"format": "ndjson"}))


class OnlyRead:
    """A stream with nothing but read(), handing out a few bytes at a time."""

    def __init__(self, data: bytes, piece: int = 5):
        self._data, self._piece, self._at = data, piece, 0

    def read(self, size: int = -1) -> bytes:
        size = self._piece if size < 0 else min(size, self._piece)
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


def test_the_module_uses_the_standard_library_json():
    assert json_module.json is stdlib_json


def test_the_registry_gives_this_parser_for_json_and_ndjson():
    assert parser_for("json") is PARSER
    assert parser_for("ndjson") is PARSER


# -- json ----------------------------------------------------------------------------------------


def test_a_top_level_array_is_the_records_by_default():
    assert parse([{"ListingKey": "1"}, {"ListingKey": "2"}]) == [{"ListingKey": "1"}, {"ListingKey": "2"}]
    assert parse([{"a": 1}], record_path="") == [{"a": 1}]


def test_records_are_kept_as_sent_with_nested_objects_and_arrays():
    record = {"ListingKey": "1", "ListPrice": 250000, "Lat": 26.5, "Pool": True, "Agent": None,
              "address": {"city": "Naples", "geo": [26.1, -81.7]}, "Media": [{"Order": 1, "MediaURL": "u"}]}
    assert parse([record]) == [record]


def test_record_path_walks_into_nested_objects():
    document = {"status": "ok", "data": {"count": 2, "listings": [{"k": 1}, {"k": 2}]}, "after": [1, 2]}
    assert parse(document, record_path="data.listings") == [{"k": 1}, {"k": 2}]


def test_record_path_steps_into_arrays_with_item():
    document = {"pages": [{"listings": [{"k": 1}]}, {"listings": [{"k": 2}, {"k": 3}]}]}
    assert parse(document, record_path="pages.item.listings") == [{"k": 1}, {"k": 2}, {"k": 3}]


def test_an_empty_array_has_no_records():
    assert parse({"data": {"listings": []}}, record_path="data.listings") == []
    assert parse([]) == []


def test_a_path_the_document_lacks_fails_naming_it():
    with pytest.raises(FeedFormatError, match="'data.listings'"):
        parse({"data": {"rows": [{"k": 1}]}}, record_path="data.listings")


def test_a_path_to_something_else_than_an_array_fails_saying_what_is_there():
    with pytest.raises(FeedFormatError, match="leads to an object"):
        parse({"data": {"listings": {"k": 1}}}, record_path="data.listings")
    with pytest.raises(FeedFormatError, match="leads to null"):
        parse({"data": {"listings": None}}, record_path="data.listings")


def test_a_top_level_object_without_record_path_suggests_setting_it():
    with pytest.raises(FeedFormatError, match="set record_path"):
        parse({"listings": [{"k": 1}]})


def test_an_element_that_is_not_an_object_is_an_error_record():
    rows = parse([{"k": 1}, "oops", [1], {"k": 2}])
    assert rows[0] == {"k": 1}
    assert rows[1] == {"__error__": "record 2: a string where an object was expected", "__raw__": "oops"}
    assert rows[2]["__error__"] == "record 3: an array where an object was expected"
    assert rows[3] == {"k": 2}


def test_malformed_json_fails():
    with pytest.raises(FeedFormatError, match="malformed JSON"):
        parse('[{"k": 1}, {"k": tru}]')


def test_a_truncated_document_fails_after_the_complete_records():
    stream = PARSER.records(io.BytesIO(b'[{"k": 1}, {"k": 2'), {"format": "json"})
    assert next(stream) == {"k": 1}
    with pytest.raises(FeedFormatError):
        next(stream)


def test_an_empty_payload_fails():
    with pytest.raises(FeedFormatError):
        parse(b"")


def test_a_utf8_byte_order_mark_is_accepted():
    assert parse(b'\xef\xbb\xbf[{"City": "Z\xc3\xbcrich"}]') == [{"City": "Zürich"}]


def test_unicode_escapes_and_numbers():
    assert parse(b'[{"c": "S\\u00e3o", "n": 9223372036854775807, "f": 1.5e3, "p": 1234567.89}]') == [
        {"c": "São", "n": 9223372036854775807, "f": 1500.0, "p": 1234567.89}
    ]


def test_an_integer_beyond_64_bits_is_malformed_for_the_c_parser():
    with pytest.raises(FeedFormatError, match="integer overflow"):
        parse(b'[{"n": 12345678901234567890}]')


def test_a_stream_read_a_few_bytes_at_a_time():
    data = stdlib_json.dumps({"meta": {"x": "y" * 40}, "value": [{"k": n} for n in range(20)]}).encode()
    rows = list(PARSER.records(OnlyRead(data), {"format": "json", "record_path": "value"}))
    assert rows == [{"k": n} for n in range(20)]


def test_the_path_is_found_when_the_records_come_after_a_large_prologue():
    document = {"meta": {"notes": ["x" * 1000] * 200}, "data": {"listings": []}}
    assert parse(document, record_path="data.listings") == []


def test_a_non_text_record_path_is_a_config_error():
    with pytest.raises(SourceConfigError, match="record_path"):
        parse([], record_path=["data"])


def test_json_is_the_default_format():
    assert list(PARSER.records(io.BytesIO(b'[{"k": 1}]'), {})) == [{"k": 1}]


# -- ndjson --------------------------------------------------------------------------------------


def test_ndjson_gives_one_record_per_line_and_skips_blank_lines():
    data = b'{"k": 1}\n\n{"k": 2, "m": [1, {"x": null}]}\r\n   \n{"k": 3}'
    assert parse_ndjson(data) == [{"k": 1}, {"k": 2, "m": [1, {"x": None}]}, {"k": 3}]


def test_a_bad_ndjson_line_is_an_error_record_with_its_line_and_the_rest_is_read():
    data = b'{"k": 1}\n{"k": \n\n[1, 2]\n"text"\n{"k": 5}\n'
    rows = parse_ndjson(data)
    assert rows[0] == {"k": 1}
    assert rows[1]["__line__"] == 2 and rows[1]["__error__"].startswith("line 2: not valid JSON")
    assert rows[1]["__raw__"] == '{"k": '
    assert rows[2] == {"__error__": "line 4: an array where an object was expected", "__line__": 4, "__raw__": "[1, 2]"}
    assert rows[3]["__error__"] == "line 5: a string where an object was expected"
    assert rows[4] == {"k": 5}


def test_an_ndjson_line_with_bad_utf8_is_an_error_record():
    rows = parse_ndjson(b'{"c": "Pe\xf1a"}\n{"k": 2}\n')
    assert rows[0]["__line__"] == 1 and rows[0]["__raw__"] == '{"c": "Pe\ufffda"}'
    assert rows[1] == {"k": 2}


def test_ndjson_with_a_byte_order_mark():
    assert parse_ndjson(b'\xef\xbb\xbf{"k": 1}\n') == [{"k": 1}]


def test_the_raw_text_of_a_huge_bad_line_is_cut_short():
    rows = parse_ndjson(b'{"k": "' + b"x" * 5000 + b"\n")
    assert len(rows[0]["__raw__"]) == 1000


def test_an_empty_ndjson_file_has_no_records():
    assert parse_ndjson(b"") == []
