"""The bodies of the run's steps: judging a checkpoint, evaluating a gate, holding.

Kept apart from :mod:`.rollout` (which puts the parts together) so each reads top
to bottom: wait → measure → judge → re-read the balancer → decide → journal →
apply the effect → only then tell the observers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .._approval import ApprovalAnswer, ApprovalState
from .._model import (
    Action,
    Checkpoint,
    CheckpointResult,
    Criterion,
    Decision,
    GateResult,
    Kind,
    Measurement,
    Outcome,
    Phase,
    Verdict,
)
from .._policy import PolicyState
from .context import PhaseState
from .events import EventKind, decision_data, measurement_data, verdict_data
from .judging import Looked, judge_gate, summarize
from .replay import CheckpointProgress
from .waits import until_allowed
from .watch import WatchFailure, failure_decision, journal_failure, watch_until

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = ["evaluate", "fail_checks", "judge_checkpoint", "resumed_phase", "unapproved"]


def resumed_phase(rollout: Rollout, phase: Phase) -> PhaseState | None:
    """The phase in progress when the run stopped, rebuilt from the journal."""
    journal = rollout.journal_state
    if journal is None or phase.name not in journal.progress:
        return None
    progress = journal.progress[phase.name]
    if progress.ended is not None and progress.ended.action is Action.ADVANCE:
        return None
    state = PhaseState(
        phase=phase,
        started_at=progress.started_at,
        policy=progress.policy if progress.ended is None else PolicyState(),
        traffic=progress.traffic,
    )
    if progress.traffic is not None:
        # (A resumed stepped phase judges its next interval on the current step's share.)
        state.shares.append((0.0, progress.traffic))
    if progress.ended is not None and progress.ended.action is Action.ROLLBACK:
        # Rolled back before the process died: the run ends here, never restarts it.
        state.decision = progress.ended
        state.ended_in_journal = True
        return state
    _restore_judges(state, progress.judges)
    if progress.watch:
        state.watch_saved = progress.watch
        _restore_looks(state, progress.watch.get("looked") or {})
    for cp in phase.checkpoints:
        done = progress.checkpoints.get(cp.name)
        if done is not None:
            state.results.extend(done.results)
    if progress.ended is not None:
        # Held for a person, who now runs it again: carry on with fresh counters.
        rollout.ctx.journal(
            EventKind.HOLD_RELEASED, phase=phase.name, data={"reason": progress.ended.reason}
        )
        journal.progress[phase.name].ended = None
        state.released = True
    return state


def _by_criterion(state: PhaseState, saved: Mapping[str, Any]) -> dict[int, Any]:
    """Values journaled by criterion text, keyed by the gate's criterion index."""
    criteria = state.phase.gate.criteria
    return {i: saved[c.text] for i, c in enumerate(criteria) if c.text in saved}


def _restore_judges(state: PhaseState, saved: Mapping[str, Any]) -> None:
    """Sequential test states from the journal, by criterion text."""
    if not saved:
        return
    from .. import _judge as judge  # noqa: PLC0415

    for index, value in _by_criterion(state, saved).items():
        state.judges[index] = judge.state_from_dict(value)


def _restore_looks(state: PhaseState, looked: Mapping[str, Any]) -> None:
    for index, value in _by_criterion(state, looked).items():
        state.looks[index] = float(value)


def unapproved(
    rollout: Rollout, phase: Phase, answer: ApprovalAnswer, deadline: datetime | None = None
) -> Decision:
    """The decision when a phase's go/no-go was not given (by its deadline)."""
    assert phase.approval is not None
    if answer.state is ApprovalState.PENDING and deadline is not None:
        due = f"{deadline:%Y-%m-%d %H:%M} UTC"
        why = f"no answer to the {phase.approval.prompt} of {phase.name} by {due}"
        if phase.approval.on_deadline == "reject":
            return Decision(action=Action.ROLLBACK, reason=f"{why}: rejected, as the plan says")
        return Decision(action=Action.HOLD, reason=f"{why}: held for a person, as the plan says")
    if answer.state is ApprovalState.REJECTED:
        why = f"no-go for {phase.name} by {answer.by or 'someone'}"
        if answer.reason:
            why += f" ({answer.reason})"
        return Decision(action=Action.ROLLBACK, reason=why)
    how = (
        f"approve with 'gatekeeper approve {rollout.run_id} --phase {phase.name} "
        f"--by NAME' (in CI: GATEKEEPER_APPROVE={phase.name})"
        if not rollout.ctx.rehearsal
        else "the recording withholds it"
    )
    assert phase.approval is not None
    return Decision(
        action=Action.HOLD, reason=f"waiting for the {phase.approval.prompt} of {phase.name}: {how}"
    )


async def judge_checkpoint(  # noqa: PLR0915 - wait, judge, decide, journal, apply: one loop
    rollout: Rollout, state: PhaseState, checkpoint: Checkpoint
) -> list[CheckpointResult]:
    ctx = rollout.ctx
    phase = state.phase
    last = checkpoint == phase.checkpoints[-1]
    due = state.started_at + checkpoint.offset
    results: list[CheckpointResult] = []
    attempt = 0
    journaled = _journaled(rollout, phase, checkpoint)
    orphan = None
    if journaled is not None:
        results = list(journaled.results)
        decision = results[-1].decision if results else None
        released = decision is not None and decision.action is Action.HOLD and state.released
        if journaled.settled and not released:
            if decision is not None and decision.action is Action.ROLLBACK:
                # Idempotent: finishes a rollback the dead process had not confirmed.
                await rollout.rollback(phase, decision.reason)
            if decision is not None and decision.final:
                state.decision = decision
            return results  # judged before the run was interrupted: never again
        if released:
            # A person released a final hold: judge this checkpoint again, now.
            state.released = False
            attempt = results[-1].result.attempt
            due = rollout.clock.now()
        elif results:
            attempt = results[-1].result.attempt
            recheck = results[-1].decision.recheck_at
            assert recheck is not None
            due = recheck
        orphan = journaled.orphan
    if checkpoint.traffic is not None and checkpoint.traffic != state.traffic:
        # The next step of a stepped phase starts when the previous one ended.
        assert checkpoint.step_start is not None
        await rollout.wait_until(state.started_at + checkpoint.step_start)
        held = await until_allowed(rollout, state, phase, f"{phase.name} steps up")
        if held is not None:
            state.decision = held
            if held.action is Action.ROLLBACK:
                await rollout.rollback(phase, held.reason)
            return results
        await rollout.traffic.set(
            phase, checkpoint.traffic, f"{phase.name} steps up to {checkpoint.traffic:g}%"
        )
        state.traffic = checkpoint.traffic
        state.shares.append(
            ((rollout.clock.now() - state.started_at).total_seconds(), checkpoint.traffic)
        )
        ctx.journal(
            EventKind.STEP_STARTED,
            phase=phase.name,
            checkpoint=checkpoint.name,
            data={"traffic": checkpoint.traffic},
        )
    while True:
        failure = await watch_until(rollout, state, due)
        if failure is not None:
            attempt += 1
            results.append(await _watch_failed(rollout, state, checkpoint, failure, attempt))
            return results
        now = rollout.clock.now()
        attempt += 1
        with ctx.span(
            "gatekeeper.checkpoint",
            {
                "gatekeeper.phase": phase.name,
                "gatekeeper.checkpoint": checkpoint.name,
                "gatekeeper.attempt": attempt,
            },
        ) as span:
            if orphan is not None and orphan.attempt == attempt:
                # Judged, but the decision was never journaled: decide on the
                # journaled verdicts rather than judging the checkpoint again.
                result, now = orphan, orphan.at
                assert journaled is not None
                _restore_judges(state, journaled.orphan_judges)
            else:
                result = await evaluate(rollout, state, checkpoint, now, attempt)
            orphan = None
            drift = await rollout.traffic.drift(phase)
            if drift is not None and result.outcome is not Outcome.FAIL:
                # The gate never passes on a split the run did not set; a failure
                # still rolls back below.
                decision = Decision(action=Action.HOLD, reason=drift)
            else:
                decision, state.policy = rollout.decide(
                    state, result, last=last, now=now, why=summarize(result)
                )
            if decision.action is Action.ADVANCE and phase is not rollout.plan.phases[-1]:
                decision = (
                    await until_allowed(rollout, state, phase, f"{phase.name} advances") or decision
                )
            if span is not None:
                span.set_attribute("gatekeeper.outcome", result.outcome.value)
                span.set_attribute("gatekeeper.decision", decision.action.value)
        item = _decided(rollout, state, checkpoint, result, decision)
        results.append(item)
        if decision.final:
            state.decision = decision
        if decision.action is Action.ROLLBACK:
            await rollout.rollback(phase, decision.reason)  # the effect, before any observer
        next_name, next_at = _next(rollout, state, checkpoint, decision)
        await ctx.observers.emit(
            "checkpoint_judged",
            run=ctx.info,
            phase=phase,
            result=result,
            decision=decision,
            next_at=next_at,
            next_checkpoint=next_name,
        )
        if decision.action is Action.HOLD and decision.recheck_at is not None:
            due = decision.recheck_at
            continue
        return results


async def evaluate(
    rollout: Rollout,
    state: PhaseState,
    checkpoint: Checkpoint,
    at: datetime,
    attempt: int = 1,
    *,
    quiet: bool = False,
) -> GateResult:
    """Measure and judge the phase's gate at ``at``, journaling every measurement,
    verdict and judge state. ``quiet`` (the looks a wait takes between checkpoints):
    a look that passes leaves no trace; anything else is journaled whole."""
    phase = state.phase
    since_start = at - state.started_at
    needs = rollout.measurer.needs(phase, since_start)
    measured = await rollout.measurer.all(needs, at, since_start, phase.name)
    looked = judge_gate(
        rollout.plan,
        phase,
        checkpoint.name,
        measured,
        at=at,
        started_at=state.started_at,
        attempt=attempt,
        last=checkpoint == phase.checkpoints[-1],
        share=state.traffic if state.traffic is not None else phase.traffic,
        prerun=rollout.prerun,
        history=state.history,
        judges=state.judges,
        budget=rollout.budget,
        shares=state.shares,
        looks=state.looks,
    )
    state.judges.update(looked.judges)
    for index in looked.judges:
        state.looks[index] = since_start.total_seconds()
    if not quiet or looked.result.outcome is not Outcome.PASS:
        _journal_look(rollout, state, checkpoint, measured.values(), looked, attempt)
    # Remember canary values for stability judged from checkpoint history.
    for (metric, variant, ranged), m in measured.items():
        if variant == "canary" and not ranged and m.problem is None and m.value is not None:
            state.history.setdefault(metric, []).append((at, m.value))
    return looked.result


def _journal_look(
    rollout: Rollout,
    state: PhaseState,
    checkpoint: Checkpoint,
    measurements: Iterable[Measurement],
    looked: Looked,
    attempt: int,
) -> None:
    ctx = rollout.ctx
    mark = {"attempt": attempt}
    phase = state.phase
    for m in measurements:
        ctx.journal(
            EventKind.MEASUREMENT,
            phase=phase.name,
            checkpoint=checkpoint.name,
            data={**measurement_data(m), **mark},
        )
    for index, judge_state in looked.judges.items():
        ctx.journal(
            EventKind.JUDGE_STATE,
            phase=phase.name,
            data={"criterion": phase.gate.criteria[index].text, "state": judge_state.to_dict()},
        )
    for v in looked.result.verdicts:
        ctx.journal(
            EventKind.VERDICT,
            phase=phase.name,
            checkpoint=checkpoint.name,
            data={**verdict_data(v), **mark},
        )


def _journaled(rollout: Rollout, phase: Phase, checkpoint: Checkpoint) -> CheckpointProgress | None:
    journal = rollout.journal_state
    if journal is None or phase.name not in journal.progress:
        return None
    return journal.progress[phase.name].checkpoints.get(checkpoint.name)


def _next(
    rollout: Rollout, state: PhaseState, checkpoint: Checkpoint, decision: Decision
) -> tuple[str | None, datetime | None]:
    if decision.action is Action.HOLD and decision.recheck_at is not None:
        return checkpoint.name + " (re-check)", decision.recheck_at
    if decision.action is not Action.CONTINUE:
        return None, None
    if not state.positions:  # (built once: finding the next checkpoint is O(1))
        state.positions = {c.name: i for i, c in enumerate(state.phase.checkpoints)}
    following = state.phase.checkpoints[state.positions[checkpoint.name] + 1]
    return following.name, max(state.started_at + following.offset, rollout.clock.now())


async def fail_checks(
    rollout: Rollout, state: PhaseState, checkpoint: Checkpoint, failed: list[str]
) -> CheckpointResult:
    """Tests a person attached to a checkpoint (``@pytest.mark.checkpoint``) failed:
    the checkpoint's gate failed, whatever the metrics said, and the policy decides
    (roll back, or hold) — even when the metrics had let the phase advance."""
    ctx = rollout.ctx
    phase = state.phase
    now = rollout.clock.now()
    previous = next(
        (r.result for r in reversed(state.results) if r.result.checkpoint == checkpoint.name),
        None,
    )
    checks = tuple(
        Verdict(
            criterion=Criterion(text=f"test {nodeid}", kind=Kind.THRESHOLD, metric=nodeid),
            outcome=Outcome.FAIL,
            reason="the test failed at this checkpoint",
        )
        for nodeid in failed
    )
    attempt = (previous.attempt if previous is not None else 0) + 1
    result = GateResult(
        phase=phase.name,
        checkpoint=checkpoint.name,
        at=now,
        verdicts=(previous.verdicts if previous is not None else ()) + checks,
        attempt=attempt,
    )
    why = f"{len(failed)} test(s) failed at {checkpoint.name}: {', '.join(failed)}"
    decision, state.policy = rollout.decide(state, result, last=False, now=now, why=why)
    if decision.action is Action.HOLD and decision.recheck_at is not None:
        # A failed test is not re-run: hold for a person instead of re-checking.
        decision = Decision(action=Action.HOLD, reason=why)
    for v in checks:
        ctx.journal(
            EventKind.VERDICT,
            phase=phase.name,
            checkpoint=checkpoint.name,
            data={**verdict_data(v), "attempt": attempt},
        )
    item = _decided(rollout, state, checkpoint, result, decision, outcome=Outcome.FAIL)
    await _stop(rollout, state, result, decision)
    return item


async def _stop(
    rollout: Rollout, state: PhaseState, result: GateResult, decision: Decision
) -> None:
    """A decision that ends the phase early: apply it (the rollback, before any
    observer), then tell the observers."""
    state.decision = decision
    if decision.action is Action.ROLLBACK:
        await rollout.rollback(state.phase, decision.reason)
    await rollout.ctx.observers.emit(
        "checkpoint_judged",
        run=rollout.ctx.info,
        phase=state.phase,
        result=result,
        decision=decision,
        next_at=None,
        next_checkpoint=None,
    )


async def _watch_failed(
    rollout: Rollout,
    state: PhaseState,
    checkpoint: Checkpoint,
    failure: WatchFailure,
    attempt: int,
) -> CheckpointResult:
    """The watch failed before ``checkpoint``: journaled as that checkpoint's decision,
    so a resumed run never judges the phase again; the phase's ``on_fail`` at once."""
    result = attrs.evolve(failure.result, checkpoint=checkpoint.name, attempt=attempt)
    journal_failure(rollout, state, checkpoint.name, result, attempt)
    why = f"{failure.reason}, before its {checkpoint.name} checkpoint: " + "; ".join(failure.failed)
    decision = failure_decision(rollout, state.phase, why)
    item = _decided(rollout, state, checkpoint, result, decision)
    await _stop(rollout, state, result, decision)
    return item


def _decided(
    rollout: Rollout,
    state: PhaseState,
    checkpoint: Checkpoint,
    result: GateResult,
    decision: Decision,
    *,
    outcome: Outcome | None = None,
) -> CheckpointResult:
    """Journal a checkpoint's decision (with the policy's counters) and keep it."""
    rollout.ctx.journal(
        EventKind.DECISION,
        phase=state.phase.name,
        checkpoint=checkpoint.name,
        data={
            **decision_data(decision),
            "outcome": (outcome or result.outcome).value,
            "attempt": result.attempt,
            "policy": attrs.asdict(state.policy),
        },
    )
    item = CheckpointResult(result=result, decision=decision)
    state.results.append(item)
    return item
