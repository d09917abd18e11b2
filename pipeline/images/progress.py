"""The migration's progress on stderr: files, bytes, rates and ETA.

On a terminal it is one line redrawn in place (``\\r``) a few times a second; anywhere else
(a log file, CI) a plain line every ``interval`` seconds. Rates are measured over the last
``WINDOW`` seconds, so the ETA follows what the copy does now, not what it did at the start.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

WINDOW = 10.0
TTY_REFRESH = 0.2


class Progress:
    """Counts what the workers finish; only the coordinating thread calls it."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval, self.clock = interval, clock
        self.total, self.listing_done = 0, False
        self.files = self.bytes = 0
        self.counts = {"copied": 0, "skipped": 0, "failed": 0}
        self.started = clock()
        self._samples: deque[tuple[float, int, int]] = deque([(self.started, 0, 0)])
        self._last_draw, self._width = self.started, 0

    def set_total(self, files: int, listing_done: bool) -> None:
        """Files in the manifest still to finish in this run (grows while the archive is listed)."""
        self.total, self.listing_done = files, listing_done

    def add(self, outcome: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def tick(self) -> None:
        """Redraw if it is time to."""
        now = self.clock()
        if now - self._last_draw >= (TTY_REFRESH if self.tty else self.interval):
            self._draw(now)

    def finish(self) -> None:
        self._draw(self.clock())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def rates(self, now: float) -> tuple[float, float]:
        """(files/s, bytes/s) over the last WINDOW seconds."""
        self._samples.append((now, self.files, self.bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
            self._samples.popleft()
        then, files, size = self._samples[0]
        span = now - then
        return ((self.files - files) / span, (self.bytes - size) / span) if span > 0 else (0.0, 0.0)

    def line(self, now: float) -> str:
        files_rate, bytes_rate = self.rates(now)
        total = f"{self.total:,}" + ("" if self.listing_done else "+")
        share = f" {100 * self.files / self.total:3.0f}%" if self.total and self.listing_done else ""
        remaining = max(self.total - self.files, 0)
        eta = format_duration(remaining / files_rate) if files_rate > 0 and self.listing_done else "--:--"
        counts = " ".join(f"{name} {count:,}" for name, count in self.counts.items() if count)
        return (f"{self.files:,}/{total} files{share}  {format_bytes(self.bytes)}  {files_rate:,.0f} files/s  "
                f"{format_bytes(bytes_rate)}/s  ETA {eta}" + (f"  ({counts})" if counts else ""))

    def _draw(self, now: float) -> None:
        self._last_draw = now
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(f"progress: {text}\n")
        self.stream.flush()


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
