"""Starting a run: claim it (or the unfinished one), reconcile, record pre-run values.

Finding the plan's unfinished run and creating a new one is one atomic step where
the store offers it (``claim_run``), so two runners started together never drive
two runs. A finished run that already covered the phases asked for is reported,
not repeated, unless ``restart``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._model import Phase, Reference, RunOutcome, RunResult
from .._protocols import RunInfo
from ..exceptions import GatekeeperError
from ..store.base import FINISHED_STATUSES, LeasingStore
from .events import EventKind, measurement_data
from .measure import DEFAULT_CHECK_WINDOW, Need
from .replay import Journal, replay

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = ["check_previous_phase", "claim", "record_prerun", "resume"]

FINISHED = FINISHED_STATUSES


async def claim(rollout: Rollout, phases: Sequence[Phase]) -> RunInfo | None:
    """The run this rollout drives: an unfinished one of the same plan (resumed), a
    finished one that already covered ``phases`` (reported: ``rollout.result`` is
    set), or ``None`` when a new run must be created."""
    store: Any = rollout.store
    names = [p.name for p in phases]
    now = rollout.clock.now()
    if isinstance(store, LeasingStore):
        after: str | None = None
        while True:
            got = store.claim_run(
                plan=rollout.plan.name,
                plan_digest=rollout.plan.digest,
                started_at=now,
                restart=rollout.restart,
                wait=rollout.lease.wait,
                after=after,
            )
            if got.lease is not None:
                rollout.lease.hold(got.lease)
            info: RunInfo = got.run
            if got.created:
                return _created(rollout, info)
            if not got.finished:
                return info
            journal = replay(rollout.plan, info.run_id, store.events(info.run_id))
            if set(names) <= set(journal.phases) or info.run_id == after:
                rollout.result = _reported(rollout, info.run_id, journal)
                rollout.reported = True
                return info
            after = info.run_id  # phases it did not cover: a new run, atomically
    # Stores without an atomic claim (the in-memory one): the same rules, unlocked.
    runs = [r for r in store.runs() if r.plan == rollout.plan.name and r.status != "restarted"]
    if not runs:
        return None
    latest: RunInfo = runs[-1]
    if latest.status in FINISHED:
        if rollout.restart:
            return None
        journal = replay(rollout.plan, latest.run_id, store.events(latest.run_id))
        if set(names) <= set(journal.phases):
            rollout.result = _reported(rollout, latest.run_id, journal)
            rollout.reported = True
            return latest
        return None
    if rollout.restart:
        _abandon(rollout, latest, "restarted (--restart)")
        return None
    rollout.lease.take(latest.run_id)
    return latest


def _created(rollout: Rollout, info: RunInfo) -> RunInfo:
    rollout.created = info
    return info


def _abandon(rollout: Rollout, info: RunInfo, why: str) -> None:
    from .._protocols import Event  # noqa: PLC0415

    rollout.store.append(
        info.run_id,
        Event(kind=EventKind.ABANDONED, at=rollout.clock.now(), data={"reason": why}),
    )
    rollout.store.set_status(info.run_id, "restarted")


def _reported(rollout: Rollout, run_id: str, journal: Journal) -> RunResult:
    """A finished run, as its journal tells it: nothing is done again."""
    reason = ""
    for event in reversed(rollout.store.events(run_id)):
        if event.kind == EventKind.RUN_ENDED:
            reason = str(event.data.get("reason", ""))
            break
    outcome = RunOutcome(journal.finished) if journal.finished in FINISHED else RunOutcome.ERROR
    return RunResult(
        run_id=run_id,
        plan=rollout.plan.name,
        outcome=outcome,
        reason=(
            f"run {run_id} already finished ({outcome.value}: {reason}); nothing was "
            "done again: pass --restart (restart=True) to start the plan over"
        ),
        phases=(),
        split=None,
    )


def check_previous_phase(rollout: Rollout, phases: Sequence[Phase]) -> None:
    """A later phase on its own needs the phase before it advanced in the journal,
    and the plan's last run not rolled back — unless forced."""
    if rollout.force or rollout.ctx.rehearsal or rollout.ctx.judge_only or not phases:
        return
    plan = rollout.plan
    store = rollout.store
    runs = [
        info
        for info in store.runs()
        if info.plan == plan.name and info.run_id != rollout.run_id and info.status != "restarted"
    ]
    journals = [replay(plan, info.run_id, store.events(info.run_id)) for info in runs]
    if rollout.journal_state is not None:
        journals.append(rollout.journal_state)
    for journal in reversed(journals):
        if journal.rolled_back:
            raise GatekeeperError(
                f"run {journal.run_id} of plan {plan.name!r} was rolled back "
                f"({journal.rolled_back}); a rollback stays a rollback: pass --force "
                f"(pytest: --gate-force) to move traffic to {phases[0].name!r} anyway"
            )
        if journal.phases:
            break  # the latest run that did anything decides
    index = plan.phases.index(phases[0])
    if index == 0:
        return
    before = plan.phases[index - 1].name
    if any(j.advanced(before) for j in journals):
        return
    raise GatekeeperError(
        f"phase {phases[0].name!r} follows {before!r}, which has not advanced in the "
        f"journal; run {before!r} first, or pass --force (pytest: --gate-force) to judge "
        f"{phases[0].name!r} anyway"
    )


async def resume(
    rollout: Rollout, run_id: str, status: str, started_at: datetime, phases: Sequence[Phase]
) -> None:
    journal = replay(rollout.plan, run_id, rollout.store.events(run_id))
    if journal.finished in FINISHED:
        # The run ended in its journal; the process died before marking it finished.
        rollout.store.set_status(run_id, journal.finished)
        rollout.result = _reported(rollout, run_id, journal)
        rollout.reported = True
        return
    rollout.journal_state = journal
    advance = getattr(rollout.clock, "advance_to", None)
    if advance is not None and journal.last_at is not None:
        advance(journal.last_at)  # a simulated clock never goes back before the journal
    rollout.prerun = dict(journal.prerun)
    rollout.ctx.open(run_id, journal.started_at or started_at, resumed=True)
    rollout.store.set_status(run_id, "running")
    rollout.ctx.journal(
        EventKind.RESUMED, data={"status": status, "phases": [p.name for p in phases]}
    )
    await rollout.observers.emit("run_started", run=rollout.info)
    await rollout.traffic.reconcile(journal)
    if journal.rolled_back:
        # A rollback stays a rollback: finished above if it was not, then the run ends.
        rollout.result = await rollout.finish(
            RunOutcome.ROLLED_BACK, f"rolled back before this resume: {journal.rolled_back}"
        )
        return
    check_previous_phase(rollout, phases)


async def record_prerun(rollout: Rollout, phases: Sequence[Phase]) -> None:
    wanted = {c.metric for p in phases for c in p.gate.criteria if c.reference is Reference.PRERUN}
    if not wanted:
        return
    at = rollout.ctx.origin or rollout.clock.now()
    measured = await asyncio.gather(
        *(
            rollout.measurer.measure(
                Need(metric=rollout.plan.metrics[name], variant="canary"),
                at,
                DEFAULT_CHECK_WINDOW,
                "",
            )
            for name in sorted(wanted)
        )
    )
    for m in measured:
        rollout.prerun[m.metric] = m
        rollout.ctx.journal(EventKind.PRERUN, data=measurement_data(m))
