"""Java JAX-WS (the RI's wsimport) against the live service, over HTTP Basic.

wsimport generates the client from the running service's WSDL into a temporary directory,
javac compiles it together with tests/contract/java/Client.java, and the client's
tab-separated output is checked here against the database. Every declared fault must reach
Java as its generated exception class (Forbidden_Exception, ...), which is what JAX-WS users
catch.

The JAX-WS jars come from Debian's ``jaxws`` package (/usr/share/java); set
MLSFEEDS_JAXWS_CLASSPATH to use others.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import Listing
from tests.support.clients import EXPECTED_FAULTS, SOAP_ENV, run_tool, tab_lines
from tests.support.soap import CONSUMER

SOURCE = Path(__file__).parent / "java" / "Client.java"
PACKAGE = "mlsfeeds.client"
JAR_DIRS = [Path("/usr/share/java"), Path("/usr/share/jaxws/lib")]
# jaxws-rt.jar's manifest Class-Path pulls in the rest (jaxb-impl, saaj-impl, stax-ex, ...);
# the API jars are listed too so that javac sees javax.xml.ws, javax.jws and javax.xml.bind.
JARS = ["jaxws-rt.jar", "jaxws-api.jar", "jaxb-api.jar", "jws-api.jar", "javax.xml.soap-api.jar"]



def jaxws_classpath() -> tuple[str | None, str | None]:
    """(classpath, None), or (None, why Java cannot run here)."""
    missing = [tool for tool in ("wsimport", "javac", "java") if shutil.which(tool) is None]
    if missing:
        return None, f"{', '.join(missing)} not found (apt-get install jaxws default-jdk-headless; see .ci/install-clients.sh)"
    if configured := os.environ.get("MLSFEEDS_JAXWS_CLASSPATH"):
        return configured, None
    found = []
    for jar in JARS:
        path = next((d / jar for d in JAR_DIRS if (d / jar).exists()), None)
        if path is None:
            return None, f"{jar} not found in {', '.join(map(str, JAR_DIRS))}; install jaxws or set MLSFEEDS_JAXWS_CLASSPATH"
        found.append(str(path))
    return os.pathsep.join(found), None


CLASSPATH, JAVA_MISSING = jaxws_classpath()
pytestmark = [pytest.mark.java, pytest.mark.skipif(JAVA_MISSING is not None, reason=str(JAVA_MISSING))]


@pytest.fixture(scope="module")
def java_build(deployment, tmp_path_factory):
    """wsimport and javac: the directory of compiled classes, the classpath, wsimport's output."""
    classpath = CLASSPATH
    work = tmp_path_factory.mktemp("jaxws")
    src, classes = work / "src", work / "classes"
    src.mkdir()
    classes.mkdir()
    wsimport = run_tool(
        ["wsimport", "-Xnocompile", "-keep", "-s", str(src), "-d", str(src), "-p", PACKAGE, deployment.wsdl_url],
        work, "wsimport",
    )
    sources = sorted(str(p) for p in src.rglob("*.java")) + [str(SOURCE)]
    run_tool(["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(classes), "-cp", classpath, *sources], work, "javac")
    return classes, classpath, wsimport.stdout + wsimport.stderr


@pytest.fixture(scope="module")
def java_run(java_build, deployment, endpoint, forbidden_key):
    """The client's output lines, grouped by their first field."""
    classes, classpath, _ = java_build
    done = run_tool(
        ["java", "-cp", os.pathsep.join([str(classes), classpath]), "Client",
         deployment.wsdl_url, endpoint, *CONSUMER, forbidden_key],
        classes, "the Java client",
    )
    return tab_lines(done)


def test_wsimport_accepts_the_wsdl_without_warnings(java_build):
    _, _, output = java_build
    complaints = [line for line in output.splitlines() if "[WARNING]" in line or "[ERROR]" in line]
    assert not complaints, "\n".join(complaints)


def test_wsimport_generates_a_typed_exception_per_declared_fault(java_build):
    classes, _, _ = java_build
    generated = {p.stem for p in (classes.parent / "src" / PACKAGE.replace(".", "/")).glob("*_Exception.java")}
    assert generated == {f"{name}_Exception" for name in set(EXPECTED_FAULTS.values())}


def test_java_pages_through_every_active_listing_of_the_entitled_source_once(java_run, active_keys):
    assert java_run["end"] == [["true"]], "NextPageToken never went away"
    rows = java_run["row"]
    keys = [(source, key) for source, key, _ in rows]
    assert len(keys) == len(set(keys)), "a listing came back twice"
    assert {source for source, _ in keys} == {"a"}
    assert {key for _, key in keys} == active_keys
    assert {status for _, _, status in rows} == {"Active"}
    pages = java_run["page"]
    assert {int(total) for _, _, total in pages} == {len(active_keys)}
    sizes = [int(size) for _, size, _ in pages]
    assert sizes[:-1] == [50] * (len(sizes) - 1) and 1 <= sizes[-1] <= 50


def test_get_listing_and_its_images_match_the_database(java_run, deployment):
    [[source, key, listing_id, photos, price]] = java_run["listing"]
    with deployment.sessions()() as session:
        row = session.scalars(select(Listing).where(Listing.source_id == source, Listing.listing_key == key)).one()
        orders = [m.order for m in row.media]
    assert listing_id == row.listing_id
    assert int(photos) == row.photos_count >= 1
    assert price == f"{row.list_price:.2f}"
    images = java_run["image"]
    assert [int(order) for order, _ in images] == orders == list(range(1, row.photos_count + 1))
    assert images[0][1].endswith(f"/a/{row.listing_id}/1.jpg")


def test_feed_status_shows_only_the_entitled_source(java_run, deployment):
    with deployment.sessions()() as session:
        count = len(session.scalars(select(Listing.id).where(Listing.source_id == "a", Listing.removed_at.is_(None))).all())
    assert java_run["feed"] == [["a", str(count)]]


@pytest.mark.parametrize("case", sorted(EXPECTED_FAULTS))
def test_each_declared_fault_is_caught_as_its_generated_exception(java_run, case):
    faults = {name: rest for name, *rest in java_run["fault"]}
    assert case in faults, f"the Java client did not report {case}; stderr:\n{java_run['stderr'][-3000:]}"
    kind, faultcode, message = faults[case]
    name = EXPECTED_FAULTS[case]
    assert kind == f"{name}_Exception", f"{case}: {kind}: {message}"
    assert faultcode == f"{{{SOAP_ENV}}}Client.{name}"
    assert message
