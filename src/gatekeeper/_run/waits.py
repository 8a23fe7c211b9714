"""Waits before a phase advances or raises traffic: a person's hold, the plan's
windows and freezes (and an operator's), start times and go/no-go deadlines.

None of them ever blocks a rollback. While a run waits it keeps judging the gate in
force (every ``recheck_interval``) and a failure still rolls back; an operator's
rollback interrupts any wait within a second. Waits are journaled
(``phase_waiting``) so a resumed run keeps the start it had computed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .._calendar import Calendar
from .._calendar_start import ask_moment
from .._calendar_text import describe_wait
from .._model import Action, Decision, Outcome, Phase
from .context import PhaseState
from .events import EventKind

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = ["calendar_of", "phase_start", "until_allowed"]


def calendar_of(rollout: Rollout) -> Calendar:
    """The plan's calendar with every freeze an operator added to this run."""
    calendar = rollout.plan.calendar
    for freeze in rollout.operator.freezes:
        calendar = calendar.with_freeze(freeze)
    return calendar


def _blocked(rollout: Rollout, phase: Phase, now: datetime) -> str | None:
    """Why ``phase`` may not advance or raise traffic at ``now`` (None: it may)."""
    if rollout.operator.holding():
        return f"held by {rollout.operator.held_by}"
    calendar = calendar_of(rollout)
    window = phase.policy.window
    if calendar.may_advance(now, window):
        return None
    return "; ".join(calendar.blockers(now, window)) or "the calendar is closed"


async def until_allowed(
    rollout: Rollout, state: PhaseState | None, phase: Phase, what: str
) -> Decision | None:
    """Wait until ``phase`` may advance or raise traffic. ``state`` is the phase whose
    gate guards the wait (judged every ``recheck_interval``; a failure returns its
    ROLLBACK). ``None`` once allowed; a final HOLD when the run may not wait (a
    person's hold under ``--no-wait``) or the calendar never opens."""
    operator = rollout.operator
    operator.poll()
    now = rollout.clock.now()
    reason = _blocked(rollout, phase, now)
    if reason is None:
        return None
    if operator.holding() and not rollout.wait_for_approval:
        return Decision(
            action=Action.HOLD,
            reason=f"{reason}: resume with 'gatekeeper resume {rollout.run_id} --by NAME'",
        )
    recheck = phase.policy.recheck_interval
    judge_at = now + recheck
    announced: tuple[str, datetime | None] | None = None
    attempt = 1000
    while reason is not None:
        opens = (
            None if operator.holding() else calendar_of(rollout).next_open(now, phase.policy.window)
        )
        if opens is None and not operator.holding():
            return Decision(action=Action.HOLD, reason=f"{what}: {reason}, and it never opens")
        if announced != (reason, opens):
            announced = (reason, opens)
            await _announce(rollout, phase, opens, f"{what} waits: {reason}")
        wake = judge_at if opens is None else min(judge_at, opens)
        if rollout.poll is not None:
            wake = min(wake, now + rollout.poll)
        await rollout.wait_until(wake)
        now = rollout.clock.now()
        due = now >= judge_at
        if due:
            judge_at = now + recheck
        if state is not None and due:
            attempt += 1
            failed = await _judge_guard(rollout, state, now, attempt)
            if failed is not None:
                return failed
        reason = _blocked(rollout, phase, now)
    return None


async def _announce(rollout: Rollout, phase: Phase, until: datetime | None, reason: str) -> None:
    rollout.ctx.journal(
        EventKind.PHASE_WAITING,
        phase=phase.name,
        data={"until": until.isoformat() if until else None, "reason": reason},
    )
    await rollout.observers.emit(
        "phase_waiting", run=rollout.info, phase=phase, until=until, reason=reason
    )


async def phase_start(
    rollout: Rollout, phase: Phase, guard: PhaseState | None
) -> tuple[datetime | None, Decision | None]:
    """When ``phase`` begins: its ``start_at`` (or the run's ``--start-at``), then its
    window's next opening. Journaled once and reused on resume. Returns the start
    (None: no start time of its own) or a final decision (the calendar never opens)."""
    journal = rollout.journal_state
    start_at = phase.start_at
    if phase is rollout.first_phase and rollout.start_at is not None:
        start_at = rollout.start_at  # the run's --start-at, over the plan's
    if start_at is None:
        return None, None
    if journal is not None and phase.name in journal.waits:
        return journal.waits[phase.name], None
    now = rollout.clock.now()
    calendar = calendar_of(rollout)
    start = calendar.phase_start(now, start_at, phase.policy.window)
    if start is None:
        why = f"{phase.name} has no start within the calendar's horizon"
        return None, Decision(action=Action.HOLD, reason=why)
    reason = describe_wait(now, start, calendar.timezone, f"{phase.name} starts")
    rollout.ctx.journal(
        EventKind.PHASE_WAITING,
        phase=phase.name,
        data={"until": start.isoformat(), "start": True, "reason": reason},
    )
    await rollout.observers.emit(
        "phase_waiting", run=rollout.info, phase=phase, until=start, reason=reason
    )
    return start, None


async def wait_for_start(
    rollout: Rollout, start: datetime | None, guard: PhaseState | None
) -> Decision | None:
    """Wait for a phase's start, judging the phase before it meanwhile."""
    if start is None:
        return None
    if guard is None:
        await rollout.wait_until(start)
        return None
    recheck = guard.phase.policy.recheck_interval
    attempt = 2000
    while rollout.clock.now() < start:
        await rollout.wait_until(min(start, rollout.clock.now() + recheck))
        now = rollout.clock.now()
        if now >= start:
            break
        attempt += 1
        failed = await _judge_guard(rollout, guard, now, attempt)
        if failed is not None:
            return failed
    return None


def approval_times(
    rollout: Rollout, phase: Phase, start: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """When to ask a go/no-go (None: now) and its deadline (None: the approval's own
    timeout, or none)."""
    approval = phase.approval
    if approval is None or approval.ask_at is None or start is None:
        return None, None
    tz = calendar_of(rollout).timezone
    return ask_moment(approval.ask_at, ready=rollout.clock.now(), start=start, tz=tz), start


async def _judge_guard(
    rollout: Rollout, state: PhaseState, now: datetime, attempt: int
) -> Decision | None:
    """One look at the guarding phase's gate during a wait: its ROLLBACK decision when
    it failed and the policy says so, else None (a pass leaves no trace)."""
    result = await rollout.evaluate(state, state.phase.checkpoints[-1], now, attempt, quiet=True)
    if result.outcome is not Outcome.FAIL:
        return None
    from .judging import summarize  # noqa: PLC0415

    decision, state.policy = rollout.decide(
        state, result, last=False, now=now, why=summarize(result)
    )
    return decision if decision.action is Action.ROLLBACK else None
