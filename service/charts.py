"""Small inline SVG charts drawn on the server: no JavaScript, readable at any width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD = 600, 120, 28


@dataclass(frozen=True)
class Point:
    label: str          # shown on hover (an SVG <title>)
    value: float | None


def bars(points: Sequence[Point], unit: str, title: str) -> str:
    """A bar per point, oldest on the left, scaled to the largest value."""
    top = max((p.value for p in points if p.value is not None), default=0) or 1
    step = (WIDTH - PAD) / max(len(points), 1)
    shapes = []
    for n, point in enumerate(points):
        if point.value is None:
            continue
        height = (HEIGHT - PAD) * point.value / top
        x, y = PAD + n * step + step * 0.15, HEIGHT - PAD / 2 - height
        shapes.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{height:.1f}">'
                      f'<title>{escape(point.label)}: {_number(point.value)} {unit}</title></rect>')
    return _frame(title, top, unit, "".join(shapes), "bars")


def line(points: Sequence[Point], unit: str, title: str) -> str:
    """A line through the points that have a value, oldest on the left."""
    values = [p.value for p in points if p.value is not None]
    top, bottom = (max(values), min(values)) if values else (1, 0)
    span = (top - bottom) or 1
    step = (WIDTH - PAD) / max(len(points) - 1, 1)
    coords, dots = [], []
    for n, point in enumerate(points):
        if point.value is None:
            continue
        x = PAD + n * step
        y = HEIGHT - PAD / 2 - (HEIGHT - PAD) * (point.value - bottom) / span
        coords.append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(point.label)}: '
                    f'{_number(point.value)} {unit}</title></circle>')
    path = f'<polyline fill="none" points="{" ".join(coords)}"/>' if coords else ""
    return _frame(title, top, unit, path + "".join(dots), "line", bottom)


def _frame(title: str, top: float, unit: str, body: str, kind: str, bottom: float = 0) -> str:
    return (f'<svg class="chart {kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            f'preserveAspectRatio="none"><title>{escape(title)}</title>'
            f'<text x="2" y="12">{_number(top)} {escape(unit)}</text>'
            f'<text x="2" y="{HEIGHT - 2}">{_number(bottom)}</text>'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD / 2}" x2="{WIDTH}" y2="{HEIGHT - PAD / 2}"/>{body}</svg>')


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}"
