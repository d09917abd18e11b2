import io

import pytest

from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.parsers import parser_for
from pipeline.parsers.delimited import PARSER, LineReader


def parse(data: bytes | str, **spec):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return list(PARSER.records(io.BytesIO(data), spec))


class OnlyRead:
    """A stream with nothing but read(), like some HTTP and S3 bodies, handing out small pieces."""

    def __init__(self, data: bytes, piece: int = 7):
        self._data, self._piece, self._at = data, piece, 0

    def read(self, size: int = -1) -> bytes:
        size = self._piece if size < 0 else min(size, self._piece)
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


def test_the_registry_gives_this_parser_for_delimited():
    assert parser_for("delimited") is PARSER


def test_a_csv_with_a_header_gives_one_dict_per_row_with_none_for_empty_fields():
    rows = parse("ListingKey,City,Price\n1,Naples,100\n2,,200\n")
    assert rows == [
        {"ListingKey": "1", "City": "Naples", "Price": "100"},
        {"ListingKey": "2", "City": None, "Price": "200"},
    ]


def test_quoted_fields_keep_delimiters_doubled_quotes_and_line_breaks():
    data = 'Key,Remarks,Agent\r\n1,"Pool, spa ""and"" view","Lee\r\nSmith"\r\n2,plain,x\r\n'
    rows = parse(data)
    assert rows[0] == {"Key": "1", "Remarks": 'Pool, spa "and" view', "Agent": "Lee\r\nSmith"}
    assert rows[1] == {"Key": "2", "Remarks": "plain", "Agent": "x"}


def test_line_numbers_count_physical_lines_across_quoted_line_breaks():
    data = 'Key,Remarks\n1,"a\nb\nc"\n2\n'
    rows = parse(data)
    assert rows[1]["__line__"] == 5
    assert rows[1]["__error__"] == "line 5: 1 fields where there are 2 columns"


@pytest.mark.parametrize("delimiter, text", [("\t", "tab"), ("\t", "\\t"), ("|", "|"), (";", ";"), ("|", "pipe")])
def test_any_single_character_delimiter_and_its_aliases(delimiter, text):
    data = f"a{delimiter}b\n1{delimiter}2\n"
    assert parse(data, delimiter=text) == [{"a": "1", "b": "2"}]


def test_a_multi_character_delimiter_splits_literally():
    assert parse('a~|~b\n"x~|~y"\n', delimiter="~|~") == [{"a": '"x', "b": 'y"'}]


def test_without_quoting_a_quote_is_an_ordinary_character():
    data = 'Key|Remarks\n1|6" pipes, "new" roof\n'
    assert parse(data, delimiter="|", quote="") == [{"Key": "1", "Remarks": '6" pipes, "new" roof'}]
    assert parse(data, delimiter="|", quote=False) == [{"Key": "1", "Remarks": '6" pipes, "new" roof'}]


def test_a_backslash_escape_character():
    data = 'a,b\n1,x\\,y\n'
    assert parse(data, escape="\\", quote="") == [{"a": "1", "b": "x,y"}]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_lf_crlf_and_lone_cr_line_endings(ending):
    data = ending.join(["a,b", "1,2", "3,4"]) + ending
    assert parse(data) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_no_final_line_ending_and_trailing_blank_lines():
    assert parse("a,b\n1,2") == [{"a": "1", "b": "2"}]
    assert parse("a,b\n1,2\n\n\n") == [{"a": "1", "b": "2"}]
    assert parse("a,b\n\n1,2\n   \n3,4\n") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_latin_1_text():
    data = "Key,City\n1,Peñasco\n".encode("latin-1")
    assert parse(data, encoding="latin-1") == [{"Key": "1", "City": "Peñasco"}]


def test_cp1252_text_with_smart_quotes_and_euro():
    data = "Key,Remarks\n1,“Café” €5\n".encode("cp1252")
    assert parse(data, encoding="cp1252") == [{"Key": "1", "Remarks": "“Café” €5"}]


def test_a_utf8_byte_order_mark_is_dropped_even_when_the_spec_says_another_encoding():
    data = "\ufeffKey,City\n1,Zürich\n".encode("utf-8")
    assert parse(data) == [{"Key": "1", "City": "Zürich"}]
    assert parse(data, encoding="cp1252") == [{"Key": "1", "City": "Zürich"}]
    assert parse(data, encoding="utf-8-sig") == [{"Key": "1", "City": "Zürich"}]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_detected(codec):
    text = "Key\tCity\r\n1\tMünchen\r\n"
    data = (text.encode(codec) if codec != "utf-16-be" else b"\xfe\xff" + text.encode(codec))
    assert parse(data, delimiter="\t") == [{"Key": "1", "City": "München"}]


def test_utf16_without_a_mark_when_the_spec_names_it():
    data = "Key,City\n1,Köln\n".encode("utf-16-le")
    assert parse(data, encoding="utf-16-le") == [{"Key": "1", "City": "Köln"}]


def test_an_undecodable_byte_fails_the_feed_naming_its_line_and_how_to_fix_it():
    data = b"Key,City\n1,Naples\n2,Pe\xf1asco\n"
    with pytest.raises(FeedFormatError) as caught:
        parse(data)
    assert caught.value.line == 3
    assert "utf-8" in caught.value.reason and "encoding_errors" in caught.value.reason and "0xf1" in str(caught.value)


def test_the_line_of_a_bad_byte_far_into_a_file_is_exact_across_read_chunks():
    lines = [b"Key,Remarks"] + [b"%d,%s" % (n, b"x" * 50) for n in range(1, 5000)] + [b"5000,caf\xe9"]
    with pytest.raises(FeedFormatError) as caught:
        parse(b"\n".join(lines) + b"\n")
    assert caught.value.line == 5001


def test_the_line_of_a_bad_byte_in_a_cr_terminated_file():
    with pytest.raises(FeedFormatError) as caught:
        parse(b"Key,City\r1,Naples\r2,Pe\xf1asco\r")
    assert caught.value.line == 3


def test_a_bad_byte_in_the_header_fails_on_line_one():
    with pytest.raises(FeedFormatError) as caught:
        parse(b"Key,Ci\xffty\n1,x\n")
    assert caught.value.line == 1


def test_encoding_errors_replace_keeps_going():
    assert parse(b"Key,City\n1,Pe\xf1asco\n", encoding_errors="replace") == [{"Key": "1", "City": "Pe\ufffdasco"}]


def test_a_multibyte_character_split_across_reads_is_decoded():
    data = "Key,City\n1,Zürich\n2,São Paulo\n".encode("utf-8")
    reader = LineReader(OnlyRead(data, piece=3), "utf-8")
    assert list(reader) == ["Key,City\n", "1,Zürich\n", "2,São Paulo\n"]


def test_a_stream_that_only_has_read_is_fine():
    data = b"a,b\n1,2\n"
    assert list(PARSER.records(OnlyRead(data), {})) == [{"a": "1", "b": "2"}]


def test_too_few_or_too_many_fields_become_error_records_and_the_feed_goes_on():
    rows = parse("Key,City,Price\n1,Naples\n2,Tampa,1,extra\n3,Miami,3\n")
    assert rows[0] == {"__error__": "line 2: 2 fields where there are 3 columns", "__line__": 2, "__raw__": ["1", "Naples"]}
    assert rows[1]["__error__"] == "line 3: 4 fields where there are 3 columns"
    assert rows[1]["__raw__"] == ["2", "Tampa", "1", "extra"]
    assert rows[2] == {"Key": "3", "City": "Miami", "Price": "3"}


def test_a_trailing_delimiter_on_rows_and_on_the_header_is_ignored():
    assert parse("a|b|\n1|2|\n3|4\n", delimiter="|") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    assert parse("a|b\n1|2|\n", delimiter="|") == [{"a": "1", "b": "2"}]


def test_a_broken_row_is_an_error_record_and_reading_resumes():
    rows = parse('a,b\n1,x\ry\n2,z\n')
    assert rows[0]["__error__"].startswith("line 2: ")
    assert rows[-1] == {"a": "2", "b": "z"}


def test_header_names_are_stripped_numbered_when_blank_and_suffixed_when_repeated():
    rows = parse(" Key ,,Phone,Phone,Phone\n1,2,3,4,5\n")
    assert rows == [{"Key": "1", "column_2": "2", "Phone": "3", "Phone_2": "4", "Phone_3": "5"}]


def test_columns_for_a_file_without_a_header():
    assert parse("1,Naples\n2,Tampa\n", columns=["Key", "City"]) == [
        {"Key": "1", "City": "Naples"},
        {"Key": "2", "City": "Tampa"},
    ]


def test_columns_with_header_true_rename_the_header():
    assert parse("K,C\n1,Naples\n", columns=["Key", "City"], header=True) == [{"Key": "1", "City": "Naples"}]


def test_skip_lines_skips_a_preamble_and_keeps_line_numbers_physical():
    data = "Exported 2026-06-01\nby MLS\nKey,City\n1,Naples\n2\n"
    rows = parse(data, skip_lines=2)
    assert rows[0] == {"Key": "1", "City": "Naples"}
    assert rows[1]["__line__"] == 5


def test_an_empty_file_has_no_header_and_fails():
    with pytest.raises(FeedFormatError, match="empty"):
        parse(b"")
    with pytest.raises(FeedFormatError, match="empty"):
        parse(b"\n\n")


def test_a_header_only_file_has_no_records():
    assert parse("Key,City\n") == []


def test_an_empty_file_without_a_header_has_no_records():
    assert parse(b"", columns=["Key"]) == []


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"encoding": "klingon"}, "not an encoding Python knows"),
        ({"encoding_errors": "shrug"}, "encoding_errors"),
        ({"delimiter": ""}, "delimiter"),
        ({"delimiter": "\n"}, "line break"),
        ({"header": False}, "needs columns"),
        ({"columns": "Key,City"}, "columns"),
        ({"skip_lines": -1}, "skip_lines"),
        ({"delimiter": ",", "quote": ","}, "delimited parse spec"),
    ],
)
def test_a_bad_spec_is_a_config_error_naming_the_key(spec, words):
    with pytest.raises(SourceConfigError, match=words):
        parse("a\n1\n", **spec)
