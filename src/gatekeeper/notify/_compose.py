"""Notification events built from what the engine has at hand.

Each function is called *after* the effect it reports (the traffic change applied,
read back and journaled), with the share the balancer confirmed.
"""

from __future__ import annotations

import shlex
from datetime import datetime

from .._model import Action, Decision, GateResult, Kind, Outcome, RunOutcome
from .base import Failure, NotificationEvent

__all__ = [
    "approval_command",
    "event_for_approval",
    "event_for_decision",
    "event_for_observer_failure",
    "event_for_phase_start",
    "event_for_rollback",
    "event_for_run_end",
    "failures",
]


def approval_command(run_id: str, phase: str, *, verb: str = "approve") -> str:
    """``gatekeeper approve RUN --phase P --by NAME``: the exact answer to a go/no-go."""
    return f"gatekeeper {verb} {shlex.quote(run_id)} --phase {shlex.quote(phase)} --by NAME"


def failures(result: GateResult) -> tuple[Failure, ...]:
    """Every criterion of a gate that did not pass, with its value and bound. For a
    canary-vs-baseline comparison both are ratios: the estimate and the factor."""
    return tuple(
        Failure(
            criterion=v.criterion.text,
            outcome=v.outcome.value,
            reason=v.reason,
            observed=v.observed,
            bound=v.criterion.factor
            if v.bound is None and v.criterion.kind is Kind.COMPARE
            else v.bound,
        )
        for v in result.verdicts
        if v.outcome is not Outcome.PASS
    )


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _share(traffic: float | None) -> str:
    return "" if traffic is None else f"{traffic:g}%"


def event_for_decision(
    *,
    run_id: str,
    plan: str,
    result: GateResult,
    decision: Decision,
    at: datetime,
    traffic: float | None = None,
    next_at: datetime | None = None,
    next_checkpoint: str | None = None,
    next_phase: str | None = None,
    rehearsal: bool = False,
) -> NotificationEvent | None:
    """The event for a checkpoint's decision: ``rollback``, ``hold``, ``advanced``, or
    ``checkpoint_failed`` when a gate did not pass and the run carries on; None for
    a plain pass. ``traffic`` is the share confirmed after the decision's effect."""
    phase, checkpoint = result.phase, result.checkpoint

    def event(kind: str, what: str, next_step: str) -> NotificationEvent:
        return NotificationEvent(
            kind=kind,
            what=what,
            next=next_step,
            run_id=run_id,
            plan=plan,
            phase=phase,
            checkpoint=checkpoint,
            at=at,
            why=failures(result),
            reason=decision.reason,
            traffic=traffic,
            rehearsal=rehearsal,
        )

    if decision.action is Action.ROLLBACK:
        confirmed = _share(traffic)
        return event(
            "rollback",
            f"{phase} rolled back by its watch, before the {checkpoint} checkpoint"
            if decision.by_watch
            else f"{phase} rolled back at the {checkpoint} checkpoint",
            f"the balancer confirmed the canary at {confirmed}; the run ended rolled back"
            if confirmed
            else "the canary is being returned to 0%; the run ends rolled back",
        )
    if decision.action is Action.HOLD:
        stays = f" at {_share(traffic)}" if traffic is not None else ""
        if decision.recheck_at is not None:
            step = f"re-checked at {_clock(decision.recheck_at)}; the canary stays{stays}"
        else:
            step = (
                f"the run stopped and the canary stays{stays}: a person decides "
                f"(gatekeeper status {shlex.quote(run_id)}; gatekeeper rollback "
                f"{shlex.quote(run_id)})"
            )
        where = (
            f"by its watch, before the {checkpoint} checkpoint"
            if decision.by_watch
            else f"at the {checkpoint} checkpoint"
        )
        return event("hold", f"{phase} held {where}", step)
    if decision.action is Action.ADVANCE:
        return event(
            "advanced",
            f"{phase} advanced",
            f"next phase: {next_phase}" if next_phase else "no phase left to run",
        )
    if result.outcome is Outcome.PASS:
        return None
    upcoming = ""
    if next_checkpoint is not None:
        upcoming = f"next checkpoint: {next_checkpoint}" + (
            f" at {_clock(next_at)}" if next_at is not None else ""
        )
    return event(
        "checkpoint_failed",
        f"{phase}: the gate did not pass at the {checkpoint} checkpoint; the run goes on",
        upcoming or "the policy lets the phase go on",
    )


def event_for_approval(
    *,
    run_id: str,
    plan: str,
    phase: str,
    at: datetime,
    prompt: str = "approval",
    traffic: float | None = None,
    rehearsal: bool = False,
) -> NotificationEvent:
    """A phase waits for its go/no-go; the message carries the command that answers."""
    return NotificationEvent(
        kind="approval_requested",
        run_id=run_id,
        plan=plan,
        phase=phase,
        at=at,
        traffic=traffic,
        rehearsal=rehearsal,
        what=f"{phase} waits for its {prompt}",
        next=(f"the run waits; to refuse: {approval_command(run_id, phase, verb='reject')}"),
        command=approval_command(run_id, phase),
    )


def event_for_phase_start(
    *,
    run_id: str,
    plan: str,
    phase: str,
    at: datetime,
    traffic: float | None = None,
    first_checkpoint: str | None = None,
    first_at: datetime | None = None,
    rehearsal: bool = False,
) -> NotificationEvent:
    """A phase started with the share the balancer confirmed."""
    share = f" with the canary at {_share(traffic)}" if traffic is not None else ""
    upcoming = ""
    if first_checkpoint is not None:
        upcoming = f"first checkpoint: {first_checkpoint}" + (
            f" at {_clock(first_at)}" if first_at is not None else ""
        )
    return NotificationEvent(
        kind="phase_started",
        run_id=run_id,
        plan=plan,
        phase=phase,
        at=at,
        traffic=traffic,
        rehearsal=rehearsal,
        what=f"{phase} started{share}",
        next=upcoming,
    )


def event_for_rollback(
    *,
    run_id: str,
    plan: str,
    reason: str,
    at: datetime,
    phase: str | None = None,
    traffic: float | None = None,
    rehearsal: bool = False,
) -> NotificationEvent:
    """A rollback that no checkpoint decided: by hand, a rejected approval, an error."""
    return NotificationEvent(
        kind="rollback",
        run_id=run_id,
        plan=plan,
        phase=phase,
        at=at,
        traffic=traffic,
        rehearsal=rehearsal,
        what=f"{phase} rolled back" if phase else "run rolled back",
        reason=reason,
        next=(
            f"the balancer confirmed the canary at {_share(traffic)}"
            if traffic is not None
            else "the canary is being returned to 0%"
        ),
    )


_AFTER_END = {
    RunOutcome.ADVANCED.value: "nothing: every phase asked for advanced",
    RunOutcome.ROLLED_BACK.value: "the canary gets no traffic; a new run starts a new attempt",
    RunOutcome.HELD.value: "the run stopped where it was: a person decides",
    RunOutcome.INTERRUPTED.value: "the run was cut short: run the same command again to resume",
    RunOutcome.ERROR.value: "the run stopped on an error: run the same command again to resume",
}


def event_for_run_end(
    *,
    run_id: str,
    plan: str,
    outcome: RunOutcome | str,
    reason: str,
    at: datetime,
    traffic: float | None = None,
    rehearsal: bool = False,
) -> NotificationEvent:
    """A run ended: advanced, rolled back, held, interrupted or on an error."""
    value = outcome.value if isinstance(outcome, RunOutcome) else outcome
    return NotificationEvent(
        kind="run_finished",
        run_id=run_id,
        plan=plan,
        at=at,
        traffic=traffic,
        rehearsal=rehearsal,
        what=f"run {value}",
        outcome=value,
        reason=reason,
        next=_AFTER_END.get(value, ""),
    )


def event_for_observer_failure(
    *,
    run_id: str,
    plan: str,
    observer: str,
    error: str,
    at: datetime,
    phase: str | None = None,
    rehearsal: bool = False,
) -> NotificationEvent:
    """A hook, reporter or plugin raised or hung; the run went on without it."""
    return NotificationEvent(
        kind="observer_failure",
        run_id=run_id,
        plan=plan,
        phase=phase,
        at=at,
        rehearsal=rehearsal,
        what=f"observer {observer} failed",
        reason=error,
        next="the run went on: an observer never stops or changes a decision",
    )
