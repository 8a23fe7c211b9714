"""Rehearsal: a plan run on a simulated clock against a recording.

Every source of the plan is replaced by a :class:`ReplaySource` over the same
recording and the traffic backend by ``memory``; approvals are given unless the
recording refuses or withholds them.

Lining up one phase: a recording's time is counted from the start of the run.
Rehearsing a single phase (``--phase ramp``, ``pytest --gate=ramp``) starts the
simulated clock at that phase's nominal start: the sum of the durations (last
checkpoint offsets) of the phases before it, which is exactly where a whole-plan
rehearsal starts it when the earlier phases advance without holds. So the ramp's
30m checkpoint reads the recording at 1h30m either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ._approval import RecordingApprover
from ._clock import SimulatedClock
from ._engine import Rollout
from ._model import Plan, RunResult
from ._plugins import Plugins
from ._protocols import MetricSource, Store
from ._recording import Recording
from .exceptions import PlanError
from .sources.replay import ReplaySource
from .traffic.memory import MemoryBackend

__all__ = ["REHEARSAL_ORIGIN", "arehearse", "rehearsal", "rehearse"]

REHEARSAL_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)


def rehearsal(
    plan: Plan,
    recording: Recording | str | Path,
    *,
    phases: Sequence[str] | None = None,
    plugins: Plugins | None = None,
    store: Store | None = None,
    origin: datetime = REHEARSAL_ORIGIN,
    judge_only: bool = False,
    notify: bool = False,
) -> Rollout:
    """A :class:`Rollout` set up to rehearse ``plan`` against ``recording``."""
    if not isinstance(recording, Recording):
        recording = Recording.load(recording)
    _check_recording(plan, recording)
    try:
        first = plan.select(phases)[0]
    except KeyError as exc:
        raise PlanError(str(exc.args[0]), file=plan.path) from None
    start = origin + plan.phase_offset(first.name, origin)
    index = plan.phases.index(first)
    # The balancer is where the previous phase left it.
    initial = plan.phases[index - 1].final_traffic if index > 0 else 0.0
    sources: dict[str, MetricSource] = {
        name: ReplaySource(name, recording, origin) for name in plan.sources
    }
    return Rollout(
        plan,
        sources=sources,
        traffic=MemoryBackend(initial),
        clock=SimulatedClock(start),
        store=store,
        plugins=plugins,
        approver=RecordingApprover(recording),
        rehearsal=True,
        judge_only=judge_only,
        origin=origin,
        notify=notify,
    )


def _check_recording(plan: Plan, recording: Recording) -> None:
    """A recording that names a metric the plan does not know is a typo, not data."""
    known = set(plan.metrics)
    phases = {p.name for p in plan.phases}
    for name in sorted(recording.metrics()):
        if name.startswith("approval:"):
            if name.removeprefix("approval:") not in phases:
                raise PlanError(
                    f"{name!r} names no phase of the plan (phases: {', '.join(sorted(phases))})",
                    file=recording.name,
                )
            continue
        base = name
        for suffix in (".numerator", ".denominator", ".n", ".sum", ".sumsq"):
            base = base.removesuffix(suffix)
        if base not in known:
            raise PlanError(
                f"unknown metric {base!r} (the plan knows: {', '.join(sorted(known))})",
                file=recording.name,
            )


async def arehearse(
    plan: Plan,
    recording: Recording | str | Path,
    *,
    phases: Sequence[str] | None = None,
    plugins: Plugins | None = None,
    store: Store | None = None,
) -> RunResult:
    """Rehearse ``plan`` (or some of its phases) against a recording."""
    rollout = rehearsal(plan, recording, phases=phases, plugins=plugins, store=store)
    return await rollout.run(phases)


def rehearse(
    plan: Plan,
    recording: Recording | str | Path,
    *,
    phases: Sequence[str] | None = None,
    plugins: Plugins | None = None,
    store: Store | None = None,
) -> RunResult:
    """Sync facade of :func:`arehearse`."""
    import asyncio  # noqa: PLC0415

    return asyncio.run(arehearse(plan, recording, phases=phases, plugins=plugins, store=store))
