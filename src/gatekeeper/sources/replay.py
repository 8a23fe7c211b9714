"""``replay``: answers from a recording (see :class:`gatekeeper.Recording`).

Rehearsals replace every source of a plan with one of these. The query is the
metric's name; time is the offset of the query's moment from ``origin`` (the
start of the run).

::

    [sources.recorded]
    type = "replay"
    recording = "healthy.csv"
    origin = "2026-01-01T00:00:00Z"
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._recording import Recording
from .._redact import shown
from ..exceptions import ConfigError, PlanError

__all__ = ["ReplaySource", "create"]


class ReplaySource:
    """Replays a :class:`Recording` against the run's clock."""

    by_metric_name = True  # the engine asks for metrics by name, not by query
    instant = True  # answers from memory and never blocks: the engine calls it inline

    def __init__(self, name: str, recording: Recording, origin: datetime) -> None:
        self.name = name
        self.recording = recording
        self.origin = origin
        # The offset's text, kept for the other queries of the same look (a watch asks
        # several metrics every few seconds; formatting was a third of a look's cost).
        self._shown: tuple[timedelta, str] = (timedelta(-1), "")

    async def query(self, query: Query) -> Measurement:
        offset = query.at - self.origin
        value, reason = self.recording.value(query.metric, offset, query.variant)
        numerator, _ = self.recording.value(query.metric + ".numerator", offset, query.variant)
        denominator, _ = self.recording.value(query.metric + ".denominator", offset, query.variant)
        moments: tuple[float, float, float] | None = None
        if self.recording.has(query.metric + ".n", query.variant):
            parts = [
                self.recording.value(f"{query.metric}.{part}", offset, query.variant)[0]
                for part in ("n", "sum", "sumsq")
            ]
            if all(part is not None for part in parts):
                moments = (float(parts[0] or 0), float(parts[1] or 0), float(parts[2] or 0))
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=value,
            reason=reason,
            moments=moments,
            query=f"{query.metric}@{self._show(offset)}",
            source=self.name,
            numerator=numerator,
            denominator=denominator,
        )

    def _show(self, offset: timedelta) -> str:
        if self._shown[0] != offset:
            self._shown = (offset, _offset(offset))
        return self._shown[1]

    async def query_range(self, query: Query, *, step: timedelta) -> Measurement:
        """Samples every ``step`` over the window, as a Prometheus range query would."""
        end = query.at - self.origin
        start = end - query.window
        step = max(step, timedelta(seconds=1))
        series: list[tuple[datetime, float]] = []
        missing: str | None = None
        moment = start
        while moment <= end:
            value, reason = self.recording.value(query.metric, moment, query.variant)
            if value is None:
                missing = missing or reason
            else:
                series.append((self.origin + moment, value))
            moment += step
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=None if missing or not series else series[-1][1],
            reason=f"within the window: {missing}"
            if missing
            else (None if series else "no values in the window"),
            series=tuple(series),
            query=f"{query.metric}@{_offset(start)}..{_offset(end)}",
            source=self.name,
        )


def _offset(delta: timedelta) -> str:
    from .._units import format_duration  # noqa: PLC0415

    return "+" + format_duration(delta)


def create(name: str, options: Mapping[str, Any], context: PluginContext) -> ReplaySource:
    opts = Options(options)
    path = opts.required_text("recording")
    origin_text = opts.text("origin")
    opts.done()
    try:
        recording = Recording.load(context.base_dir / path)
    except PlanError as exc:
        raise ConfigError(str(exc), key="recording") from None
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    if origin_text:
        try:
            origin = datetime.fromisoformat(origin_text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"expected an ISO 8601 time, got {shown(origin_text)}", key="origin"
            ) from None
    return ReplaySource(name, recording, origin)
