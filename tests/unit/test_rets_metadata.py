"""GetMetadata replies of real servers, COMPACT and STANDARD-XML, read into the same tables."""

import pytest

from pipeline.connectors.rets.metadata import _key_field_of, lookup_map, parse_metadata
from pipeline.errors import FeedNotFound
from tests.support.rets_fixtures import fixture


def tables(relative):
    return parse_metadata(fixture(relative).read_bytes(), relative)


@pytest.mark.parametrize("shape", ["COMPACT-DECODED", "STANDARD-XML"])
def test_resources_give_the_key_field_in_either_shape(shape):
    rows = {row["ResourceID"]: row for table in tables(f"refindly/{shape}/GetMetadata_resources.xml")
            for row in table.rows}
    assert rows["Property"]["KeyField"] and set(rows) > {"Property"}
    assert _key_field_of(rows, "Property") == rows["Property"]["KeyField"]
    with pytest.raises(FeedNotFound, match="no resource 'Nonesuch'"):
        _key_field_of(rows, "Nonesuch")


def test_standard_xml_tables_keep_their_attributes_and_every_row():
    [classes] = tables("refindly/STANDARD-XML/GetMetadata_classes.xml")
    assert classes.kind == "METADATA-CLASS" and classes.attributes["Resource"] == "Property"
    assert [row["ClassName"] for row in classes.rows] == [str(n) for n in range(1, 9)]
    [fields] = tables("refindly/STANDARD-XML/GetMetadata_table.xml")
    assert len(fields.rows) == 162 and fields.rows[0]["SystemName"] == "sysid" and fields.rows[0]["DataType"] == "Int"


@pytest.mark.parametrize("relative, value, long_value", [
    ("refindly/STANDARD-XML/GetMetadata_lookup.xml", "A", "A-Active"),   # rows named LookupType
    ("refindly/STANDARD-XML/GetMetadata_lookup2.xml", "1", "Central"),   # rows named Lookup
])
def test_standard_xml_lookups_map_values_to_long_values(relative, value, long_value):
    assert lookup_map(tables(relative))[value] == long_value


def test_a_whole_system_in_standard_xml_gives_every_table():
    found = tables("refindly/STANDARD-XML/GetMetadata_wildcard.xml")
    assert len(found) == 40 and all(t.kind == "METADATA-LOOKUP_TYPE" and t.rows for t in found)
    assert len({t.attributes["Lookup"] for t in found}) == 40


def test_compact_system_metadata_is_a_table_without_rows():
    [system] = tables("refindly/COMPACT-DECODED/GetMetadata_system.xml")
    assert system.kind == "METADATA-SYSTEM" and system.rows == []
