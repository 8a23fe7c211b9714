"""The run's context: who it is, what it writes to, and the phase in progress.

Every part of the run (traffic, measurement, judging, approvals, the operator
channel) gets this one object, as Argo Rollouts' ``rolloutContext`` is shared by
its ``canary.go``, ``trafficrouting.go`` and ``analysis.go``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from .._model import CheckpointResult, Decision, Phase, Plan
from .._policy import PolicyState
from .._protocols import Clock, Event, Store
from .._registry import RunInfoView
from ..exceptions import GatekeeperError
from .events import OPERATOR_KINDS, EventKind
from .lease import LeaseKeeper
from .observers import Observers

__all__ = ["PhaseState", "RunContext"]


def _same(value: Any) -> Any:
    return value


@attrs.define
class PhaseState:
    """A phase in progress: when it started and what the policy remembers."""

    phase: Phase
    started_at: datetime
    policy: PolicyState = attrs.field(factory=PolicyState)
    history: dict[str, list[tuple[datetime, float]]] = attrs.field(factory=dict)
    results: list[CheckpointResult] = attrs.field(factory=list)
    decision: Decision | None = None
    # Sequential tests carry their evidence across the phase's checkpoints.
    judges: dict[int, Any] = attrs.field(factory=dict)
    # The share asked for the current step (the balancer may round it).
    traffic: float | None = None
    # (seconds since the phase started, share) for every share in force in the phase,
    # and each compare criterion's last look: bare counts are judged per interval on
    # the share that was in force over it.
    shares: list[tuple[float, float]] = attrs.field(factory=list)
    looks: dict[int, float] = attrs.field(factory=dict)
    # Resumed: the phase had already ended in the journal / a person released its hold.
    ended_in_journal: bool = False
    released: bool = False
    # The phase's watch between checkpoints (``watch.Watcher``), and what its last
    # journaled snapshot said when the phase was resumed.
    watcher: Any = None
    positions: dict[str, int] = attrs.field(factory=dict)  # checkpoint name -> index
    watch_saved: Mapping[str, Any] | None = None


@attrs.define
class RunContext:
    """Identity, journal writer, clock, lease, observers and tracing of one run."""

    plan: Plan
    store: Store
    clock: Clock
    observers: Observers
    lease: LeaseKeeper
    rehearsal: bool = False
    judge_only: bool = False
    origin: datetime | None = None
    tracer_provider: Any = None
    # Every string bound for the journal passes through here (the redactor).
    redact: Callable[[Any], Any] = _same
    run_id: str = ""
    started_at: datetime | None = None
    view: RunInfoView | None = None
    _tracer: Any = None

    @property
    def info(self) -> RunInfoView:
        if self.view is None:
            raise GatekeeperError("the run has not started: call start() first")
        return self.view

    def open(self, run_id: str, started_at: datetime, *, resumed: bool = False) -> None:
        self.run_id = run_id
        self.started_at = started_at
        self.view = RunInfoView(
            run_id=run_id,
            plan=self.plan,
            clock=self.clock,
            started_at=started_at,
            rehearsal=self.rehearsal,
            judge_only=self.judge_only,
            resumed=resumed,
        )

    def journal(
        self,
        kind: EventKind,
        *,
        phase: str | None = None,
        checkpoint: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event (redacted) before its effect is acknowledged."""
        event = Event(
            kind=kind,
            at=self.clock.now(),
            phase=phase,
            checkpoint=checkpoint,
            data=self.redact(dict(data or {})),
        )
        return self.store.append(self.run_id, event, fenced=kind not in OPERATOR_KINDS)

    @property
    def lease_lost(self) -> bool:
        return self.lease.lost

    def check_lease(self) -> None:
        self.lease.check()

    def observer_failed(self, plugin: str, hook: str, problem: str) -> None:
        if self.run_id:
            self.journal(
                EventKind.OBSERVER_FAILED,
                data={"plugin": plugin, "hook": hook, "problem": problem},
            )

    def span(self, name: str, attributes: Mapping[str, Any]) -> Any:
        if self._tracer is None:
            from .._telemetry import get_tracer  # noqa: PLC0415 - keep otel out of import time

            self._tracer = get_tracer(self.tracer_provider)
        return self._tracer.start_as_current_span(name, attributes=self.redact(dict(attributes)))
