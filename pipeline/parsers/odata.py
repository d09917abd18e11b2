"""RESO Web API (OData) pages: ``{"@odata.context": ..., "value": [...], "@odata.nextLink": ...}``.

One payload file is one page, as the reso connector wrote it. The parser yields each object of
``value`` as sent, expanded navigation properties included (``"Media": [{...}, ...]`` stays a
list of objects); paging (``@odata.nextLink``) is the connector's business and is ignored here.
The page is streamed like any JSON document (pipeline.parsers.json), so even a huge page holds one
record in memory. No spec keys. An OData error body (``{"error": {"code", "message"}}``), a page
without ``value`` or malformed JSON raises FeedFormatError.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from pipeline.parsers.json import array_records


class ODataParser:
    """Streams the records of one OData page."""

    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return array_records(stream, "value", 'the OData page\'s "value"')


PARSER = ODataParser()
