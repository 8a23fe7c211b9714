"""Measurement: what a gate needs queried, asked of the sources concurrently.

Never raises: errors, time-outs and malformed answers become a measurement's
``reason`` and so an INCONCLUSIVE verdict, never a pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from .._model import Kind, Measurement, Metric, Phase, Plan, Query, Reference
from .._units import format_duration
from ..sources.base import MetricSource, RangeSource
from .calls import call

__all__ = ["DEFAULT_CHECK_WINDOW", "Measurer", "Need", "failed", "ratio"]

DEFAULT_CHECK_WINDOW = timedelta(minutes=5)

Key = tuple[str, str, bool]  # (metric, variant, ranged)


@attrs.frozen(kw_only=True)
class Need:
    """One thing to measure: a metric for a variant, over a window for range queries."""

    metric: Metric
    variant: str
    window: timedelta | None = None  # set for range queries

    @property
    def key(self) -> Key:
        return (self.metric.name, self.variant, self.window is not None)


@attrs.define
class Measurer:
    """Asks the plan's sources; each query bounded by ``timeout``."""

    plan: Plan
    sources: Mapping[str, MetricSource]
    timeout: timedelta
    deadlines: bool  # real runs give sources a wall-clock deadline; rehearsals don't
    span: Callable[[str, Mapping[str, Any]], Any]

    def needs(self, phase: Phase, since_start: timedelta) -> list[Need]:
        """Every measurement the phase's gate needs, each once."""
        needs: dict[Key, Need] = {}

        def add(metric: Metric, variant: str, window: timedelta | None = None) -> None:
            need = Need(metric=metric, variant=variant, window=window)
            needs.setdefault(need.key, need)

        for criterion in phase.gate.criteria:
            metric = self.plan.metrics[criterion.metric]
            add(metric, "canary")
            if criterion.reference is Reference.BASELINE:
                add(metric, "baseline")
            if criterion.kind is Kind.STABLE and isinstance(
                self.sources[metric.source], RangeSource
            ):
                add(metric, "canary", criterion.window or since_start)
        return list(needs.values())

    async def all(
        self,
        needs: list[Need],
        at: datetime,
        since_start: timedelta,
        phase: str,
        *,
        spans: bool = True,
    ) -> dict[Key, Measurement]:
        """Measure every need concurrently (one after the other when every source is
        instant: a recording answers from memory, and tasks would cost more than it).
        ``spans``: a span per query (a watch's looks, every few seconds, make none)."""
        if all(self._instant(need) for need in needs):
            return {
                n.key: await self.measure(n, at, n.window or since_start, phase, spans=spans)
                for n in needs
            }
        measured = await asyncio.gather(
            *(
                self.measure(need, at, need.window or since_start, phase, spans=spans)
                for need in needs
            )
        )
        return {n.key: m for n, m in zip(needs, measured, strict=True)}

    def _instant(self, need: Need) -> bool:
        return bool(getattr(self.sources[need.metric.source], "instant", False))

    async def measure(
        self, need: Need, at: datetime, window: timedelta, phase: str, *, spans: bool = True
    ) -> Measurement:
        """Ask the metric's source (both halves of a ratio at once)."""
        metric = need.metric
        source = self.sources[metric.source]
        by_name = bool(getattr(source, "by_metric_name", False))
        window = metric.window or window or DEFAULT_CHECK_WINDOW
        args = {**self.plan.args, **metric.args}
        args["variant"] = self.plan.variants.get(need.variant, need.variant)

        def query(text: str) -> Query:
            return Query(
                metric=metric.name,
                text=text,
                at=at,
                window=window,
                variant=need.variant,
                phase=phase,
                args=args,
                options=metric.options,
                deadline=at + self.timeout if self.deadlines else None,
            )

        if by_name:
            return await self._ask(source, query(metric.name), need, spans)
        if metric.is_ratio:
            assert metric.numerator is not None and metric.denominator is not None
            top, bottom = await asyncio.gather(
                self._ask(source, query(metric.numerator), need, spans),
                self._ask(source, query(metric.denominator), need, spans),
            )
            return ratio(metric, need.variant, at, top, bottom)
        text = metric.query or metric.name
        if need.variant == "baseline" and metric.baseline_query:
            text = metric.baseline_query
        return await self._ask(source, query(text), need, spans)

    async def _ask(
        self, source: MetricSource, query: Query, need: Need, spans: bool = True
    ) -> Measurement:
        instant = bool(getattr(source, "instant", False))
        if instant and need.window is None:
            try:  # from memory, never blocks: no task, time-out, thread or span
                answer: object = await source.query(query)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - a broken source is a reason, never a pass
                return failed(query, f"source error: {type(exc).__name__}: {exc}")
        elif spans and not instant:
            attributes = {"gatekeeper.metric": query.metric, "gatekeeper.variant": query.variant}
            with self.span("gatekeeper.query", attributes):
                answer = await self._bounded(source, query, need)
        else:
            answer = await self._bounded(source, query, need)
        if isinstance(answer, _Failed):
            return failed(query, answer.reason)
        if not isinstance(answer, Measurement):
            return failed(query, f"the source returned {type(answer).__name__}, not a Measurement")
        return answer

    async def _bounded(self, source: MetricSource, query: Query, need: Need) -> object:
        """The source's answer within the time-out, or why there is none."""
        try:
            if need.window is not None:
                assert isinstance(source, RangeSource)  # needs() asked only such
                step = max(need.window / 60, timedelta(seconds=1))
                ranged = source
                coro = call(lambda q: ranged.query_range(q, step=step), query)
            else:
                coro = call(source.query, query)
            # (asyncio.timeout, not wait_for: on 3.11 wait_for makes a task per query.)
            async with asyncio.timeout(self.timeout.total_seconds()):
                return await coro
        except TimeoutError:
            return _Failed(f"timed out after {format_duration(self.timeout)}")
        except Exception as exc:  # noqa: BLE001 - a broken source is a reason, never a pass
            return _Failed(f"source error: {type(exc).__name__}: {exc}")


@attrs.frozen
class _Failed:
    reason: str


def failed(query: Query, reason: str) -> Measurement:
    """A measurement that could not be taken, and why."""
    return Measurement(
        metric=query.metric,
        variant=query.variant,
        at=query.at,
        value=None,
        reason=reason,
        query=query.text,
    )


def ratio(
    metric: Metric, variant: str, at: datetime, top: Measurement, bottom: Measurement
) -> Measurement:
    """numerator / denominator, keeping both counts for the statistical judge.

    A numerator with no series at all over a positive denominator is 0 events:
    Prometheus has no ``code=~"5.."`` series for a service that never answered
    5xx. An empty or zero denominator stays "no data".
    """
    result = Measurement(
        metric=metric.name,
        variant=variant,
        at=at,
        value=None,
        query=f"({top.query}) / ({bottom.query})",
        source=top.source,
        retries=top.retries + bottom.retries,
    )
    positive = bottom.problem is None and bottom.value is not None and bottom.value > 0
    if top.empty and not top.warnings and positive:
        top = attrs.evolve(top, value=0.0, reason=None, empty=False)
    if bottom.problem is not None and (top.empty or top.problem is None):
        # No requests at all: say so, not that no request failed.
        return attrs.evolve(result, reason=f"denominator: {bottom.problem}")
    if top.problem is not None:
        return attrs.evolve(result, reason=f"numerator: {top.problem}")
    assert top.value is not None and bottom.value is not None
    counts = attrs.evolve(result, numerator=top.value, denominator=bottom.value)
    if bottom.value == 0:
        return attrs.evolve(counts, reason="no samples: the denominator is 0")
    return attrs.evolve(counts, value=top.value / bottom.value)
