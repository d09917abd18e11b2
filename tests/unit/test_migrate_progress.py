"""The migration's progress display (pipeline.images.progress), on a fake clock."""

from __future__ import annotations

import io

from pipeline.images.progress import Progress, format_bytes, format_duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress(tty: bool) -> tuple[Progress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return Progress(stream, tty=tty, interval=10, clock=clock), stream, clock


def copy(p: Progress, files: int, size: int = 50_000) -> None:
    for _ in range(files):
        p.add("copied", size)


def test_log_lines_every_interval_with_rate_and_eta():
    p, stream, clock = progress(tty=False)
    p.set_total(1_000, listing_done=True)
    copy(p, 100)
    clock.now += 5
    p.tick()
    assert stream.getvalue() == ""  # not yet: one line per 10 s in a log
    copy(p, 100)
    clock.now += 5
    p.tick()
    line = stream.getvalue()
    assert line == "progress: 200/1,000 files  20%  10.0 MB  20 files/s  1.0 MB/s  ETA 0:40  (copied 200)\n"


def test_terminal_redraws_one_line_in_place():
    p, stream, clock = progress(tty=True)
    p.set_total(10, listing_done=True)
    for _ in range(3):
        copy(p, 1)
        clock.now += 1
        p.tick()
    p.finish()
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "3/10 files  30%" in text.split("\r")[-1]


def test_total_still_growing_while_listing_has_no_eta():
    p, stream, clock = progress(tty=False)
    p.set_total(5_000, listing_done=False)
    copy(p, 10)
    p.add("failed", 0)
    clock.now += 10
    p.tick()
    assert "11/5,000+ files  " in stream.getvalue()
    assert "ETA --:--  (copied 10 failed 1)" in stream.getvalue()


def test_rate_follows_the_recent_window():
    p, _, clock = progress(tty=False)
    copy(p, 1_000)
    clock.now += 10
    assert p.rates(clock.now)[0] == 100
    clock.now += 10  # nothing in the last 10 s
    assert p.rates(clock.now)[0] == 0


def test_formats():
    assert [format_bytes(n) for n in (0, 999, 1_000, 2_500_000, 3e12)] == ["0 B", "999 B", "1.0 KB", "2.5 MB", "3.0 TB"]
    assert [format_duration(s) for s in (0, 59.6, 61, 3_725)] == ["0:00", "1:00", "1:01", "1:02:05"]
