import io

import pytest

from pipeline.errors import FeedFormatError, SourceConfigError
from pipeline.parsers import parser_for
from pipeline.parsers.xml import PARSER


def parse(data: str | bytes, record="Listing", **spec):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return list(PARSER.records(io.BytesIO(data), {"record": record, **spec}))


def test_the_registry_gives_this_parser_for_xml():
    assert parser_for("xml") is PARSER


def test_children_become_slash_joined_paths_and_attributes_at_names():
    rows = parse(
        """<Feed><Listing id="7" status="A">
             <ListingKey>100</ListingKey>
             <Address type="street"><City>Naples</City><Geo><Lat>26.1</Lat></Geo></Address>
           </Listing></Feed>"""
    )
    assert rows == [
        {
            "@id": "7",
            "@status": "A",
            "ListingKey": "100",
            "Address/@type": "street",
            "Address/City": "Naples",
            "Address/Geo/Lat": "26.1",
        }
    ]


def test_repeated_elements_give_lists_in_document_order_and_a_single_one_a_value():
    rows = parse(
        """<Feed>
          <Listing><Photos><Photo>u1</Photo><Photo>u2</Photo><Photo>u3</Photo></Photos></Listing>
          <Listing><Photos><Photo>only</Photo></Photos></Listing>
        </Feed>"""
    )
    assert rows[0] == {"Photos/Photo": ["u1", "u2", "u3"]}
    assert rows[1] == {"Photos/Photo": "only"}


def test_repeated_groups_come_out_column_wise_keeping_empty_positions():
    rows = parse(
        """<r><Listing><Rooms>
             <Room><Type>Bed</Type><Area>12x14</Area></Room>
             <Room><Type>Bath</Type><Area/></Room>
           </Rooms></Listing></r>"""
    )
    assert rows == [{"Rooms/Room/Type": ["Bed", "Bath"], "Rooms/Room/Area": ["12x14", None]}]


def test_empty_and_blank_elements_are_none_and_text_is_kept_as_sent():
    rows = parse("<r><Listing><A/><B>   </B><C></C><D>  padded  </D></Listing></r>")
    assert rows == [{"A": None, "B": None, "C": None, "D": "  padded  "}]


def test_cdata_entities_comments_and_processing_instructions():
    rows = parse(
        "<r><Listing><!-- note --><?pi x?><Remarks><![CDATA[<b>Pool</b> & spa]]></Remarks>"
        "<Agent>Smith &amp; Lee &#233;</Agent></Listing></r>"
    )
    assert rows == [{"Remarks": "<b>Pool</b> & spa", "Agent": "Smith & Lee é"}]


def test_namespaces_are_ignored_for_records_children_and_attributes():
    rows = parse(
        """<m:Feed xmlns:m="urn:mls" xmlns:x="urn:other" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
             <m:Listing x:id="9"><m:Price>100</m:Price><x:City>Tampa</x:City><m:Unit xsi:nil="true"/></m:Listing>
             <Listing xmlns="urn:default"><Price>200</Price></Listing>
           </m:Feed>"""
    )
    assert rows == [{"@id": "9", "Price": "100", "City": "Tampa", "Unit": None}, {"Price": "200"}]


def test_records_inside_a_soap_envelope_are_found_by_local_name():
    rows = parse(
        """<?xml version="1.0" encoding="utf-8"?>
        <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
          <soap:Header><Session>abc</Session></soap:Header>
          <soap:Body>
            <GetListingsResponse xmlns="urn:mls:feed">
              <Count>2</Count>
              <Listings><Property><Key>1</Key></Property><Property><Key>2</Key></Property></Listings>
            </GetListingsResponse>
          </soap:Body>
        </soap:Envelope>""",
        record="Property",
    )
    assert rows == [{"Key": "1"}, {"Key": "2"}]


def test_records_at_different_depths_are_all_found():
    rows = parse("<r><Listing><K>1</K></Listing><Group><Listing><K>2</K></Listing></Group></r>")
    assert rows == [{"K": "1"}, {"K": "2"}]


def test_a_document_without_matching_records_has_none():
    assert parse("<r><Other/></r>") == []


def test_a_soap_fault_fails_with_its_fault_string():
    fault = """<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
               <faultcode>s:Client</faultcode><faultstring>Invalid session</faultstring></s:Fault></s:Body></s:Envelope>"""
    with pytest.raises(FeedFormatError, match="SOAP fault: Invalid session"):
        parse(fault)


def test_the_declared_encoding_is_honoured():
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><r><Listing><City>Peñasco</City></Listing></r>'.encode("latin-1")
    assert parse(data) == [{"City": "Peñasco"}]


def test_the_spec_encoding_overrides_a_wrong_declaration():
    data = '<?xml version="1.0" encoding="utf-8"?><r><Listing><Remarks>“Café”</Remarks></Listing></r>'.encode("cp1252")
    with pytest.raises(FeedFormatError):
        parse(data)
    assert parse(data, encoding="cp1252") == [{"Remarks": "“Café”"}]


def test_utf16_with_a_byte_order_mark():
    data = '<?xml version="1.0" encoding="UTF-16"?><r><Listing><City>Köln</City></Listing></r>'.encode("utf-16")
    assert parse(data) == [{"City": "Köln"}]


def test_malformed_xml_fails_with_its_line():
    data = "<r>\n<Listing><K>1</K></Listing>\n<Listing><K>2</Listing>\n</r>"
    with pytest.raises(FeedFormatError) as caught:
        parse(data)
    assert caught.value.line == 3
    assert "malformed XML" in caught.value.reason


def test_records_before_the_malformed_part_are_yielded_first():
    stream = PARSER.records(io.BytesIO(b"<r><Listing><K>1</K></Listing><Listing><K>2</K></r>"), {"record": "Listing"})
    assert next(stream) == {"K": "1"}
    with pytest.raises(FeedFormatError):
        next(stream)


def test_an_empty_payload_is_malformed():
    with pytest.raises(FeedFormatError):
        parse(b"")


def test_a_truncated_document_is_malformed():
    with pytest.raises(FeedFormatError):
        parse("<r><Listing><K>1</K></Listing><Listing><K>2")


def test_an_undefined_entity_is_malformed_not_expanded():
    with pytest.raises(FeedFormatError, match="foo"):
        parse("<r><Listing><K>&foo;</K></Listing></r>")


def test_external_entities_are_not_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    data = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r><Listing><K>&x;</K></Listing></r>'
    with pytest.raises(FeedFormatError) as caught:
        parse(data)
    assert "TOPSECRET" not in str(caught.value)


def test_the_spec_must_name_the_record_element():
    with pytest.raises(SourceConfigError, match="record"):
        list(PARSER.records(io.BytesIO(b"<r/>"), {}))


def test_a_namespaced_record_name_in_the_spec_is_reduced_to_its_local_name():
    assert parse("<r><Listing><K>1</K></Listing></r>", record="{urn:x}Listing") == [{"K": "1"}]


def test_records_keep_coming_after_earlier_ones_and_their_wrappers_are_released():
    body = "".join(f"<Wrap><Listing><K>{n}</K></Listing></Wrap>" for n in range(50))
    stream = PARSER.records(io.BytesIO(f"<r><Head>h</Head>{body}</r>".encode()), {"record": "Listing"})
    rows = [next(stream) for _ in range(10)]
    assert rows[-1] == {"K": "9"}
    assert [r["K"] for r in stream] == [str(n) for n in range(10, 50)]
