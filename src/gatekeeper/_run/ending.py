"""How a run ends: its outcome journaled, then told; interruptions, an operator's
rollback, a lost journal. A crash or an unconfirmed rollback is never reported as
"rolled back"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model import Action, Phase, RunOutcome, RunResult
from ..exceptions import StoreError, TrafficError
from .events import EventKind

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = ["finish", "interrupted", "journal_lost", "operator_rollback"]


async def finish(rollout: Rollout, outcome: RunOutcome, reason: str) -> RunResult:
    """End the run: journal it, then tell the observers; return the result.
    A rollback that was not confirmed is never reported as "rolled back"."""
    if rollout.result is not None:
        return rollout.result
    reason = str(rollout.ctx.redact(reason))  # error text may quote a server's answer
    if outcome is RunOutcome.ROLLED_BACK and rollout.traffic.backend is not None:
        confirmed = rollout.confirmed
        if confirmed is None or confirmed.canary != 0:
            outcome = RunOutcome.ERROR
            reason += "; the rollback was not confirmed by the balancer"
    rollout.result = RunResult(
        run_id=rollout.run_id,
        plan=rollout.plan.name,
        outcome=outcome,
        reason=reason,
        phases=tuple(rollout.phase_results),
        split=rollout.confirmed,
    )
    if rollout.run_id:
        rollout.ctx.journal(EventKind.RUN_ENDED, data={"outcome": outcome.value, "reason": reason})
        rollout.store.set_status(rollout.run_id, outcome.value)
        await rollout.observers.emit("run_finished", run=rollout.info, result=rollout.result)
    return rollout.result


async def operator_rollback(rollout: Rollout, phase: Phase | None, reason: str) -> RunResult:
    """A person asked for a rollback: canary to 0 %, then the run ends."""
    request = rollout.operator.rollback
    try:
        await rollout.rollback(phase, reason)
    except TrafficError as exc:
        return await finish(rollout, RunOutcome.ERROR, f"{reason}; {exc}")
    if request is not None:
        rollout.operator.applied(request, "rolled back")
    if phase is not None:
        rollout.ctx.journal(
            EventKind.PHASE_ENDED,
            phase=phase.name,
            data={"action": Action.ROLLBACK.value, "reason": reason},
        )
    return await finish(rollout, RunOutcome.ROLLED_BACK, reason)


async def interrupted(rollout: Rollout, why: str) -> RunResult:
    """Journal an interruption; traffic stays where it is (never a success)."""
    where = (
        f"; the canary keeps {rollout.confirmed.canary:g}% of traffic" if rollout.confirmed else ""
    )
    if rollout.run_id:
        rollout.ctx.journal(EventKind.INTERRUPTED, data={"reason": why})
    how = (
        f"run the same plan again to resume run {rollout.run_id}, or roll it back with "
        f"'gatekeeper rollback {rollout.run_id}'"
        if rollout.run_id
        else "nothing was started"
    )
    return await finish(rollout, RunOutcome.INTERRUPTED, f"{why}{where}. To go on: {how}")


def journal_lost(rollout: Rollout, exc: StoreError) -> RunResult:
    """The journal failed (lost, replaced, fenced by another runner): stop where
    we are, traffic as it is; nothing more can be journaled."""
    where = f"the canary keeps {rollout.confirmed.canary:g}%" if rollout.confirmed else ""
    rollout.result = RunResult(
        run_id=rollout.run_id,
        plan=rollout.plan.name,
        outcome=RunOutcome.INTERRUPTED,
        reason=f"the run stopped: {exc}; traffic left as it was ({where or 'unchanged'})",
        phases=tuple(rollout.phase_results),
        split=rollout.confirmed,
    )
    return rollout.result
