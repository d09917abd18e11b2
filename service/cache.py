"""Per-worker caches of search counts and answers, exact by construction.

Every key includes the *data generation signature* of the sources the search covers
(Source.data_generation: database triggers bump it in the same transaction that changes a
listing), read by the request itself before it reads any listing. A change that commits makes
every later request compute a new key, so nothing cached before it can be served after it;
workers and hosts need not tell each other anything.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")


class Lru(Generic[V]):
    """A bounded map that forgets the least recently used entries first, by count and by size."""

    def __init__(self, max_entries: int, max_bytes: int | None = None):
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = Lock()

    def get(self, key) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value: V) -> None:
        size = _size(value)
        if self._max_bytes is not None and size > self._max_bytes // 8:
            return  # one answer may not crowd out the rest
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= _size(old) if old is not None else 0
            self._items[key] = value
            self._bytes += size
            while len(self._items) > self._max_entries or (self._max_bytes and self._bytes > self._max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= _size(dropped)

    def __len__(self) -> int:
        return len(self._items)


def _size(value) -> int:
    """Bytes of an answer (an encoded payload, or a tuple that starts with one); 0 otherwise."""
    if isinstance(value, tuple) and value and isinstance(value[0], bytes):
        return len(value[0])
    return len(value) if isinstance(value, (bytes, bytearray)) else 0


class CountCache(Lru[int]):
    """Exact search counts, by (query, sources, data generations)."""

    def __init__(self, max_entries: int = 4096):
        super().__init__(max_entries)


class AnswerCache(Lru[tuple]):
    """Answers of searches, (encoded payload, records), by (arguments, sources, data generations)."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        super().__init__(max_entries=100_000, max_bytes=max_bytes)
