"""Inline SVG charts for the run report: no script, no network, no dependency.

Time runs left to right on a :class:`TimeAxis` shared by every chart of a report,
so a checkpoint lines up with its phase on the timeline. A rollout's phases differ
in length by orders of magnitude (a 1 h canary, a 12 d confirmation), so each
phase gets an equal width and time is linear inside a phase.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

import attrs

__all__ = ["Bound", "Flag", "Mark", "Series", "TimeAxis", "line_chart", "step_chart"]

WIDTH = 960
LEFT = 72
RIGHT = 16
TOP = 30
BOTTOM = 26


def _f(value: float) -> str:
    return f"{value:.1f}"


@attrs.frozen
class TimeAxis:
    """Maps moments to x: equal widths between consecutive ``breaks``."""

    breaks: tuple[datetime, ...]
    x0: float = LEFT
    x1: float = WIDTH - RIGHT

    @classmethod
    def over(cls, moments: Sequence[datetime]) -> TimeAxis:
        unique = sorted(set(moments))
        return cls(tuple(unique))

    def _segments(self) -> list[tuple[datetime, datetime]]:
        return [(a, b) for a, b in zip(self.breaks, self.breaks[1:], strict=False) if b > a]

    def segment(self, at: datetime) -> int:
        """Which of the equal-width segments ``at`` falls in (a phase, or a wait)."""
        segments = self._segments()
        for index, (_, b) in enumerate(segments):
            if at <= b:
                return index
        return max(len(segments) - 1, 0)

    def x(self, at: datetime) -> float:
        segments = self._segments()
        if not segments:
            return (self.x0 + self.x1) / 2
        width = (self.x1 - self.x0) / len(segments)
        if at <= segments[0][0]:
            return self.x0
        for index, (a, b) in enumerate(segments):
            if at <= b:
                share = (at - a).total_seconds() / (b - a).total_seconds()
                return self.x0 + width * (index + share)
        return self.x1


@attrs.frozen
class Series:
    """A line of (moment, value) points; ``css`` names its class (its colour)."""

    label: str
    css: str
    points: tuple[tuple[datetime, float], ...]


@attrs.frozen
class Bound:
    """A criterion's bound, drawn over the time it applied."""

    start: datetime
    end: datetime
    value: float
    label: str


@attrs.frozen
class Mark:
    """A checkpoint's verdict on the chart: a dot coloured by outcome, with its
    interval (low, high) when the verdict was statistical."""

    at: datetime
    value: float | None  # None: no data, drawn on the time axis
    outcome: str
    title: str
    low: float | None = None
    high: float | None = None


@attrs.frozen
class Flag:
    """A vertical line for a decision that changed the run: hold, rollback, advance."""

    at: datetime
    kind: str
    title: str


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _y_range(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 if high > low else abs(low) * 0.05 or 1.0
    # A metric that cannot be negative keeps zero as its floor.
    floor = 0.0 if low >= 0 else low - pad
    return max(low - pad, floor), high + pad


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round values between ``low`` and ``high``: steps of 1, 2, 2.5 or 5 × 10^k."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    index = first
    while index * step <= high + step * 1e-9:
        ticks.append(round(index * step, 12))
        index += 1
    return ticks


def _frame(title: str, height: int, css: str) -> list[str]:
    return [
        f'<svg class="chart {css}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="{LEFT}" y="18">{escape(title)}</text>',
    ]


def _x_grid(
    axis: TimeAxis, top: float, bottom: float, label: Callable[[datetime], str]
) -> list[str]:
    parts = []
    last = len(axis.breaks) - 1
    for index, at in enumerate(axis.breaks):
        x = _f(axis.x(at))
        anchor = "start" if index == 0 else "end" if index == last else "middle"
        parts.append(f'<line class="grid" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}"/>')
        parts.append(
            f'<text class="tick" x="{x}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{escape(label(at))}</text>"
        )
    return parts


def line_chart(
    *,
    title: str,
    axis: TimeAxis,
    show: Callable[[float], str],
    label: Callable[[datetime], str],
    series: Sequence[Series] = (),
    bounds: Sequence[Bound] = (),
    marks: Sequence[Mark] = (),
    flags: Sequence[Flag] = (),
    height: int = 210,
) -> str:
    """A metric over time against its bounds, verdicts and decisions marked."""
    values = [v for s in series for _, v in s.points]
    values += [b.value for b in bounds]
    values += [m.value for m in marks if m.value is not None]
    values += [m.low for m in marks if m.low is not None]
    values += [m.high for m in marks if m.high is not None]
    low, high = _y_range(_finite(values))
    top, bottom = TOP, height - BOTTOM

    def y(value: float) -> float:
        clipped = min(max(value, low), high)
        return bottom - (clipped - low) / (high - low) * (bottom - top)

    parts = _frame(title, height, "metric")
    for value in _ticks(low, high):
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{_f(y(value))}" x2="{WIDTH - RIGHT}" '
            f'y2="{_f(y(value))}"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_f(y(value) + 4)}" text-anchor="end">'
            f"{escape(show(value))}</text>"
        )
    parts += _x_grid(axis, top, bottom, label)
    for flag in flags:
        x = _f(axis.x(flag.at))
        parts.append(
            f'<line class="flag flag-{escape(flag.kind)}" x1="{x}" y1="{top}" x2="{x}" '
            f'y2="{bottom}"><title>{escape(flag.title)}</title></line>'
        )
    for b in bounds:
        yb = _f(y(b.value))
        parts.append(
            f'<line class="bound" x1="{_f(axis.x(b.start))}" y1="{yb}" '
            f'x2="{_f(axis.x(b.end))}" y2="{yb}"><title>{escape(b.label)}</title></line>'
        )
    for s in series:
        finite = [(at, v) for at, v in s.points if math.isfinite(v)]
        # One line per segment (a phase, a wait): a line drawn across a wait or from one
        # phase into the next would show values nobody measured.
        for _, run in itertools.groupby(finite, key=lambda point: axis.segment(point[0])):
            path = " ".join(f"{_f(axis.x(at))},{_f(y(v))}" for at, v in run)
            parts.append(
                f'<polyline class="series {escape(s.css)}" points="{path}">'
                f"<title>{escape(s.label)}</title></polyline>"
            )
    for m in marks:
        x = _f(axis.x(m.at))
        if m.value is None or not math.isfinite(m.value):
            parts.append(
                f'<rect class="mark missing {escape(m.outcome)}" x="{_f(axis.x(m.at) - 4)}" '
                f'y="{bottom - 4}" width="8" height="8"><title>{escape(m.title)}</title></rect>'
            )
            continue
        if m.low is not None and m.high is not None:
            parts.append(
                f'<line class="interval" x1="{x}" y1="{_f(y(m.low))}" x2="{x}" '
                f'y2="{_f(y(m.high))}"/>'
            )
        parts.append(
            f'<circle class="mark {escape(m.outcome)}" cx="{x}" cy="{_f(y(m.value))}" r="4">'
            f"<title>{escape(m.title)}</title></circle>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def step_chart(
    *,
    title: str,
    axis: TimeAxis,
    label: Callable[[datetime], str],
    bands: Sequence[tuple[datetime, datetime, str, str]],
    steps: Sequence[tuple[datetime, float, str]],
    end: datetime,
    flags: Sequence[Flag] = (),
    height: int = 170,
) -> str:
    """The timeline: phase bands ``(start, end, name, css)`` and the canary's share
    as a step line (0-100 %, on a square-root scale so 1 % is visible)."""
    top, bottom = TOP + 18, height - BOTTOM

    def y(percent: float) -> float:
        return bottom - math.sqrt(max(0.0, min(percent, 100.0)) / 100.0) * (bottom - top)

    parts = _frame(title, height, "timeline")
    for start, stop, name, css in bands:
        x0, x1 = axis.x(start), axis.x(stop)
        parts.append(
            f'<rect class="band {escape(css)}" x="{_f(x0)}" y="{TOP}" '
            f'width="{_f(max(x1 - x0, 1.0))}" height="{bottom - TOP}">'
            f"<title>{escape(name)}</title></rect>"
        )
        parts.append(
            f'<text class="band-label" x="{_f(x0 + 4)}" y="{TOP + 13}">{escape(name)}</text>'
        )
    for percent in (0, 5, 25, 50, 100):
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_f(y(percent) + 4)}" text-anchor="end">'
            f"{percent}%</text>"
        )
    parts += _x_grid(axis, TOP, bottom, label)
    if steps:
        points = []
        for index, (at, share, _) in enumerate(steps):
            if index:
                points.append(f"{_f(axis.x(at))},{_f(y(steps[index - 1][1]))}")
            points.append(f"{_f(axis.x(at))},{_f(y(share))}")
        points.append(f"{_f(axis.x(end))},{_f(y(steps[-1][1]))}")
        parts.append(f'<polyline class="traffic" points="{" ".join(points)}"/>')
        for at, share, why in steps:
            parts.append(
                f'<circle class="traffic-point" cx="{_f(axis.x(at))}" cy="{_f(y(share))}" r="3">'
                f"<title>{escape(f'{share:g}% — {why}')}</title></circle>"
            )
    for flag in flags:
        x = _f(axis.x(flag.at))
        parts.append(
            f'<line class="flag flag-{escape(flag.kind)}" x1="{x}" y1="{TOP}" x2="{x}" '
            f'y2="{bottom}"><title>{escape(flag.title)}</title></line>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
