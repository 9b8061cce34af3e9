"""Line charts drawn on the server as inline SVG from the per-minute figures
(:meth:`~redis_atp.Tracker.minute_stats`): no charting library, no script, nothing to
download; the template (``_chart.html``) only places the numbers computed here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Chart", "Series", "line_chart", "WIDTH", "HEIGHT"]

WIDTH, HEIGHT = 720, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 8, 10, 22

Minutes = list[tuple[datetime, dict[str, int]]]


@dataclass(frozen=True)
class Series:
    """One line: its name, CSS class, polyline point lists (a gap where no sample was
    taken starts a new one), its last value and its sum over the span."""

    name: str
    css: str
    segments: list[str]
    last: int | None
    total: int


@dataclass(frozen=True)
class Chart:
    title: str
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    bottom: float = HEIGHT - _BOTTOM


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def _label(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 10_000 else f"{value:g}"


def line_chart(title: str, minutes: Minutes, fields: list[tuple[str, str, str]],
               sampled: bool = False) -> Chart:
    """A chart of ``fields`` (``(field, label, css class)``) over ``minutes``. A minute
    without a field counts 0, or, for ``sampled`` fields (taken by workers'
    housekeeping, absent while none ran), breaks the line."""
    n = len(minutes)
    values = [[m.get(f) if sampled else m.get(f, 0) for _, m in minutes] for f, _, _ in fields]
    top = _nice_max(max((v for vs in values for v in vs if v is not None), default=0))
    span_x, span_y = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(i: int) -> float:
        return _LEFT + (span_x * i / (n - 1) if n > 1 else span_x)

    def y(v: float) -> float:
        return _TOP + span_y * (1 - v / top)

    series = []
    for (_, label, css), vs in zip(fields, values, strict=True):
        segments: list[str] = []
        current: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if current:
                    segments.append(" ".join(current))
                current = []
            else:
                current.append(f"{x(i):.1f},{y(v):.1f}")
        if current:
            segments.append(" ".join(current) if len(current) > 1 else f"{current[0]} {current[0]}")
        last = next((v for v in reversed(vs) if v is not None), None)
        series.append(Series(label, css, segments, last, sum(v for v in vs if v is not None)))
    y_ticks = [(y(top * f), _label(top * f)) for f in (0, 0.5, 1)]
    picks = sorted({0, n // 2, n - 1}) if n else []
    x_ticks = [(x(i), minutes[i][0].strftime("%H:%M")) for i in picks]
    return Chart(title, series, y_ticks, x_ticks)
