"""The pluggable parts. Each method may be ``def`` or ``async def``: the engine
awaits coroutines and runs plain functions in a worker thread.

Each plugin family owns its interface (``sources/base.py``, ``traffic/base.py``,
``store/base.py``); they are re-exported here for the engine and for imports by
path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .sources.base import MetricSource
from .traffic.base import TrafficBackend

__all__ = [
    "BackendFactory",
    "Clock",
    "Event",
    "MetricSource",
    "PluginContext",
    "RunInfo",
    "SourceFactory",
    "Store",
    "TrafficBackend",
]

import attrs

if TYPE_CHECKING:
    pass


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
    # The run's redactor (a source or backend adds the secrets it reads, and masks
    # what it quotes of a server) and the tracer provider its spans go to.
    redactor: Any = None
    tracer_provider: Any = None


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

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int:
        """Append ``event``. ``fenced=False`` is the operator channel: a person's
        request appended while another process may hold the run's lease."""
        ...

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]: ...

    def runs(self) -> Sequence[RunInfo]: ...

    def set_status(self, run_id: str, status: str) -> None: ...

    def close(self) -> None: ...
