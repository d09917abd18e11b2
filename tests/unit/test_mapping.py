import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from core.reso import LISTING_FIELDS
from pipeline.errors import PermanentError, PipelineError, SourceConfigError
from pipeline.mapping import Mapper, RecordRejected, compose_address, json_safe
from pipeline.parsers.delimited import PARSER as DELIMITED
from sandbox.listings import synthetic_listings

UTC = dt.timezone.utc
NEW_YORK = "America/New_York"


def mapper(fields=None, tz=NEW_YORK, **spec) -> Mapper:
    return Mapper({"fields": {"ListingKey": "Key", **(fields or {})}, **spec}, tz)


def rejection(m: Mapper, record: dict) -> RecordRejected:
    with pytest.raises(RecordRejected) as caught:
        m.map(record)
    return caught.value


# -- the result ----------------------------------------------------------------------------------


def test_a_record_maps_to_typed_reso_fields_and_extra():
    m = mapper(
        {"ListPrice": "LP", "BedroomsTotal": "Beds", "Latitude": "Lat", "City": "City", "StandardStatus": "Status"},
        values={"StandardStatus": {"A": "Active"}},
    )
    listing = m.map({"Key": " 123 ", "LP": "$1,250,000", "Beds": "3.0", "Lat": "26.14", "City": " Naples ",
                     "Status": "A", "Pool": "Y"})
    assert listing == {
        "ListingKey": "123",
        "ListPrice": Decimal("1250000"),
        "BedroomsTotal": 3,
        "Latitude": 26.14,
        "City": "Naples",
        "StandardStatus": "Active",
        "extra": {"Pool": "Y"},
    }


def test_mapped_fields_without_a_value_are_none_and_unmapped_fields_are_absent():
    listing = mapper({"ListPrice": "LP", "City": "City", "YearBuilt": "YB"}).map({"Key": "1", "LP": "", "City": "  "})
    assert listing["ListPrice"] is None and listing["City"] is None and listing["YearBuilt"] is None
    assert "BedroomsTotal" not in listing and "ModificationTimestamp" not in listing


@pytest.mark.parametrize(
    "raw, expected",
    [("$1,250,000", Decimal("1250000")), ("1250000.50", Decimal("1250000.50")), (" 99 000 ", Decimal("99000")),
     (349000, Decimal(349000)), (349000.5, Decimal("349000.5")), (Decimal("10.25"), Decimal("10.25")),
     ("€1.500", Decimal("1.500")), ("", None), (None, None), ("$", None)],
)
def test_decimals_are_read_leniently(raw, expected):
    assert mapper({"ListPrice": "P"}).map({"Key": "1", "P": raw})["ListPrice"] == expected


@pytest.mark.parametrize("raw, expected", [("3", 3), ("3.0", 3), (3.0, 3), (4, 4), ("1,200", 1200), (" 2 ", 2), ("", None)])
def test_ints_are_read_leniently(raw, expected):
    assert mapper({"YearBuilt": "Y"}).map({"Key": "1", "Y": raw})["YearBuilt"] == expected


@pytest.mark.parametrize("raw", ["2.5", "three", True, "NaN", "1e400x"])
def test_an_int_that_is_not_a_whole_number_rejects_the_record(raw):
    reason = rejection(mapper({"BedroomsTotal": "Beds"}), {"Key": "9", "Beds": raw}).reason
    assert reason.startswith("BedroomsTotal: ") and "'Beds'" in reason and repr(raw) in reason


@pytest.mark.parametrize("raw, expected", [("-81.7654", -81.7654), (26, 26.0), ("  26.5 ", 26.5)])
def test_floats(raw, expected):
    assert mapper({"Longitude": "L"}).map({"Key": "1", "L": raw})["Longitude"] == expected


def test_text_from_numbers_and_booleans():
    listing = mapper({"ListingId": "Id", "PostalCode": "Zip", "UnitNumber": "U"}).map(
        {"Key": 12345, "Id": 7, "Zip": "02134", "U": True}
    )
    assert listing["ListingKey"] == "12345" and listing["ListingId"] == "7"
    assert listing["PostalCode"] == "02134" and listing["UnitNumber"] == "true"


def test_statuses_and_property_types_in_any_case_get_reso_spelling():
    m = mapper({"StandardStatus": "S", "PropertyType": "T"})
    listing = m.map({"Key": "1", "S": "ACTIVE UNDER CONTRACT", "T": "residential lease"})
    assert listing["StandardStatus"] == "Active Under Contract" and listing["PropertyType"] == "Residential Lease"


def test_an_unknown_property_type_passes_through():
    assert mapper({"PropertyType": "T"}).map({"Key": "1", "T": "Boat Slip"})["PropertyType"] == "Boat Slip"


# -- value maps and defaults ---------------------------------------------------------------------


def test_value_maps_apply_before_coercion_exactly_then_ignoring_case():
    m = mapper(
        {"StandardStatus": "S", "PropertyType": "T", "BedroomsTotal": "B"},
        values={"StandardStatus": {"A": "Active", "pnd": "Pending", "1": "Closed"},
                "PropertyType": {"RES": "Residential", "N/A": ""}, "BedroomsTotal": {"Studio": "0"}},
    )
    assert m.map({"Key": "1", "S": " A ", "T": "res", "B": "studio"}) | {"extra": None} == {
        "ListingKey": "1", "StandardStatus": "Active", "PropertyType": "Residential", "BedroomsTotal": 0, "extra": None}
    assert m.map({"Key": "2", "S": "PND", "T": "N/A", "B": "2"})["PropertyType"] is None
    assert m.map({"Key": "3", "S": 1})["StandardStatus"] == "Closed"


def test_unmapped_values_of_other_fields_pass_through():
    m = mapper({"City": "C"}, values={"City": {"NPL": "Naples"}})
    assert m.map({"Key": "1", "C": "Tampa"})["City"] == "Tampa"
    assert m.map({"Key": "1", "C": "NPL"})["City"] == "Naples"


def test_defaults_fill_missing_values_only_and_are_typed():
    m = mapper({"StandardStatus": "S", "ListPrice": "P"}, defaults={"StandardStatus": "Active", "PropertyType": "Residential",
                                                                    "ListPrice": "0"})
    assert m.map({"Key": "1"}) | {"extra": None} == {
        "ListingKey": "1", "StandardStatus": "Active", "PropertyType": "Residential", "ListPrice": Decimal(0), "extra": None}
    assert m.map({"Key": "2", "S": "Pending", "P": "5"})["StandardStatus"] == "Pending"


# -- timestamps ----------------------------------------------------------------------------------


def stamp(raw, tz=NEW_YORK, **spec):
    return mapper({"ModificationTimestamp": "M"}, tz=tz, **spec).map({"Key": "1", "M": raw})["ModificationTimestamp"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2026-05-01T12:00:00Z", dt.datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01T12:00:00.1234567Z", dt.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-05-01T08:00:00-04:00", dt.datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01T14:00:00+0200", dt.datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01T08:00:00", dt.datetime(2026, 5, 1, 12, tzinfo=UTC)),  # EDT, UTC-4
        ("2026-01-15 08:00:00", dt.datetime(2026, 1, 15, 13, tzinfo=UTC)),  # EST, UTC-5
        ("2026-01-15", dt.datetime(2026, 1, 15, 5, tzinfo=UTC)),  # local midnight
        (1767225600, dt.datetime(2026, 1, 1, tzinfo=UTC)),
        ("1767225600", dt.datetime(2026, 1, 1, tzinfo=UTC)),
        (1767225600.5, dt.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        (1767225600000, dt.datetime(2026, 1, 1, tzinfo=UTC)),  # milliseconds
        (dt.datetime(2026, 1, 15, 8, 0), dt.datetime(2026, 1, 15, 13, tzinfo=UTC)),
        (dt.datetime(2026, 1, 15, 8, 0, tzinfo=UTC), dt.datetime(2026, 1, 15, 8, tzinfo=UTC)),
        (dt.date(2026, 7, 4), dt.datetime(2026, 7, 4, 4, tzinfo=UTC)),
        ("", None),
    ],
)
def test_timestamps_become_aware_utc(raw, expected):
    result = stamp(raw)
    assert result == expected
    assert result is None or result.tzinfo is UTC


def test_a_time_in_the_spring_forward_gap_is_read_with_the_offset_before_the_change():
    # 2026-03-08 02:30 does not exist in New York; read as EST it is 07:30Z (03:30 EDT).
    assert stamp("2026-03-08T02:30:00") == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert stamp("2026-03-08T01:59:00") == dt.datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    assert stamp("2026-03-08T03:00:00") == dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_an_ambiguous_fall_back_time_is_its_first_occurrence():
    # 2026-11-01 01:30 happens twice in New York: first in EDT (05:30Z), then in EST (06:30Z).
    assert stamp("2026-11-01T01:30:00") == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert stamp("2026-11-01T00:59:00") == dt.datetime(2026, 11, 1, 4, 59, tzinfo=UTC)
    assert stamp("2026-11-01T02:00:00") == dt.datetime(2026, 11, 1, 7, 0, tzinfo=UTC)


def test_an_explicit_offset_settles_an_ambiguous_time():
    assert stamp("2026-11-01T01:30:00-05:00") == dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_the_source_timezone_is_used_for_naive_times():
    assert stamp("2026-05-01T08:00:00", tz="America/Los_Angeles") == dt.datetime(2026, 5, 1, 15, tzinfo=UTC)
    assert stamp("2026-05-01T08:00:00", tz="UTC") == dt.datetime(2026, 5, 1, 8, tzinfo=UTC)


def test_timestamp_format_for_a_source_dialect():
    assert stamp("05/01/2026 08:00:00 AM", timestamp_format="%m/%d/%Y %I:%M:%S %p") == dt.datetime(
        2026, 5, 1, 12, tzinfo=UTC)
    formats = ["%m/%d/%Y %H:%M", "%m/%d/%Y"]
    assert stamp("01/15/2026", timestamp_format=formats) == dt.datetime(2026, 1, 15, 5, tzinfo=UTC)
    assert stamp("2026-01-15T08:00:00Z", timestamp_format=formats) == dt.datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert stamp("15.01.2026 08:00 +0100", timestamp_format="%d.%m.%Y %H:%M %z") == dt.datetime(
        2026, 1, 15, 7, tzinfo=UTC)


def test_an_unreadable_timestamp_rejects_the_record_with_a_hint():
    reason = rejection(mapper({"ModificationTimestamp": "Mod"}), {"Key": "1", "Mod": "05/01/2026"}).reason
    assert reason.startswith("ModificationTimestamp: '05/01/2026' (source field 'Mod') is not a timestamp")
    assert "timestamp_format" in reason


# -- field paths ---------------------------------------------------------------------------------


def test_an_exact_key_wins_over_a_dot_path():
    m = mapper({"City": "address.city", "ListPrice": "L.Price"})
    listing = m.map({"Key": "1", "address.city": "Exact", "address": {"city": "Nested"}, "L.Price": "5"})
    assert listing["City"] == "Exact" and listing["ListPrice"] == Decimal(5)


def test_dot_paths_walk_nested_objects_and_arrays():
    m = mapper({"City": "address.city", "Latitude": "geo.0", "Media": "Media", "ListAgentFullName": "agents.1.name"})
    record = {"Key": "1", "address": {"city": "Naples"}, "geo": [26.1, -81.7], "agents": [{"name": "A"}, {"name": "B"}]}
    listing = m.map(record)
    assert listing["City"] == "Naples" and listing["Latitude"] == 26.1 and listing["ListAgentFullName"] == "B"


def test_a_missing_dot_path_is_no_value():
    m = mapper({"City": "address.city", "PostalCode": "geo.9.zip", "CountyOrParish": "name.first"})
    listing = m.map({"Key": "1", "address": None, "geo": [], "name": "str"})
    assert listing["City"] is None and listing["PostalCode"] is None and listing["CountyOrParish"] is None


def test_flattened_xml_keys_with_slashes_are_exact_keys():
    m = mapper({"City": "Address/City", "ListingId": "@id"})
    assert m.map({"Key": "1", "Address/City": "Naples", "@id": "X1"}) | {"extra": None} == {
        "ListingKey": "1", "City": "Naples", "ListingId": "X1", "extra": None}


def test_a_list_of_source_fields_takes_the_first_with_a_value():
    m = mapper({"ListPrice": ["ClosePrice", "ListPrice", "OriginalPrice"]})
    assert m.map({"Key": "1", "ClosePrice": "", "ListPrice": "10", "OriginalPrice": "12"})["ListPrice"] == Decimal(10)
    assert m.map({"Key": "1"})["ListPrice"] is None


def test_a_repeated_element_with_one_value_is_that_value_and_with_several_is_rejected():
    m = mapper({"City": "Addr/City"})
    assert m.map({"Key": "1", "Addr/City": [None, "Naples"]})["City"] == "Naples"
    reason = rejection(m, {"Key": "1", "Addr/City": ["Naples", "Tampa"]}).reason
    assert reason.startswith("City: ['Naples', 'Tampa'] (source field 'Addr/City')") and "2 values" in reason


def test_an_object_where_a_value_belongs_is_rejected():
    reason = rejection(mapper({"City": "address"}), {"Key": "1", "address": {"city": "x"}}).reason
    assert "an object where one value was expected" in reason


# -- rejects -------------------------------------------------------------------------------------


def test_a_parser_error_record_is_rejected_with_the_parsers_reason_and_line():
    rejected = rejection(mapper(), {"__error__": "line 12: 5 fields where there are 7 columns", "__line__": 12})
    assert rejected.reason == "line 12: 5 fields where there are 7 columns" and rejected.line == 12


@pytest.mark.parametrize("record", [{}, {"Key": ""}, {"Key": "   "}, {"Key": None}, {"Other": "x"}])
def test_a_record_without_a_listing_key_is_rejected(record):
    rejected = rejection(mapper(), record)
    assert rejected.reason == "ListingKey is missing (source field 'Key')" and rejected.listing_key is None


def test_a_value_that_cannot_be_coerced_names_the_reso_field_the_source_field_and_the_value():
    rejected = rejection(mapper({"ListPrice": "LP"}), {"Key": "A1", "LP": "call agent"})
    assert rejected.reason == "ListPrice: 'call agent' (source field 'LP') is not a number"
    assert rejected.listing_key == "A1"


def test_a_status_outside_reso_is_rejected_saying_where_to_map_it():
    m = mapper({"StandardStatus": "Stat"}, values={"StandardStatus": {"A": "Active"}})
    reason = rejection(m, {"Key": "1", "Stat": "SLD"}).reason
    assert "'SLD'" in reason and "'Stat'" in reason and "[source.values.StandardStatus]" in reason
    assert '"SLD" = one of Active' in reason


def test_a_missing_status_is_rejected_when_the_source_maps_one():
    reason = rejection(mapper({"StandardStatus": "Stat"}), {"Key": "1"}).reason
    assert reason.startswith("StandardStatus is missing") and "defaults.StandardStatus" in reason


def test_a_source_that_does_not_map_status_is_not_rejected_for_it():
    assert "StandardStatus" not in mapper().map({"Key": "1"})


@pytest.mark.parametrize("lat, lon, field", [("91", "10", "Latitude"), ("-90.5", "1", "Latitude"),
                                             ("26", "181", "Longitude"), ("26", "-200", "Longitude")])
def test_coordinates_out_of_range_are_rejected(lat, lon, field):
    reason = rejection(mapper({"Latitude": "Lat", "Longitude": "Lon"}), {"Key": "1", "Lat": lat, "Lon": lon}).reason
    assert reason.startswith(f"{field} ") and "out of range" in reason


def test_coordinates_at_the_limits_are_fine_and_zero_zero_means_not_geocoded():
    m = mapper({"Latitude": "Lat", "Longitude": "Lon"})
    assert m.map({"Key": "1", "Lat": "-90", "Lon": "180"})["Latitude"] == -90.0
    listing = m.map({"Key": "1", "Lat": "0", "Lon": "0.0"})
    assert listing["Latitude"] is None and listing["Longitude"] is None
    assert m.map({"Key": "1", "Lat": "0", "Lon": "5"})["Latitude"] == 0.0


def test_text_longer_than_its_column_is_rejected():
    reason = rejection(mapper({"PostalCode": "Zip"}), {"Key": "1", "Zip": "1" * 17}).reason
    assert reason.startswith("PostalCode is 17 characters long; the listings table holds 16")
    assert mapper({"PublicRemarks": "R"}).map({"Key": "1", "R": "x" * 100_000})["PublicRemarks"] == "x" * 100_000


def test_numbers_too_large_for_their_column_are_rejected():
    assert "too large" in rejection(mapper({"ListPrice": "P"}), {"Key": "1", "P": "1e12"}).reason
    assert mapper({"ListPrice": "P"}).map({"Key": "1", "P": "999999999999.99"})["ListPrice"] == Decimal("999999999999.99")
    assert "too large" in rejection(mapper({"YearBuilt": "Y"}), {"Key": "1", "Y": str(2**31)}).reason


def test_record_rejected_is_a_pipeline_error_that_does_not_fail_the_run():
    assert issubclass(RecordRejected, PipelineError) and not issubclass(RecordRejected, PermanentError)
    assert RecordRejected("x").transient is False


# -- derived fields ------------------------------------------------------------------------------


ADDRESS_FIELDS = {"StreetNumber": "No", "StreetName": "St", "UnitNumber": "Unit", "City": "City",
                  "StateOrProvince": "State", "PostalCode": "Zip"}


def test_an_address_is_built_from_its_parts_when_the_feed_has_none():
    m = mapper(ADDRESS_FIELDS)
    record = {"Key": "1", "No": "123", "St": "Oak St", "Unit": "4", "City": "Naples", "State": "FL", "Zip": "34102"}
    assert m.map(record)["UnparsedAddress"] == "123 Oak St #4, Naples, FL 34102"
    assert m.map({**record, "Unit": ""})["UnparsedAddress"] == "123 Oak St, Naples, FL 34102"
    assert m.map({**record, "Unit": "Apt 4B"})["UnparsedAddress"] == "123 Oak St Apt 4B, Naples, FL 34102"


def test_a_full_address_from_the_feed_is_kept_as_sent():
    m = mapper({**ADDRESS_FIELDS, "UnparsedAddress": "Addr"})
    assert m.map({"Key": "1", "Addr": "123 OAK ST", "No": "123", "St": "Oak St"})["UnparsedAddress"] == "123 OAK ST"
    assert mapper({"UnparsedAddress": "Addr"}).map({"Key": "1", "Addr": "Lot 7, Rural Route 2"})["UnparsedAddress"] == (
        "Lot 7, Rural Route 2")


def test_no_address_is_made_up_without_street_parts():
    m = mapper(ADDRESS_FIELDS)
    assert "UnparsedAddress" not in m.map({"Key": "1", "City": "Naples", "State": "FL"})
    assert mapper({**ADDRESS_FIELDS, "UnparsedAddress": "A"}).map({"Key": "1", "City": "Naples"})["UnparsedAddress"] is None


def test_compose_address_leaves_out_missing_parts():
    assert compose_address("5", None, None, None, "FL", None) == "5, FL"
    assert compose_address(None, "Main St", "#2", "Tampa", None, "33601") == "Main St #2, Tampa, 33601"


def test_media_from_expanded_odata_objects_sorted_by_order():
    m = mapper({"Media": "Media"})
    media = [{"Order": 2, "MediaURL": "https://p/2.jpg"}, {"Order": 1, "MediaURL": "https://p/1.jpg", "MediaKey": "k"},
             {"Order": 3, "MediaURL": None}]
    listing = m.map({"Key": "1", "Media": media})
    assert listing["Media"] == [{"Order": 1, "MediaURL": "https://p/1.jpg"}, {"Order": 2, "MediaURL": "https://p/2.jpg"}]
    assert listing["PhotosCount"] == 2 and "Media" not in listing["extra"]


def test_media_from_a_list_of_urls_or_one_string_of_urls():
    m = mapper({"Media": "Photos/Photo"})
    assert m.map({"Key": "1", "Photos/Photo": ["u1", None, "u3"]})["Media"] == [
        {"Order": 1, "MediaURL": "u1"}, {"Order": 3, "MediaURL": "u3"}]
    assert m.map({"Key": "1", "Photos/Photo": "u1"})["Media"] == [{"Order": 1, "MediaURL": "u1"}]
    assert m.map({"Key": "1", "Photos/Photo": "u1, u2|u3 u4"})["Media"] == [
        {"Order": n, "MediaURL": f"u{n}"} for n in range(1, 5)]
    assert m.map({"Key": "1"})["Media"] == [] and m.map({"Key": "1"})["PhotosCount"] == 0


def test_a_mapped_photos_count_is_not_overridden_by_media():
    listing = mapper({"Media": "M", "PhotosCount": "N"}).map({"Key": "1", "M": ["u1"], "N": "12"})
    assert listing["PhotosCount"] == 12 and len(listing["Media"]) == 1


def test_media_that_is_not_a_list_is_rejected():
    assert rejection(mapper({"Media": "M"}), {"Key": "1", "M": {"x": 1}}).reason.startswith("Media: ")


def test_without_a_media_mapping_there_is_no_media_key():
    listing = mapper().map({"Key": "1", "Media": [{"MediaURL": "u"}]})
    assert "Media" not in listing and listing["extra"]["Media"] == [{"MediaURL": "u"}]


# -- extra ---------------------------------------------------------------------------------------


def test_extra_holds_unmapped_non_empty_fields_json_safe():
    m = mapper({"City": "address.city"})
    record = {"Key": "1", "address": {"city": "Naples", "country": "US"}, "Pool": "Y", "Empty": "", "Nothing": None,
              "NoList": [], "Price": Decimal("10.5"), "Whole": Decimal("10"), "When": dt.datetime(2026, 1, 1, tzinfo=UTC),
              "Day": dt.date(2026, 1, 2), "Blob": b"\xff\xd8\xff" * 10, "Text": b"ok", "__line__": 3}
    extra = m.map(record)["extra"]
    assert extra == {"Pool": "Y", "Price": 10.5, "Whole": 10, "When": "2026-01-01T00:00:00+00:00", "Day": "2026-01-02",
                     "Blob": "<30 bytes of binary data>", "Text": "ok"}
    json.dumps(extra, allow_nan=False)


def test_json_safe_handles_nesting_and_non_finite_numbers():
    value = {"a": [Decimal("NaN"), float("inf"), (1, 2), {3: dt.time(8, 30)}], "b": {"x"}}
    assert json_safe(value) == {"a": ["NaN", "inf", [1, 2], {"3": "08:30:00"}], "b": ["x"]}


# -- the spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, words",
    [
        ({}, "fields.ListingKey is required"),
        ({"fields": {"ListPrice": "LP"}}, "fields.ListingKey is required"),
        ({"fields": "Key"}, "fields must be a table"),
        ({"fields": {"ListingKey": "K", "ListPirce": "LP"}}, "did you mean ListPrice"),
        ({"fields": {"ListingKey": "K", "Colour": "C"}}, "not a RESO field"),
        ({"fields": {"ListingKey": ""}}, "must name a source field"),
        ({"fields": {"ListingKey": ["K", 3]}}, "must name a source field"),
        ({"fields": {"ListingKey": "K"}, "values": {"StandardStatus": {"S": "Sold"}}}, "'Sold' is not a RESO StandardStatus"),
        ({"fields": {"ListingKey": "K"}, "values": {"StandardStatus": ["A"]}}, "values.StandardStatus must be a table"),
        ({"fields": {"ListingKey": "K"}, "values": {"Stat": {}}}, "values.Stat"),
        ({"fields": {"ListingKey": "K"}, "defaults": {"StandardStatus": "Sold"}}, "defaults.StandardStatus"),
        ({"fields": {"ListingKey": "K"}, "defaults": {"ListPrice": "cheap"}}, "defaults.ListPrice = 'cheap' is not a number"),
        ({"fields": {"ListingKey": "K"}, "timestamp_format": 5}, "timestamp_format"),
    ],
)
def test_a_bad_spec_is_a_config_error_that_says_what_to_fix(spec, words):
    with pytest.raises(SourceConfigError, match=words.replace("[", r"\[")):
        Mapper(spec, NEW_YORK)


def test_an_unknown_timezone_is_a_config_error():
    with pytest.raises(SourceConfigError, match="timezone"):
        mapper(tz="Mars/Olympus_Mons")


def test_status_value_maps_may_use_any_case_and_empty_targets():
    m = mapper({"StandardStatus": "S"}, values={"StandardStatus": {"A": "active", "X": ""}})
    assert m.map({"Key": "1", "S": "A"})["StandardStatus"] == "Active"


def test_parser_keys_in_the_spec_are_ignored():
    spec = {"format": "delimited", "delimiter": "|", "record": "Listing", "fields": {"ListingKey": "K"}}
    assert Mapper(spec, NEW_YORK).map({"K": "1"}) == {"ListingKey": "1", "extra": {}}


# -- with a parser -------------------------------------------------------------------------------


def test_sandbox_listings_survive_a_pipe_delimited_round_trip():
    listings = list(synthetic_listings(200, ["naples"], seed=3))
    columns = [name for name in LISTING_FIELDS if name != "UnparsedAddress"]
    names = {name: f"L_{name}" for name in columns}
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="|", lineterminator="\r\n")
    writer.writerow(names.values())
    for listing in listings:
        modified = listing["ModificationTimestamp"].astimezone(dt.timezone(dt.timedelta(hours=-5)))
        row = {**listing, "ModificationTimestamp": modified.replace(tzinfo=None).isoformat(),
               "PhotosChangeTimestamp": listing["PhotosChangeTimestamp"].isoformat()}
        writer.writerow(["" if row.get(name) is None else row[name] for name in columns])
    m = Mapper({"fields": names}, "America/Bogota")  # UTC-5, no DST
    records = DELIMITED.records(io.BytesIO(buffer.getvalue().encode("cp1252")), {"delimiter": "|", "encoding": "cp1252"})
    mapped = [m.map(record) for record in records]
    for listing, result in zip(listings, mapped, strict=True):
        for name in columns:
            assert result[name] == listing.get(name), name
        assert result["UnparsedAddress"] == listing["UnparsedAddress"]
        assert result["extra"] == {}
