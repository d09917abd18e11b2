"""Parsers stream: memory stays flat however large the feed.

Two measurements, because neither sees everything cheaply:

- a ~100 MB file of each format is parsed in a fresh interpreter, and its peak resident size may
  grow by no more than a few MB while it does (this counts lxml's and ijson's C allocations, which
  tracemalloc cannot see);
- a ~5 MB file is parsed here under tracemalloc, whose peak (every Python object alive at once)
  must stay below 2 MB. tracemalloc slows allocation-heavy code about fivefold, hence the smaller
  file: a parser that kept its records would still show tens of MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from pipeline.parsers import parser_for

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000
SPECS = {
    "delimited": {"format": "delimited", "delimiter": "|"},
    "xml": {"format": "xml", "record": "Listing"},
    "json": {"format": "json", "record_path": "data.listings"},
}
REMARKS = "Welcome to this single family residence: new roof, screened pool, two-car garage, walk to schools."

MEASURE = """
import json, resource, sys
from pipeline.parsers import parser_for
fmt, path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
parser = parser_for(fmt)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(path, "rb") as stream:
    count = sum(1 for _ in parser.records(stream, spec))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"count": count, "growth_kb": after - before}))
"""


def write_delimited(path: Path, size: int) -> int:
    columns = ["ListingKey", "Status", "ListPrice", "Beds", "Baths", "Street", "City", "Zip", "Lat", "Lon", "Remarks",
               "Agent", "Modified"]
    return _write(path, "|".join(columns) + "\r\n", "", size, lambda n: "|".join([
        f"{n:012d}", "Active", str(100_000 + n), str(n % 6), "2", f"{n % 9999} Maple Ave", "Naples", "34102",
        "26.123456", "-81.765432", f'"{REMARKS} #{n}"', "Maria Garcia", "2026-05-01T12:00:00Z"]) + "\r\n")


def write_xml(path: Path, size: int) -> int:
    def record(n: int) -> str:
        return (f'<Listing id="{n}"><ListingKey>{n:012d}</ListingKey><Status>Active</Status><Price>{100_000 + n}</Price>'
                f'<Address><Street>{n % 9999} Maple Ave</Street><City>Naples</City><Zip>34102</Zip></Address>'
                f"<Remarks>{REMARKS}</Remarks><Photos><Photo>https://p.example/{n}/1.jpg</Photo>"
                f"<Photo>https://p.example/{n}/2.jpg</Photo></Photos></Listing>\n")
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    head = f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{soap}"><soap:Body><Feed>\n'
    return _write(path, head, "</Feed></soap:Body></soap:Envelope>\n", size, record)


def write_json(path: Path, size: int) -> int:
    def record(n: int) -> str:
        listing = {"ListingKey": f"{n:012d}", "StandardStatus": "Active", "ListPrice": 100_000 + n, "Latitude": 26.12,
                   "PublicRemarks": REMARKS, "Media": [{"Order": 1, "MediaURL": f"https://p.example/{n}/1.jpg"}]}
        return ("," if n else "") + json.dumps(listing)
    return _write(path, '{"meta": {"count": null}, "data": {"listings": [', "]}}", size, record)


def _write(path: Path, head: str, tail: str, size: int, record) -> int:
    """Stream records into ``path`` until it holds about ``size`` bytes; returns how many.

    One block of varied records is written over and over: the parsers do the same work on it, and
    writing 100 MB costs a fraction of a second.
    """
    block = "".join(record(n) for n in range(1, 1001))
    count, written = 0, 0
    with path.open("w", encoding="utf-8", newline="") as out:
        written += out.write(head + record(0))
        count += 1
        while written < size:
            written += out.write(block)
            count += 1000
        out.write(tail)
    return count


WRITERS = {"delimited": write_delimited, "xml": write_xml, "json": write_json}


@pytest.mark.parametrize("fmt", ["delimited", "xml", "json"])
def test_parsing_a_100_mb_feed_grows_resident_memory_by_a_few_mb_at_most(tmp_path, fmt):
    path = tmp_path / f"feed.{fmt}"
    count = WRITERS[fmt](path, 100 * MB)
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, fmt, str(path), json.dumps(SPECS[fmt])],
        cwd=ROOT, capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    measured = json.loads(result.stdout)
    assert measured["count"] == count
    assert measured["growth_kb"] < 16_000, f"{fmt}: resident memory grew by {measured['growth_kb']} KB"


@pytest.mark.parametrize("fmt", ["delimited", "xml", "json"])
def test_parsing_holds_no_more_than_a_record_of_python_objects(tmp_path, fmt):
    path = tmp_path / f"feed.{fmt}"
    count = WRITERS[fmt](path, 5 * MB)
    parser = parser_for(fmt)
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            parsed = sum(1 for _ in parser.records(stream, SPECS[fmt]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed == count
    assert peak < 2 * MB, f"{fmt}: tracemalloc peak {peak:,} bytes"
