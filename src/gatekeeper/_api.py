"""The module-level facade: ``gatekeeper.run``, ``check``, ``validate``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._model import GateResult, Outcome, Plan, RunOutcome, RunResult
from ._planfile import load_plan
from ._plugins import Plugins, default_plugins
from ._protocols import Store
from ._run import PhaseState, Rollout, build_sources, build_traffic, plugin_context
from ._run.build import open_run_store

__all__ = ["acheck", "arun", "check", "run", "validate"]


def _plan(plan: Plan | str | Path) -> Plan:
    return plan if isinstance(plan, Plan) else load_plan(plan)


def validate(plan: Plan | str | Path, *, plugins: Plugins | None = None) -> Plan:
    """Load a plan and build (without I/O) every source and the traffic backend, so
    a misspelled option fails now, with its file and line, not at the ramp's 2h
    checkpoint."""
    plan = _plan(plan)
    plugins = plugins or default_plugins()
    context = plugin_context(plan)
    build_sources(plan, plugins, context)
    build_traffic(plan, plugins, context)
    return plan


async def arun(
    plan: Plan | str | Path,
    *,
    phases: Sequence[str] | None = None,
    store: Store | str | Path | None = None,
    **options: Any,
) -> RunResult:
    """Run a plan with its real sources and backend; ``options`` go to :class:`Rollout`.

    The run is journaled durably, as the command line does: ``store`` is a
    :class:`Store`, a SQLite path or a ``postgresql://`` URL, and defaults to
    ``$GATEKEEPER_STORE`` or the SQLite journal next to the plan file. So the run is
    visible to ``gatekeeper status``, resumes after a crash, and a later phase finds
    the one before it.
    """
    loaded = _plan(plan)
    journal, owned = open_run_store(loaded, store)
    try:
        return await Rollout(loaded, store=journal, **options).run(phases)
    finally:
        if owned:
            journal.close()


def run(
    plan: Plan | str | Path, *, phases: Sequence[str] | None = None, **options: Any
) -> RunResult:
    """Sync facade of :func:`arun`."""
    return asyncio.run(arun(plan, phases=phases, **options))


async def acheck(
    plan: Plan | str | Path,
    phase: str,
    *,
    window: timedelta | None = None,
    **options: Any,
) -> GateResult:
    """Judge one phase's gate once, now; change nothing.

    ``window`` (the time "since the phase started" used for ``{{window}}``)
    defaults to the phase's first checkpoint offset.
    """
    loaded = _plan(plan)
    rollout = Rollout(loaded, judge_only=True, **options)
    try:
        the_phase = rollout.select([phase])[0]
        await rollout.start([the_phase])
        now = rollout.clock.now()
        span = window or the_phase.checkpoints[0].offset
        state = PhaseState(phase=the_phase, started_at=now - span)
        checkpoint = the_phase.checkpoints[0]
        result = await rollout.evaluate(state, checkpoint, now)
        await rollout.finish(_outcome(result), "checked once (judge only)")
        return result
    finally:
        await rollout.aclose()


def _outcome(result: GateResult) -> RunOutcome:
    """How a one-off check is recorded in its (in-memory) journal."""
    return {
        Outcome.PASS: RunOutcome.ADVANCED,
        Outcome.FAIL: RunOutcome.ROLLED_BACK,
        Outcome.INCONCLUSIVE: RunOutcome.HELD,
    }[result.outcome]


def check(plan: Plan | str | Path, phase: str, **options: Any) -> GateResult:
    """Sync facade of :func:`acheck`."""
    return asyncio.run(acheck(plan, phase, **options))
