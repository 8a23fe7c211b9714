"""Recordings: metric values over time, as CSV, for rehearsals.

::

    at,metric,value,variant
    0,error_rate,0.002,canary
    15m,error_rate,0.004
    1h20m,latency_p99,          <- an empty value: no data from then on

``at`` is the offset from the start of the run (seconds, or a duration like
``15m`` / ``4h30m``); ``variant`` is ``canary`` (the default) or ``baseline``. The
value of a metric at time *t* is the latest row at or before *t*. A row for
``approval:PHASE`` gives (1) or refuses (0) that phase's go/no-go; an empty value
withholds it. ``METRIC.numerator`` / ``METRIC.denominator`` give a ratio's counts and
``METRIC.n`` / ``.sum`` / ``.sumsq`` a mean's moments, for the statistical judge.
"""

from __future__ import annotations

import bisect
import csv
import math
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from ._limits import (
    MAX_ECHO,
    MAX_PLAN_DURATION,
    MAX_RECORDING_BYTES,
    MAX_RECORDING_ROWS,
    bad_text,
    decode_utf8,
    read_bounded,
    shorten,
)
from ._units import parse_duration
from .exceptions import PlanError

__all__ = ["Recording"]

_COLUMNS = ("at", "metric", "value", "variant")
_VARIANTS = ("canary", "baseline")
_VARIANT_NAMES = {v: v for v in _VARIANTS}  # the shared string objects
# A line as a file read with universal newlines ends it: \n, \r\n or a lone \r.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_MAX_LINE = 1_048_576  # characters of one line of a recording (a row is some 40)


@attrs.frozen
class _Track:
    offsets: tuple[float, ...]
    values: tuple[float | None, ...]

    def at(self, seconds: float) -> tuple[bool, float | None]:
        """(found, value): ``found`` is false before the first row."""
        index = bisect.bisect_right(self.offsets, seconds) - 1
        if index < 0:
            return False, None
        return True, self.values[index]

    def window(self, start: float, end: float) -> list[float | None]:
        """The values in force during [start, end]: the one at ``start`` and every
        row after it up to ``end``."""
        lo = bisect.bisect_right(self.offsets, start) - 1
        hi = bisect.bisect_right(self.offsets, end)
        return list(self.values[max(lo, 0) : hi])


def _rows(reader: Any, name: str) -> Iterator[list[str]]:
    """The rows of ``reader``; malformed CSV (a field over the size limit) is a PlanError."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PlanError(f"not valid CSV: {exc}", file=name, line=reader.line_num) from None
        yield row


def _lines(text: str, name: str) -> Iterator[str]:
    """The lines of ``text`` one at a time, each with its ending (\\n, \\r\\n or a lone
    \\r, as a file read with universal newlines has them), without copying the text;
    a line over :data:`_MAX_LINE` characters is a PlanError (a million commas would
    be a million cells)."""
    for number, match in enumerate(_LINE.finditer(text), start=1):
        line = match.group()
        if not line:
            return
        if len(line) > _MAX_LINE:
            raise PlanError(
                f"a line is at most {_MAX_LINE} characters, got {len(line)}", file=name, line=number
            )
        yield line


class _Columns:
    """Where each column is in a row, and the reading of one data row."""

    def __init__(self, header: list[str], name: str) -> None:
        self.width = len(header)
        self.at = header.index("at")
        self.metric = header.index("metric")
        self.value = header.index("value")
        self.variant = header.index("variant") if "variant" in header else None
        self.optional_last = header[-1] == "variant"
        self.name = name
        self.names: dict[str, str] = {}  # one string object per metric name: 1M rows, 1 name

    def row(self, cells: list[str], line: int) -> tuple[float, str, str, float | None]:
        """One data row as (offset in seconds, metric, variant, value)."""
        name = self.name
        if len(cells) == self.width - 1 and self.optional_last:
            cells.append("")  # the optional trailing variant may be left out
        if len(cells) != self.width:
            raise PlanError(f"expected {self.width} cells, got {len(cells)}", file=name, line=line)
        try:
            # A recording spans a whole plan, so its limit is the plan's, not one phase's.
            offset = parse_duration(cells[self.at], limit=MAX_PLAN_DURATION).total_seconds()
        except ValueError as exc:
            raise PlanError(f"at: {exc}", file=name, line=line) from None
        metric = self.names.get(cells[self.metric])
        if metric is None:
            metric = self.metric_name(cells[self.metric], line)
        variant = (cells[self.variant] if self.variant is not None else "") or "canary"
        if variant not in _VARIANTS:
            raise PlanError(
                f"variant: expected canary or baseline, got {shorten(variant)}",
                file=name,
                line=line,
            )
        raw = cells[self.value]
        value: float | None
        if raw == "":
            value = None
        else:
            try:
                value = float(raw)
            except ValueError:
                raise PlanError(
                    f"value: expected a number or nothing, got {shorten(raw)}", file=name, line=line
                ) from None
        return offset, metric, _VARIANT_NAMES[variant], value

    def metric_name(self, metric: str, line: int) -> str:
        if not metric:
            raise PlanError("metric: empty name", file=self.name, line=line)
        problem = bad_text(metric, limit=MAX_ECHO * 2)
        if problem is not None:
            raise PlanError(f"metric: {problem}", file=self.name, line=line)
        return self.names.setdefault(metric, metric)


class Recording:
    """Metric values by (metric, variant) over offsets from the run's start."""

    def __init__(
        self, rows: Iterable[tuple[float, str, str, float | None]], *, name: str = ""
    ) -> None:
        grouped: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
        for offset, metric, variant, value in rows:
            grouped.setdefault((metric, variant), []).append((offset, value))
        self._tracks: dict[tuple[str, str], _Track] = {}
        for key, items in grouped.items():
            items.sort(key=lambda item: item[0])  # stable: equal offsets keep file order
            self._tracks[key] = _Track(
                offsets=tuple(o for o, _ in items), values=tuple(v for _, v in items)
            )
        self.name = name

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a CSV recording; a bad row is a :class:`PlanError` naming file and line.

        Only a regular file of at most 256 MiB is read (``/dev/zero`` is refused, not
        read until memory runs out).
        """
        path = Path(path)
        text = decode_utf8(
            read_bounded(path, MAX_RECORDING_BYTES, "recording"), file=str(path), what="recording"
        )
        return cls.parse(text, name=str(path))

    @classmethod
    def parse(cls, text: str, *, name: str = "<recording>") -> Recording:
        if len(text) > MAX_RECORDING_BYTES:
            raise PlanError(
                f"the recording is larger than {MAX_RECORDING_BYTES // (1024 * 1024)} MiB "
                "(the limit)",
                file=name,
            )
        reader = csv.reader(_lines(text, name))
        columns: _Columns | None = None
        rows: list[tuple[float, str, str, float | None]] = []
        for row in _rows(reader, name):
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].lstrip().startswith("#"):
                continue
            cells = [cell.strip() for cell in row]
            if columns is None:
                missing = [c for c in ("at", "metric", "value") if c not in cells]
                unknown = [c for c in cells if c not in _COLUMNS]
                # A repeated column would silently shadow the first.
                if missing or unknown or len(set(cells)) != len(cells):
                    raise PlanError(
                        "the header must be 'at,metric,value' with an optional 'variant' "
                        f"column, got {shorten(','.join(cells))}",
                        file=name,
                        line=line,
                    )
                columns = _Columns(cells, name)
                continue
            if len(rows) >= MAX_RECORDING_ROWS:
                raise PlanError(
                    f"more than {MAX_RECORDING_ROWS} rows (the limit)", file=name, line=line
                )
            rows.append(columns.row(cells, line))
        if columns is None:
            raise PlanError(
                "the recording is empty (it needs a header 'at,metric,value')", file=name, line=1
            )
        return cls(rows, name=name)

    def metrics(self) -> set[str]:
        return {metric for metric, _ in self._tracks}

    def has(self, metric: str, variant: str = "canary") -> bool:
        return (metric, variant) in self._tracks

    def value(
        self, metric: str, offset: timedelta, variant: str = "canary"
    ) -> tuple[float | None, str | None]:
        """(value, reason): the latest value at or before ``offset``, or why there is none."""
        track = self._tracks.get((metric, variant))
        if track is None:
            return None, f"the recording has no {variant} values for {metric!r}"
        found, value = track.at(offset.total_seconds())
        if not found:
            return None, f"the recording has no {variant} value for {metric!r} yet"
        if value is None:
            return None, "no data (empty in the recording)"
        return value, None

    def window(
        self, metric: str, start: timedelta, end: timedelta, variant: str = "canary"
    ) -> list[float | None]:
        track = self._tracks.get((metric, variant))
        if track is None:
            return []
        return track.window(start.total_seconds(), end.total_seconds())

    def approval(self, phase: str, offset: timedelta) -> bool | None:
        """True (given, also when the recording says nothing), False (refused), or
        None (withheld: an empty value)."""
        track = self._tracks.get((f"approval:{phase}", "canary"))
        if track is None:
            return True
        found, value = track.at(offset.total_seconds())
        if not found:
            return True
        if value is None or math.isnan(value):
            return None
        return value != 0
