import io
import os

import pytest

from pipeline.connectors.rets.compact import CompactReader, Framing, delimiter_from
from pipeline.connectors.rets.metadata import lookup_map, parse_metadata
from pipeline.errors import FeedFormatError, SourceConfigError, SourceUnavailable
from pipeline.parsers import parser_for
from tests.support.rets_fixtures import fixture, recording

PARSER = parser_for("rets-compact")


def parse(relative):
    _, _, body = recording(relative)
    return list(PARSER.records(io.BytesIO(body), {}))


def read(body: bytes) -> tuple[CompactReader, list]:
    reader = CompactReader(io.BytesIO(body))
    return reader, list(reader.records())


def test_librets_reply_with_count_maxrows_and_rets_status():
    _, _, body = recording("librets/search-response.xml")
    reader, records = read(body)
    assert records == [
        {"ListingID": "LN000005", "ListPrice": "250000", "City": "Chicago", "ListDate": "2004-07-04"},
        {"ListingID": "LN000004", "ListPrice": "380000", "City": "Buffalo Grove", "ListDate": "2004-05-30"},
    ]
    assert reader.count == 2 and reader.maxrows and reader.status.code == 20208


def test_lines_without_the_leading_delimiter_are_read_the_same():
    assert parse("librets/search-response-no-leading-tab.xml") == parse("librets/search-response.xml")


def test_pipe_delimiter():
    assert parse("librets/search-response-pipe.xml") == [{"CITY": "AURORA"}]


def test_no_records_found_is_an_empty_result():
    _, _, body = recording("librets/search-response-no-records.xml")
    reader, records = read(body)
    assert records == [] and reader.empty and reader.count == 0


def test_an_error_reply_in_the_body_raises_its_error():
    with pytest.raises(SourceConfigError, match="20205"):
        parse("librets/search-response-error.xml")


@pytest.mark.parametrize("name", ["Search.xml", "Search_1of2.xml", "Search_2of2.xml"])
def test_refindly_compact_decoded_pages(name):
    reader = CompactReader(fixture(f"refindly/COMPACT-DECODED/{name}").open("rb"))
    records = list(reader.records())
    assert len(records) == 3 and len(reader.columns) == 208
    assert [r["matrix_unique_id"] for r in records] == ["2371414", "2376189", "13864733"]
    assert records[0]["City"] == "NAPLES" and records[0]["BathsFull"] == "2"
    assert records[0]["ActiveOpenHouseCount"] is None  # an empty value
    assert reader.delimiter == "\t"


def test_paged_fixture_pages_say_more_rows_then_no_more():
    first = CompactReader(fixture("refindly/COMPACT-DECODED/Search_1of2.xml").open("rb"))
    second = CompactReader(fixture("refindly/COMPACT-DECODED/Search_2of2.xml").open("rb"))
    list(first.rows()), list(second.rows())
    assert (first.count, first.maxrows) == (6, True)  # <DELIMITER value = "09"/>, spaces and all
    assert (second.count, second.maxrows) == (6, False)


def test_missing_delimiter_and_count_fall_back_to_tab_and_none():
    reader = CompactReader(fixture("refindly/COMPACT-DECODED/Search.xml").open("rb"))
    assert len(list(reader.rows())) == 3 and reader.count is None and reader.delimiter == "\t"


def test_entities_in_values_are_decoded():
    values = {v for r in PARSER.records(fixture("refindly/COMPACT-DECODED/Search.xml").open("rb"), {})
              for v in r.values() if v}
    assert any("&" in v for v in values) and not any("&amp;" in v for v in values)


def test_another_format_is_refused():
    with pytest.raises(FeedFormatError, match="another Format"):
        list(PARSER.records(fixture("refindly/CREA-STANDARD-XML/Search.xml").open("rb"), {}))


def test_html_where_xml_was_expected_is_a_format_error():
    with pytest.raises(FeedFormatError, match="HTML"):
        list(PARSER.records(fixture("refindly/Logout.html").open("rb"), {}))


def test_every_search_fixture_parses_or_fails_with_a_pipeline_error():
    names = [p for p in fixture("SOURCES.md").parent.rglob("*.xml") if "earch" in p.name]
    assert len(names) >= 8
    for path in names:
        _, _, body = recording(str(path.relative_to(fixture("SOURCES.md").parent)))
        try:
            list(PARSER.records(io.BytesIO(body), {}))
        except (FeedFormatError, SourceConfigError):
            assert "error" in path.name or "CREA" in str(path)


def test_a_row_with_the_wrong_number_of_values_says_where():
    body = b'<RETS ReplyCode="0" ReplyText="">\n<COLUMNS>\tA\tB\t</COLUMNS>\n<DATA>\t1\t2\t</DATA>\n<DATA>\t1\t</DATA>\n</RETS>'
    with pytest.raises(FeedFormatError, match="DATA row 2 has 1 values for 2 columns") as caught:
        read(body)
    assert caught.value.line == 4


def test_data_before_columns_and_bad_xml_are_format_errors():
    with pytest.raises(FeedFormatError, match="DATA before COLUMNS"):
        read(b'<RETS ReplyCode="0" ReplyText=""><DATA>\t1\t</DATA></RETS>')
    with pytest.raises(FeedFormatError, match="not well-formed"):
        read(b'<RETS ReplyCode="0" ReplyText=""><COLUMNS>\tA\t</COLUMNS><DATA>\t1')
    with pytest.raises(FeedFormatError, match="empty reply"):
        read(b"")


def test_reply_code_20208_on_the_envelope_still_gives_rows():
    reader, records = read(b'<RETS ReplyCode="20208" ReplyText="Max"><COLUMNS>\tA\t</COLUMNS><DATA>\tx\t</DATA></RETS>')
    assert records == [{"A": "x"}] and reader.maxrows


def test_transient_codes_in_a_body_are_transient():
    with pytest.raises(SourceUnavailable):
        read(b'<RETS ReplyCode="20209" ReplyText="Timeout"/>')


def test_parse_spec_encoding_overrides_the_reply_charset():
    body = '<RETS ReplyCode="0" ReplyText=""><COLUMNS>\tCity\t</COLUMNS><DATA>\tSão Paulo\t</DATA></RETS>'
    records = list(PARSER.records(io.BytesIO(body.encode("cp1252")), {"encoding": "cp1252"}))
    assert records == [{"City": "São Paulo"}]


def test_framing_is_learned_from_columns():
    assert Framing.learn("\tA\tB\t", "\t").row("\t\tx\t") == [None, "x"]
    assert Framing.learn("A\tB\t", "\t").row("\tx\t") == [None, "x"]
    assert Framing.learn("A\tB", "\t").row("1\t") == ["1", None]


@pytest.mark.parametrize("value, expected", [(None, "\t"), ("09", "\t"), (" 7C ", "|"), ("2C", ",")])
def test_delimiter_values(value, expected):
    assert delimiter_from(value) == expected


def test_a_bad_delimiter_is_a_format_error():
    with pytest.raises(FeedFormatError):
        delimiter_from("zz")


class _GeneratedReply(io.RawIOBase):
    """A COMPACT reply of ``rows`` records, produced as it is read: never whole in memory."""

    def __init__(self, rows: int):
        self._parts = self._produce(rows)
        self._pending = b""

    @staticmethod
    def _produce(rows: int):
        yield b'<RETS ReplyCode="0" ReplyText="OK">\n<COUNT Records="%d"/>\n<DELIMITER value="09"/>\n' % rows
        yield b"<COLUMNS>\tKey\tRemarks\tCity\t</COLUMNS>\n"
        filler = b"x" * 500
        for n in range(rows):
            yield b"<DATA>\t%d\t%s\tNaples\t</DATA>\n" % (n, filler)
        yield b"</RETS>\n"

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            self._pending = next(self._parts, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to measure memory")
def test_memory_stays_flat_on_a_large_reply():
    rows = 120_000  # about 62 MB of XML
    stream = io.BufferedReader(_GeneratedReply(rows), 1 << 16)
    baseline, peak, seen = _rss(), 0, 0
    for record in PARSER.records(stream, {}):
        seen += 1
        if seen % 5000 == 0:
            peak = max(peak, _rss() - baseline)
    assert seen == rows and record["Key"] == str(rows - 1)
    assert peak < 24 * 1024 * 1024, f"memory grew by {peak / 1e6:.0f} MB while reading"


def test_compact_metadata_fixtures():
    resources = parse_metadata(fixture("refindly/COMPACT-DECODED/GetMetadata_resources.xml").read_bytes())
    assert {r["ResourceID"]: r["KeyField"] for r in resources[0].rows}["Property"] == "matrix_unique_id"
    table = parse_metadata(fixture("refindly/COMPACT-DECODED/GetMetadata_table.xml").read_bytes())[0]
    assert table.attributes == {"Resource": "Property", "Class": "RES", "Version": "1.00.00580",
                                "Date": "2016-11-29T06:01:13Z"}
    fields = {row["SystemName"]: row for row in table.rows}
    assert len(fields) == 208 and fields["AmenRecFreq"]["LookupName"] == "FeeFrequency"
    lookups = lookup_map(parse_metadata(fixture("refindly/COMPACT-DECODED/GetMetadata_lookup.xml").read_bytes()))
    assert lookups["BAJP"] == "Bike And Jog Path" and len(lookups) == 61
    classes = parse_metadata(fixture("refindly/COMPACT-DECODED/GetMetadata_classes.xml").read_bytes())[0]
    assert [r["ClassName"] for r in classes.rows] == ["RES", "RIN", "RNT", "LOT", "COM", "DOCK"]
    system = parse_metadata(fixture("refindly/COMPACT-DECODED/GetMetadata_system.xml").read_bytes())
    assert system[0].kind == "METADATA-SYSTEM" and system[0].rows == []
