"""PHP's SoapClient (ext-soap, WSDL mode, HTTP Basic) against the live service.

tests/contract/php/client.php does the calling and prints a JSON summary; this module runs it
once and checks the summary against the database. ext-soap keeps a faultcode as the lexical
QName it received (``soap11env:Client.Forbidden``), so codes are compared without the prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import Listing
from tests.support.soap import CONSUMER

SCRIPT = Path(__file__).parent / "php" / "client.php"

EXPECTED_FAULTS = {
    "Forbidden.GetListing": "Client.Forbidden",
    "Forbidden.SearchListings": "Client.Forbidden",
    "Forbidden.GetFeedStatus": "Client.Forbidden",
    "NotFound.GetListing": "Client.NotFound",
    "NotFound.GetListingImages": "Client.NotFound",
    "InvalidArgument.SearchListings": "Client.InvalidArgument",
    "AuthenticationFailed.GetFeedStatus": "Client.AuthenticationFailed",
}


def php_with_soap() -> str | None:
    """Why PHP cannot run here, or None when it can."""
    php = shutil.which("php")
    if php is None:
        return "php is not installed (apt-get install php8.2-cli php8.2-soap; see .ci/install-clients.sh)"
    try:
        modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{php} -m` failed: {exc}"
    if "soap" not in modules:
        return f"{php} lacks the soap extension (apt-get install php8.2-soap; see .ci/install-clients.sh)"
    return None


PHP_MISSING = php_with_soap()
pytestmark = [pytest.mark.php, pytest.mark.skipif(PHP_MISSING is not None, reason=str(PHP_MISSING))]


@pytest.fixture(scope="module", params=["plain", "gzip"])
def php_run(request, deployment, endpoint, forbidden_key):
    """client.php's summary: as PHP's defaults send requests, and gzipped (SOAP_COMPRESSION_GZIP)."""
    command = ["php", "-d", "soap.wsdl_cache_enabled=0", "-d", "display_errors=stderr", str(SCRIPT),
               deployment.wsdl_url, endpoint, *CONSUMER, forbidden_key]
    env = {**os.environ, "MLSFEEDS_PHP_COMPRESSION": request.param}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"php exited with {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"client.php did not print JSON:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
    summary["stderr"] = done.stderr
    summary["compression"] = request.param
    return summary


def test_a_gzip_client_sends_its_requests_gzipped(php_run):
    gzipped = "content-encoding: gzip" in php_run["request_headers"].lower()
    assert gzipped == (php_run["compression"] == "gzip"), php_run["request_headers"]


def test_php_talks_to_the_service_without_errors_or_warnings(php_run):
    assert php_run["errors"] == [], json.dumps({k: php_run.get(k) for k in ("errors", "last_request", "last_response")}, indent=1)
    assert php_run["warnings"] == []
    assert php_run["stderr"].strip() == ""


def test_php_sees_the_four_operations_as_wrapped_document_literal(php_run):
    assert sorted(php_run["functions"]) == sorted(
        f"{name}Response {name}({name} ${name})"
        for name in ("SearchListings", "GetListing", "GetListingImages", "GetFeedStatus")
    )


def test_paging_through_active_listings_returns_each_of_the_entitled_source_once(php_run, active_keys):
    search = php_run["search"]
    assert search["ended"], "NextPageToken never went away"
    keys = [(source, key) for source, key, _, _ in search["listings"]]
    assert len(keys) == len(set(keys)), "a listing came back twice"
    assert {source for source, _ in keys} == {"a"}
    assert {key for _, key in keys} == active_keys
    assert {status for _, _, status, _ in search["listings"]} == {"Active"}
    assert set(search["totals"]) == {len(active_keys)}
    assert search["pages"][:-1] == [50] * (len(search["pages"]) - 1) and 1 <= search["pages"][-1] <= 50


def test_get_listing_and_its_images_match_the_database(php_run, deployment):
    listing = php_run["listing"]
    with deployment.sessions()() as session:
        row = session.scalars(
            select(Listing).where(Listing.source_id == listing["SourceId"], Listing.listing_key == listing["ListingKey"])
        ).one()
        media = [m.order for m in row.media]
    assert listing["ListingId"] == row.listing_id
    assert listing["StandardStatus"] == row.standard_status
    assert listing["City"] == row.city and listing["PostalCode"] == row.postal_code
    assert listing["ListPrice"] is not None and float(listing["ListPrice"]) == float(row.list_price)
    assert listing["PhotosCount"] == row.photos_count >= 1
    images = php_run["images"]
    assert [i["Order"] for i in images] == media == list(range(1, row.photos_count + 1))
    assert images[0]["Url"].endswith(f"/a/{row.listing_id}/1.jpg")


def test_feed_status_shows_only_the_entitled_source(php_run, deployment):
    with deployment.sessions()() as session:
        count = len(session.scalars(select(Listing.id).where(Listing.source_id == "a", Listing.removed_at.is_(None))).all())
    assert php_run["feeds"] == [{"SourceId": "a", "ListingCount": count, "Enabled": True}]


@pytest.mark.parametrize("case", sorted(EXPECTED_FAULTS))
def test_each_declared_fault_reaches_php_as_a_soap_fault_with_its_detail(php_run, case):
    fault = php_run["faults"][case]
    expected = EXPECTED_FAULTS[case]
    assert fault["faultcode"] is not None, f"{case}: {fault['faultstring']}"
    assert fault["faultcode"].rpartition(":")[2] == expected, fault
    name = expected.partition(".")[2]
    # The detail element is the one the WSDL declares, holding the same message.
    assert fault["detail"] == {name: fault["faultstring"]}
