"""The pluggable parts. Each method may be ``def`` or ``async def``: the engine
awaits coroutines and runs plain functions in a worker thread."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from ._model import Measurement, Query, Split


@runtime_checkable
class MetricSource(Protocol):
    """Answers metric queries at a moment (the checkpoint's time).

    A source never raises for "no data": it returns a :class:`Measurement` whose
    ``reason`` says what went wrong. It may raise :class:`SourceError`; the engine
    then records an INCONCLUSIVE verdict with the error as the reason.

    Optional extras the engine uses when present:
    ``query_range(query, *, step) -> Measurement`` (with ``series``),
    ``validate_metric(text, options)`` (raise :class:`ConfigError` for a metric's bad
    source-specific options; called when the plan's sources are built) and
    ``close()`` / ``aclose()``.
    """

    def query(self, query: Query) -> Measurement | Awaitable[Measurement]: ...


@runtime_checkable
class TrafficBackend(Protocol):
    """Moves traffic between the baseline and the canary.

    ``set_split`` applies a canary share in [0, 100], reads it back from the
    balancer and verifies it; it raises :class:`TrafficError` on a mismatch.
    Setting the share it already has is a no-op.
    """

    def get_split(self) -> Split | Awaitable[Split]: ...

    def set_split(self, canary_percent: float) -> Split | Awaitable[Split]: ...


class Clock(Protocol):
    """All waiting goes through a clock, so a simulated one can jump."""

    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...


@attrs.frozen(kw_only=True)
class PluginContext:
    """What a source or backend factory may use besides its own options.

    ``env`` is where secrets come from (names in the plan, values here); ``base_dir``
    anchors relative paths (the plan file's folder).
    """

    base_dir: Path
    env: Mapping[str, str]
    plan_name: str = ""


class SourceFactory(Protocol):
    """Builds a source from its plan table. Must not do I/O: ``validate`` calls it."""

    def __call__(
        self, name: str, options: Mapping[str, Any], context: PluginContext
    ) -> MetricSource: ...


class BackendFactory(Protocol):
    """Builds a traffic backend from the plan's ``[traffic]`` table. No I/O."""

    def __call__(self, options: Mapping[str, Any], context: PluginContext) -> TrafficBackend: ...


@attrs.frozen(kw_only=True)
class Event:
    """One entry of a run's journal."""

    kind: str
    at: datetime
    phase: str | None = None
    checkpoint: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)
    seq: int = 0


@attrs.frozen(kw_only=True)
class RunInfo:
    """A run as a store lists it."""

    run_id: str
    plan: str
    plan_digest: str
    started_at: datetime
    status: str = "running"


class Store(Protocol):
    """The journal of runs. Every step is appended before its effect is acknowledged."""

    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str: ...

    def append(self, run_id: str, event: Event) -> int: ...

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]: ...

    def runs(self) -> Sequence[RunInfo]: ...

    def set_status(self, run_id: str, status: str) -> None: ...

    def close(self) -> None: ...
