"""GetMetadata (RETS 1.7.2 section 11): resources, classes, fields, lookups.

Enough of the metadata to configure a feed: a resource's KeyField, a class's fields (SystemName,
DataType, Interpretation, LookupName) and a lookup's values (Value -> LongValue), e.g. to write
a source's ``[values]`` map for a COMPACT (not DECODED) feed.

COMPACT is asked for, and two shapes are read, because many servers send STANDARD-XML whatever
was asked: COMPACT holds one ``<METADATA-xxx>`` element per table with COLUMNS and DATA lines,
framed like a search reply; STANDARD-XML wraps the tables in ``<METADATA>`` and gives each row
as an element (``<Resource>``, ``<Class>``, ``<Field>``, ``<LookupType>``...) with one child
element per column. Tables nested in rows (a whole system's metadata) are read as tables too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from pipeline.connectors.rets.compact import Framing, delimiter_from
from pipeline.connectors.rets.replies import NO_METADATA, check, parse_reply
from pipeline.connectors.rets.session import RetsSession
from pipeline.errors import FeedFormatError, FeedNotFound, SourceConfigError


@dataclass(frozen=True)
class MetadataTable:
    """One ``<METADATA-xxx>`` element: its attributes (Resource, Class, Lookup...) and its rows."""

    kind: str
    attributes: dict[str, str]
    rows: list[dict[str, str]] = field(default_factory=list)


def parse_metadata(body: bytes, where: str = "GetMetadata reply") -> list[MetadataTable]:
    """The METADATA tables of a GetMetadata reply, COMPACT or STANDARD-XML (empty for 20503)."""
    reply = check(parse_reply(body, where), where)
    if reply.code == NO_METADATA:
        return []
    root = etree.fromstring(body.strip(), etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                                                          recover=True))
    delimiter = delimiter_from(_delimiter_value(root), where)
    return [_table(element, delimiter, where) for element in root.iter() if _is_table(element)]


def get_metadata(session: RetsSession, metadata_type: str, metadata_id: str = "0") -> list[MetadataTable]:
    """One GetMetadata transaction, e.g. ``("METADATA-TABLE", "Property:RES")``."""
    params = {"Type": metadata_type, "ID": metadata_id, "Format": "COMPACT"}
    where = f"{session.where('GetMetadata')} {metadata_type} {metadata_id}"

    def attempt() -> list[MetadataTable]:
        with session.transaction("GetMetadata", params) as response:
            body = response.content
        return parse_metadata(body, where)

    return session.with_relogin(attempt)


def resources(session: RetsSession) -> dict[str, dict[str, str]]:
    """ResourceID -> its METADATA-RESOURCE row."""
    return {row.get("ResourceID", ""): row for table in get_metadata(session, "METADATA-RESOURCE") for row in table.rows}


def key_field(session: RetsSession, resource: str) -> str:
    """The KeyField of ``resource``; FeedNotFound if the server has no such resource."""
    return _key_field_of(resources(session), resource)


def classes(session: RetsSession, resource: str) -> dict[str, dict[str, str]]:
    """ClassName -> its METADATA-CLASS row."""
    tables = get_metadata(session, "METADATA-CLASS", resource)
    return {row.get("ClassName", ""): row for table in tables for row in table.rows}


def fields(session: RetsSession, resource: str, class_name: str) -> dict[str, dict[str, str]]:
    """SystemName -> its METADATA-TABLE row (DataType, Interpretation, LookupName...)."""
    tables = get_metadata(session, "METADATA-TABLE", f"{resource}:{class_name}")
    return {row.get("SystemName", ""): row for table in tables for row in table.rows}


def lookup_values(session: RetsSession, resource: str, lookup: str) -> dict[str, str]:
    """Value -> LongValue of one lookup (what COMPACT sends -> what COMPACT-DECODED sends)."""
    tables = get_metadata(session, "METADATA-LOOKUP_TYPE", f"{resource}:{lookup}")
    return lookup_map(tables)


def lookup_map(tables: list[MetadataTable]) -> dict[str, str]:
    """Value -> LongValue from METADATA-LOOKUP_TYPE tables."""
    return {row.get("Value", ""): row.get("LongValue", "") for table in tables for row in table.rows}


def key_field_or(session: RetsSession, resource: str, default: str) -> str:
    """The resource's KeyField, or ``default`` when the server cannot give COMPACT metadata.

    An unknown resource still raises FeedNotFound, and auth or transient errors still propagate:
    only a server without usable metadata falls back to the default.
    """
    try:
        rows = resources(session)
    except (SourceConfigError, FeedNotFound, FeedFormatError) as exc:
        session.progress(f"no KeyField from the RETS metadata ({exc}); using {default}")
        return default
    if not any(rows):  # a reply we could not make out says nothing about which resources exist
        session.progress(f"the RETS metadata lists no resources; using KeyField {default}")
        return default
    return _key_field_of(rows, resource)


def _key_field_of(rows: dict[str, dict[str, str]], resource: str) -> str:
    if resource not in rows:
        known = ", ".join(sorted(r for r in rows if r)) or "none"
        raise FeedNotFound(f"the RETS server has no resource {resource!r} (it has {known})")
    value = (rows[resource].get("KeyField") or "").strip()
    if not value:
        raise FeedFormatError(f"METADATA-RESOURCE gives no KeyField for {resource!r}")
    return value


def _is_table(element: etree._Element) -> bool:
    return isinstance(element.tag, str) and element.tag.startswith("METADATA-")


def _table(element: etree._Element, delimiter: str, where: str) -> MetadataTable:
    kind = str(element.tag)
    columns_element = element.find("COLUMNS")
    if columns_element is None:
        return MetadataTable(kind, dict(element.attrib), _standard_rows(element))
    framing = Framing.learn(columns_element.text or "", delimiter)
    columns = framing.columns(columns_element.text)
    rows = []
    for data in element.iterfind("DATA"):
        values = framing.split(data.text)
        if len(values) != len(columns):
            raise FeedFormatError(f"{kind} DATA has {len(values)} values for {len(columns)} columns",
                                  where=where, line=data.sourceline)
        rows.append(dict(zip(columns, values)))
    return MetadataTable(kind, dict(element.attrib), rows)


def _standard_rows(table: etree._Element) -> list[dict[str, str]]:
    """STANDARD-XML rows: each child element that has children is a row, its leaf children the
    columns (a nested METADATA-xxx table is not a column; it is read as a table of its own)."""
    rows = []
    for row in table:
        columns = [c for c in row if isinstance(c.tag, str) and not _is_table(c) and len(c) == 0]
        if columns:
            rows.append({str(c.tag): (c.text or "").strip() for c in columns})
    return rows


def _delimiter_value(root: etree._Element) -> str | None:
    element = root.find("DELIMITER")
    return element.get("value") if element is not None else None
