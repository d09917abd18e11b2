"""The COMPACT and COMPACT-DECODED formats of RETS 1.7.2 (section 7.4.2), read as a stream.

A search reply is a ``<RETS>`` envelope holding, in this order: ``<COUNT Records="n"/>``,
``<DELIMITER value="09"/>``, ``<COLUMNS>``, one ``<DATA>`` per record, ``<MAXROWS/>`` when more
records exist than were sent, and perhaps ``<RETS-STATUS>``. COLUMNS and DATA are lines of
values separated by the delimiter (two hex digits; tab when the element is missing), normally
with one delimiter before the first and after the last value; some servers drop one or both.
The framing is learned from COLUMNS (whose names are never empty) and applied to every DATA.

COMPACT cannot tell an empty string from a missing value: both are read as ``None``.

The reader holds one DATA element at a time (lxml ``iterparse``, each element cleared and
dropped once read), so memory stays flat however large the reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from lxml import etree

from pipeline.connectors.rets.replies import (
    MAXIMUM_RECORDS_EXCEEDED,
    NO_RECORDS,
    Reply,
    error_for,
    looks_like_html,
)
from pipeline.errors import FeedFormatError

DEFAULT_DELIMITER = "\t"
KNOWN = frozenset({"COUNT", "DELIMITER", "COLUMNS", "DATA", "MAXROWS", "RETS-STATUS"})
Row = list[str | None]


def delimiter_from(value: str | None, where: str = "DELIMITER") -> str:
    """The character a ``<DELIMITER value="..">`` names: two hex digits (``09`` tab, ``7C`` pipe)."""
    if value is None or not value.strip():
        return DEFAULT_DELIMITER
    try:
        character = chr(int(value.strip(), 16))
    except ValueError:
        raise FeedFormatError(f"DELIMITER value {value!r} is not a hex character code", where=where) from None
    if character in "<&" or character.isalnum():
        raise FeedFormatError(f"DELIMITER value {value!r} cannot separate values", where=where)
    return character


@dataclass(frozen=True)
class Framing:
    """How a COLUMNS/DATA line is laid out: its delimiter and whether it wraps the values."""

    delimiter: str
    leading: bool = True
    trailing: bool = True

    @classmethod
    def learn(cls, columns_text: str, delimiter: str) -> "Framing":
        """The framing of ``columns_text`` (a COLUMNS line, whose names are never empty)."""
        return cls(delimiter, columns_text.startswith(delimiter), columns_text.endswith(delimiter))

    def split(self, text: str | None) -> list[str]:
        """The values of one line, without its wrapping delimiters."""
        text = text or ""
        if self.leading and text.startswith(self.delimiter):
            text = text[1:]
        if self.trailing and text.endswith(self.delimiter):
            text = text[:-1]
        return text.split(self.delimiter)

    def columns(self, text: str | None) -> list[str]:
        return [name.strip() for name in self.split(text)]

    def row(self, text: str | None) -> Row:
        return [value if value != "" else None for value in self.split(text)]


class CompactReader:
    """Reads one COMPACT search reply from a binary stream.

    Iterate ``rows()`` (lists of values, in ``columns`` order) or ``records()`` (dicts). The
    header and trailer facts are attributes, filled in as the stream is read: ``reply``,
    ``count``, ``delimiter``, ``columns``, ``maxrows``, ``status`` and ``rows_read``; they are
    complete once iteration ends.

    A non-zero ReplyCode raises the mapped pipeline error (see ``replies``), except 20201 (no
    records: nothing is yielded) and 20208 (rows, with more to come, like ``<MAXROWS/>``).
    """

    def __init__(self, stream: IO[bytes], *, where: str = "COMPACT reply", encoding: str | None = None):
        self._stream, self._where, self._encoding = _Head(stream), where, encoding
        self.reply: Reply | None = None
        self.status: Reply | None = None
        self.count: int | None = None
        self.delimiter: str = DEFAULT_DELIMITER
        self.columns: list[str] | None = None
        self.maxrows = False
        self.rows_read = 0
        self._framing: Framing | None = None

    @property
    def empty(self) -> bool:
        """True when the server said 20201 (no records found)."""
        return self.reply is not None and self.reply.code == NO_RECORDS

    def records(self) -> Iterator[dict[str, str | None]]:
        """One dict per DATA line: column name -> value (None for an empty value)."""
        for values in self.rows():
            yield dict(zip(self.columns or (), values))

    def rows(self) -> Iterator[Row]:
        """One list of values per DATA line."""
        try:
            yield from self._events()
        except etree.XMLSyntaxError as exc:
            raise FeedFormatError(self._unreadable(exc), where=self._where, line=exc.lineno or None) from exc
        if self.reply is None:
            raise FeedFormatError("empty reply where RETS XML was expected", where=self._where)

    def _unreadable(self, exc: etree.XMLSyntaxError) -> str:
        if self.reply is not None:
            return f"not well-formed XML: {exc.msg}"
        if looks_like_html(self._stream.head):  # a login wall or an error page, not a reply
            return "the server sent an HTML page where RETS XML was expected"
        return f"empty reply, or not XML ({exc.msg})"

    def _events(self) -> Iterator[Row]:
        events = etree.iterparse(
            self._stream, events=("start", "end"), encoding=self._encoding,
            resolve_entities=False, no_network=True, huge_tree=True,
        )
        for event, element in events:
            if event == "start":
                if self.reply is None and not self._open(element):
                    return
                continue
            if element.tag == "DATA":
                yield self._data(element)
            elif element.getparent() is not None and element.getparent().getparent() is None:
                self._other(element)
            _forget(element)

    def _open(self, root: etree._Element) -> bool:
        """Check the envelope; False when there is nothing to read (20201)."""
        if root.tag != "RETS":
            kind = "an HTML page" if str(root.tag).lower() == "html" else f"<{root.tag}>"
            raise FeedFormatError(f"expected a <RETS> reply, got {kind}", where=self._where)
        code_text = (root.get("ReplyCode") or "").strip()
        if not code_text.lstrip("-").isdigit():
            raise FeedFormatError(f"<RETS> has no numeric ReplyCode (got {code_text!r})", where=self._where)
        self.reply = Reply(int(code_text), root.get("ReplyText", "").strip())
        if self.reply.code == NO_RECORDS:
            self.count = 0
            return False
        if self.reply.code == MAXIMUM_RECORDS_EXCEEDED:
            self.maxrows = True
        elif self.reply.code != 0:
            raise error_for(self.reply.code, self.reply.text, self._where)
        return True

    def _other(self, element: etree._Element) -> None:
        tag = element.tag
        if tag == "COUNT":
            self.count = _records_attribute(element, self._where)
        elif tag == "DELIMITER":
            self.delimiter = delimiter_from(element.get("value"), self._where)
        elif tag == "COLUMNS":
            self._framing = Framing.learn(element.text or "", self.delimiter)
            self.columns = self._framing.columns(element.text)
            if not any(self.columns):
                raise FeedFormatError("empty COLUMNS", where=self._where, line=element.sourceline)
        elif tag == "MAXROWS":
            self.maxrows = True
        elif tag == "RETS-STATUS":
            self._status(element)
        elif tag not in KNOWN:
            raise FeedFormatError(
                f"unexpected <{etree.QName(tag).localname}> in a COMPACT reply (another Format?)",
                where=self._where, line=element.sourceline,
            )

    def _status(self, element: etree._Element) -> None:
        code_text = (element.get("ReplyCode") or "0").strip()
        self.status = Reply(int(code_text) if code_text.isdigit() else 0, element.get("ReplyText", "").strip())
        if self.status.code == MAXIMUM_RECORDS_EXCEEDED:
            self.maxrows = True

    def _data(self, element: etree._Element) -> Row:
        if self._framing is None or self.columns is None:
            raise FeedFormatError("DATA before COLUMNS", where=self._where, line=element.sourceline)
        values = self._framing.row(element.text)
        self.rows_read += 1
        if len(values) != len(self.columns):
            raise FeedFormatError(
                f"DATA row {self.rows_read} has {len(values)} values for {len(self.columns)} columns",
                where=self._where, line=element.sourceline,
            )
        return values


class _Head:
    """A binary stream that remembers its first bytes, to say what an unreadable reply was."""

    SIZE = 512

    def __init__(self, stream: IO[bytes]):
        self._stream, self.head = stream, b""

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if len(self.head) < self.SIZE:
            self.head += data[: self.SIZE - len(self.head)]
        return data


def _records_attribute(element: etree._Element, where: str) -> int:
    raw = (element.get("Records") or "").strip()
    if not raw.isdigit():
        raise FeedFormatError(f"COUNT Records={raw!r} is not a number", where=where, line=element.sourceline)
    return int(raw)


def _forget(element: etree._Element) -> None:
    """Drop an element once read, and the siblings before it, so the tree never grows."""
    parent = element.getparent()
    if parent is None:
        return
    element.clear(keep_tail=False)
    while element.getprevious() is not None:
        del parent[0]
