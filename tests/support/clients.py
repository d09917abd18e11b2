"""Running a foreign SOAP client's toolchain (wsimport/javac/java, wsdl/mcs/mono) in tests."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
# The faults each client provokes (case -> the declared fault it must arrive as): Client.<name>
# with a <name> detail element.
EXPECTED_FAULTS = {
    "Forbidden.GetListing": "Forbidden",
    "Forbidden.GetFeedStatus": "Forbidden",
    "Forbidden.SearchListings": "Forbidden",
    "NotFound.GetListing": "NotFound",
    "NotFound.GetListingImages": "NotFound",
    "InvalidArgument.SearchListings": "InvalidArgument",
    "AuthenticationFailed.GetFeedStatus": "AuthenticationFailed",
}


def run_tool(command: list[str], cwd: Path, what: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``command``; a non-zero exit fails the test with the command and both outputs' tails."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{what} failed ({done.returncode}): {' '.join(command)[:500]}\n"
        f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    )
    return done


def tab_lines(done: subprocess.CompletedProcess) -> dict[str, list]:
    """A client's tab-separated output lines grouped by their first field (plus its stderr)."""
    lines: dict[str, list] = defaultdict(list)
    for line in done.stdout.splitlines():
        kind, *fields = line.split("\t")
        lines[kind].append(fields)
    lines["stderr"] = done.stderr
    return lines
