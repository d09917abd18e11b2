"""RETS COMPACT / COMPACT-DECODED search replies (parse format ``rets-compact``).

Each stored page of a RETS download is one search reply body. ``records`` yields one dict per
``<DATA>`` line: the server's column name -> the value as text, with ``None`` for an empty
value (COMPACT cannot tell an empty string from a missing one). COMPACT-DECODED values are the
lookups' long values ("Active"), COMPACT ones the codes ("A"): the source's ``[values]`` maps
turn codes into RESO values.

Parse spec keys: ``encoding`` (none: what the XML declares, else UTF-8) overrides the reply's
character set, for servers that send Windows-1252 without saying so; any encoding Python knows
(:mod:`pipeline.parsers.encoding`).

The reading itself (streaming, flat memory, delimiter and framing quirks, reply codes) lives in
:mod:`pipeline.connectors.rets.compact`, shared with the connector's paging. A reply whose code
is an error raises the mapped pipeline error; 20201 (no records found) yields nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from pipeline.connectors.rets.compact import CompactReader
from pipeline.parsers.encoding import xml_input


class RetsCompactParser:
    """The Parser of RETS COMPACT replies."""

    def records(self, stream: BinaryIO, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield one record per DATA line of the reply in ``stream``."""
        where = _where(stream)
        stream, encoding = xml_input(stream, (spec or {}).get("encoding") or None)
        yield from CompactReader(stream, where=where, encoding=encoding).records()


def _where(stream: BinaryIO) -> str:
    name = getattr(stream, "name", None)
    return str(name) if isinstance(name, str) else "RETS COMPACT reply"


PARSER = RetsCompactParser()
