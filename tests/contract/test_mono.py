""".NET-style client (Mono: the ``wsdl`` proxy generator, ``mcs``, ``mono``) against the live
service, over HTTP Basic.

Mono's ``wsdl`` generates a ``SoapHttpClientProtocol`` proxy from the running service's WSDL,
``mcs`` compiles it with tests/contract/mono/Client.cs, and the client's tab-separated output
is checked here against the database. Declared faults must reach .NET code as ``SoapException``
with the fault code and the declared detail element.

Where this proxy differs from what a .NET developer may expect (worth knowing when a .NET
consumer reports a problem):

- Every optional value-type element (``xs:int``/``xs:decimal``/``xs:double``/``xs:boolean``/
  ``xs:dateTime`` with ``minOccurs="0"``) gets an ``xxxSpecified`` flag. Setting ``MinPrice``
  without ``MinPriceSpecified = true`` sends nothing: the search is silently unfiltered
  (test_a_value_type_filter_is_sent_only_with_its_specified_flag). Reading works the same way:
  ``BedroomsTotal`` of a listing without one is 0 with ``BedroomsTotalSpecified`` false.
- The operations take and return the wrapper objects (``SearchListings(SearchListings)``,
  ``ParameterStyle.Bare``) instead of unwrapped parameters; the ``*Array`` wrapper types become
  plain arrays (``ListingSummary[] Listings``).
- ``xs:dateTime`` values sent in UTC come back as ``DateTimeKind.Local`` (converted to the
  machine's zone), as .NET's XmlSerializer does; ``ToUniversalTime()`` gives the instant back.
- With ``PreAuthenticate = true`` Mono sends Basic credentials with the very first request;
  .NET Framework documents pre-authentication as starting after a first authenticated request,
  so there each new proxy first receives the service's 401 Basic challenge, then retries.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Listing
from tests.support.clients import EXPECTED_FAULTS, SOAP_ENV, run_tool, tab_lines
from tests.support.soap import CONSUMER

SOURCE = Path(__file__).parent / "mono" / "Client.cs"
NAMESPACE = "MlsFeeds.Client"


def mono_missing() -> str | None:
    """Why the Mono toolchain cannot run here, or None when it can."""
    missing = [tool for tool in ("wsdl", "mcs", "mono") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install mono-devel; see .ci/install-clients.sh)"
    return None


MONO_MISSING = mono_missing()
pytestmark = [pytest.mark.mono, pytest.mark.skipif(MONO_MISSING is not None, reason=str(MONO_MISSING))]


@pytest.fixture(scope="module")
def mono_build(deployment, tmp_path_factory):
    """wsdl and mcs: the compiled client, the generated proxy's source, and the tools' output."""
    work = tmp_path_factory.mktemp("mono")
    proxy = work / "Proxy.cs"
    generated = run_tool(["wsdl", "-nologo", f"-namespace:{NAMESPACE}", f"-out:{proxy}", deployment.wsdl_url], work, "wsdl")
    compiled = run_tool(
        ["mcs", "-nologo", "-r:System.Web.Services", "-r:System.Xml", f"-out:{work / 'Client.exe'}",
         str(proxy), str(SOURCE)],
        work, "mcs",
    )
    return work / "Client.exe", proxy.read_text(), generated.stdout + generated.stderr + compiled.stdout + compiled.stderr


@pytest.fixture(scope="module")
def land_key(deployment) -> str:
    """A Land listing of source a: no bedrooms, so its optional value types are absent."""
    with deployment.sessions()() as session:
        return session.scalars(
            select(Listing.listing_key)
            .where(Listing.source_id == "a", Listing.property_type == "Land", Listing.removed_at.is_(None))
            .order_by(Listing.listing_key).limit(1)
        ).one()


@pytest.fixture(scope="module")
def mono_run(mono_build, endpoint, forbidden_key, land_key):
    """The client's output lines, grouped by their first field."""
    executable, _, _ = mono_build
    done = run_tool(["mono", "--debug", str(executable), endpoint, *CONSUMER, forbidden_key, land_key],
               executable.parent, "the Mono client")
    return tab_lines(done)


def test_every_call_carries_basic_credentials_without_a_challenge_round_trip(mono_run, deployment):
    """Mono sends Basic with the first request already (no 401 first), and every call reaches
    the service exactly once: each POST in the access log is one of the client's calls."""
    log = deployment.log_path.read_text().splitlines()
    statuses = [line.split('"')[2].split()[0] for line in log
                if '"POST /soap ' in line and "MS Web Services Client Protocol" in line]
    calls = len(mono_run["page"]) + len(mono_run["minprice"]) + 2 * len(mono_run["listing"]) + 1 + len(mono_run["fault"])
    assert "401" not in statuses
    assert (statuses.count("200"), statuses.count("500")) == (calls - len(EXPECTED_FAULTS), len(EXPECTED_FAULTS))


def listing_fields(mono_run, role: str) -> dict[str, str]:
    [fields] = [rest for first, *rest in mono_run["listing"] if first == role]
    return dict(field.split("=", 1) for field in fields)


def utc_text(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_wsdl_and_mcs_accept_the_contract_without_warnings(mono_build):
    _, _, output = mono_build
    complaints = [line for line in output.splitlines() if "warning" in line.lower() or "error" in line.lower()]
    assert not complaints, output


def test_the_proxy_has_the_four_operations_and_specified_flags_for_optional_value_types(mono_build):
    _, proxy, _ = mono_build
    for operation in ("SearchListings", "GetListing", "GetListingImages", "GetFeedStatus"):
        assert f"public {operation}Response {operation}(" in proxy
    assert "ParameterStyle=System.Web.Services.Protocols.SoapParameterStyle.Bare" in proxy
    for flag in ("MinPriceSpecified", "PageSizeSpecified", "BedroomsTotalSpecified", "ModificationTimestampSpecified"):
        assert f"public bool {flag}" in proxy
    assert "public ListingSummary[] Listings" in proxy  # the *Array wrapper types become arrays


def test_mono_pages_through_every_active_listing_of_the_entitled_source_once(mono_run, active_keys, deployment):
    assert mono_run["end"] == [["True"]], "NextPageToken never went away"
    rows = mono_run["row"]
    keys = [(source, key) for source, key, *_ in rows]
    assert len(keys) == len(set(keys)), "a listing came back twice"
    assert {source for source, _ in keys} == {"a"}
    assert {key for _, key in keys} == active_keys
    pages = mono_run["page"]
    assert {int(total) for _, _, total in pages} == {len(active_keys)}
    sizes = [int(size) for _, size, _ in pages]
    assert sizes[:-1] == [50] * (len(sizes) - 1) and 1 <= sizes[-1] <= 50
    with deployment.sessions()() as session:
        stored = {
            row.listing_key: row for row in session.scalars(
                select(Listing).where(Listing.source_id == "a", Listing.listing_key.in_(active_keys))
            )
        }
    for _, key, status, price, photos, modified in rows:
        row = stored[key]
        assert (status, Decimal(price), int(photos), modified) == (
            row.standard_status, row.list_price, row.photos_count, utc_text(row.modification_timestamp)
        ), key


def test_a_value_type_filter_is_sent_only_with_its_specified_flag(mono_run, deployment):
    totals = {flag: int(total) for flag, total in mono_run["minprice"]}
    with deployment.sessions()() as session:
        visible = select(func.count()).select_from(Listing).where(Listing.source_id == "a", Listing.removed_at.is_(None))
        everything = session.scalar(visible)
        filtered = session.scalar(visible.where(Listing.list_price >= 300000))
    assert 0 < filtered < everything
    assert totals == {"specified": filtered, "unspecified": everything}


def test_get_listing_and_its_images_match_the_database(mono_run, deployment):
    got = listing_fields(mono_run, "photos")
    with deployment.sessions()() as session:
        row = session.scalars(
            select(Listing).where(Listing.source_id == got["SourceId"], Listing.listing_key == got["ListingKey"])
        ).one()
        orders = [m.order for m in row.media]
    assert got["ListingId"] == row.listing_id and got["StandardStatus"] == row.standard_status
    assert (got["City"], got["PostalCode"], got["PropertyType"]) == (row.city, row.postal_code, row.property_type)
    assert Decimal(got["ListPrice"]) == row.list_price
    assert float(got["Latitude"]) == row.latitude
    assert int(got["PhotosCount"]) == row.photos_count >= 1
    assert got["ModificationTimestamp"] == utc_text(row.modification_timestamp)
    images = [rest for key, *rest in mono_run["image"] if key == row.listing_key]
    assert [int(order) for order, _, _ in images] == orders == list(range(1, row.photos_count + 1))
    assert [url for _, url, _ in images] == [m.url for m in row.media]
    assert {specified for _, _, specified in images} == {"False"}  # URL-template photos have no size


def test_absent_optional_value_types_read_as_unspecified(mono_run, deployment, land_key):
    got = listing_fields(mono_run, "land")
    with deployment.sessions()() as session:
        row = session.scalars(select(Listing).where(Listing.source_id == "a", Listing.listing_key == land_key)).one()
    assert row.bedrooms_total is None and row.year_built is None and row.living_area is None
    assert (got["ListingKey"], got["PropertyType"]) == (land_key, "Land")
    assert (got["BedroomsTotal"], got["YearBuilt"], got["LivingArea"]) == ("-", "-", "-")
    assert Decimal(got["LotSizeAcres"]) == row.lot_size_acres
    assert got["UnitNumber"] == (row.unit_number or "-")


def test_utc_timestamps_arrive_as_local_time(mono_run):
    assert listing_fields(mono_run, "photos")["ModificationTimestampKind"] == "Local"


def test_feed_status_shows_only_the_entitled_source(mono_run, deployment):
    with deployment.sessions()() as session:
        count = session.scalar(
            select(func.count()).select_from(Listing).where(Listing.source_id == "a", Listing.removed_at.is_(None))
        )
    assert mono_run["feed"] == [["a", str(count), "True", "False"]]


@pytest.mark.parametrize("case", sorted(EXPECTED_FAULTS))
def test_each_declared_fault_is_caught_as_a_soap_exception_with_its_code_and_detail(mono_run, case):
    faults = {name: rest for name, *rest in mono_run["fault"]}
    assert case in faults, f"the Mono client did not report {case}; stderr:\n{mono_run['stderr'][-3000:]}"
    kind, code_namespace, code_name, detail, detail_text, message = faults[case]
    name = EXPECTED_FAULTS[case]
    assert kind == "System.Web.Services.Protocols.SoapException", f"{case}: {kind}: {message}"
    assert (code_namespace, code_name) == (SOAP_ENV, f"Client.{name}")
    assert detail == f"{{urn:mlsfeeds:soap:1}}{name}"
    assert detail_text == message != ""
