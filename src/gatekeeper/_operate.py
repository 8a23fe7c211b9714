"""A person's commands on a run: approve, reject, rollback, hold, resume.

Each one goes into the run's journal through the operator channel (an append the
runner's lease does not fence), so it reaches a live runner within seconds. With
no live runner, ``rollback`` applies itself: intent, balancer write, read-back,
all journaled; ``hold``, ``resume`` and the answers wait for the next runner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs

from ._model import Plan
from ._protocols import Event, RunInfo, Store
from ._run.events import EventKind
from ._run.start import FINISHED
from .exceptions import PlanError, TrafficError
from .store.base import LeasingStore

__all__ = ["LIVE_ROLLBACK_WAIT", "answer", "freeze", "hold", "rollback"]

#: How long ``gatekeeper rollback`` waits for a live runner to apply it before it
#: says so (the runner reads the journal about once a second).
LIVE_ROLLBACK_WAIT = 30.0


def _request(
    store: Store, run_id: str, kind: EventKind, data: Mapping[str, Any], phase: str | None = None
) -> int:
    event = Event(kind=kind, at=datetime.now(UTC), phase=phase, data=dict(data))
    return store.append(run_id, event, fenced=False)


def _who(by: str | None) -> str:
    who = (by or "").strip()
    if not who or not who.isprintable():
        raise PlanError("--by names who decides: it must not be empty")
    return who


def _open(info: RunInfo, what: str) -> None:
    if info.status in FINISHED:
        raise PlanError(
            f"run {info.run_id} already finished ({info.status}): {what} would change "
            "nothing; start a new run of the plan instead"
        )


def answer(
    store: Store,
    plan: Plan,
    info: RunInfo,
    *,
    give: bool,
    phase: str | None,
    by: str,
    reason: str,
    out: TextIO,
) -> int:
    """Record a go/no-go, bound to this run and phase; counted by the runner even
    when given before the phase asks."""
    who = _who(by)
    verb = "approve" if give else "reject"
    _open(info, f"an answer to {verb}")
    if phase is None:
        asked = [e.phase for e in store.events(info.run_id) if e.kind == "approval_requested"]
        if not asked:
            raise PlanError(f"run {info.run_id} has not asked for an approval: name the --phase")
        phase = asked[-1]
    assert phase is not None
    if plan.phase(phase).approval is None:  # an unknown phase lists the known ones
        raise PlanError(f"phase {phase!r} of plan {plan.name!r} asks for no approval")
    kind = EventKind.APPROVAL_GIVEN if give else EventKind.APPROVAL_REJECTED
    _request(
        store,
        info.run_id,
        kind,
        {"by": who, "reason": reason or f"gatekeeper {verb}"},
        phase=phase,
    )
    print(f"run {info.run_id}: {phase} {verb}d by {who}", file=out)
    return 0


def hold(store: Store, info: RunInfo, *, resume: bool, by: str, reason: str, out: TextIO) -> int:
    """Stop advancing (keep judging; a rollback stays allowed), or go on again."""
    who = _who(by)
    _open(info, "resume" if resume else "a hold")
    kind = EventKind.RESUME_REQUESTED if resume else EventKind.HOLD_REQUESTED
    _request(store, info.run_id, kind, {"by": who, "reason": reason})
    if resume:
        print(f"run {info.run_id}: resumed by {who}", file=out)
    else:
        print(
            f"run {info.run_id}: held by {who}: it judges on but advances nothing and raises no "
            f"traffic until 'gatekeeper resume {info.run_id} --by NAME'",
            file=out,
        )
    return 0


def freeze(
    store: Store, info: RunInfo, *, until: datetime, by: str, reason: str, out: TextIO
) -> int:
    """Add a freeze to a run (an incident elsewhere): nothing advances or raises
    traffic until ``until``; judging and rollback go on."""
    who = _who(by)
    _open(info, "a freeze")
    if until <= datetime.now(UTC):
        raise PlanError(f"--until {until.isoformat()} is not in the future")
    _request(
        store,
        info.run_id,
        EventKind.FREEZE_REQUESTED,
        {"until": until.isoformat(), "by": who, "reason": reason},
    )
    print(
        f"run {info.run_id}: frozen by {who} until {until:%Y-%m-%d %H:%M} UTC: it judges on, "
        "advances nothing and raises no traffic until then",
        file=out,
    )
    return 0


def _live_holder(store: Store, run_id: str) -> str | None:
    """Who drives the run now, or ``None`` when nobody does (or nothing leases)."""
    if not isinstance(store, LeasingStore):
        return None
    found = store.lease_holder(run_id)
    return None if found is None else str(found.owner)


def _applied(store: Store, run_id: str, seq: int) -> str | None:
    for event in store.events(run_id, after=seq):
        if event.kind == EventKind.OPERATOR_APPLIED and int(event.data.get("request", 0)) == seq:
            return str(event.data.get("what", "applied"))
        if event.kind == EventKind.RUN_ENDED:
            return str(event.data.get("outcome", "ended"))
    return None


def rollback(
    store: Store,
    plan: Plan,
    info: RunInfo,
    *,
    by: str,
    reason: str,
    out: TextIO,
    wait: float = LIVE_ROLLBACK_WAIT,
) -> int:
    """All traffic back to the baseline: through the live runner if there is one,
    else applied here. Exit 0 once confirmed, 3 when it is not (yet)."""
    who = (by or "").strip() or "an operator"
    seq = _request(store, info.run_id, EventKind.ROLLBACK_REQUESTED, {"by": who, "reason": reason})
    owner = _live_holder(store, info.run_id)
    if owner is not None:
        print(f"run {info.run_id}: rollback requested; {owner} drives it", file=out)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            done = _applied(store, info.run_id, seq)
            if done is not None:
                print(f"run {info.run_id}: rolled back by its runner ({done})", file=out)
                return 0
            time.sleep(0.2)
            if _live_holder(store, info.run_id) is None:
                break  # the runner died meanwhile: apply it here
        else:
            print(
                f"run {info.run_id}: the runner has not applied the rollback in {wait:g}s; it "
                "stays requested and the runner applies it at its next step",
                file=out,
            )
            return 3
    return _apply_here(store, plan, info, seq=seq, why=f"rolled back by {who}: {reason}", out=out)


def _apply_here(store: Store, plan: Plan, info: RunInfo, *, seq: int, why: str, out: TextIO) -> int:
    return asyncio.run(_rollback_here(store, plan, info, seq=seq, why=why, out=out))


async def _rollback_here(
    store: Store, plan: Plan, info: RunInfo, *, seq: int, why: str, out: TextIO
) -> int:
    """With no live runner: the engine's own rollback sequence (lease, intent marked
    rollback, retried write, read-back, confirmation) in the run's journal."""
    from ._clock import SystemClock  # noqa: PLC0415
    from ._plugins import default_plugins  # noqa: PLC0415
    from ._run import RunContext, build_traffic, call, plugin_context  # noqa: PLC0415
    from ._run.build import run_redactor  # noqa: PLC0415
    from ._run.lease import LeaseKeeper  # noqa: PLC0415
    from ._run.observers import Observers  # noqa: PLC0415
    from ._run.traffic import TrafficControl  # noqa: PLC0415

    plugins = default_plugins()
    context = plugin_context(plan)
    redactor = run_redactor(plan, context.env, None)
    lease = LeaseKeeper(store)
    ctx = RunContext(
        plan=plan,
        store=store,
        clock=SystemClock(),
        observers=Observers(plugins, threaded=True),
        lease=lease,
        redact=redactor.redact_data,
    )
    ctx.open(info.run_id, info.started_at)
    backend = build_traffic(plan, plugins, attrs.evolve(context, redactor=redactor))
    lease.take(info.run_id)
    try:
        try:
            split = await TrafficControl(ctx, backend).rollback(None, why)
        except TrafficError as exc:
            print(
                f"run {info.run_id}: rollback NOT confirmed: {exc}. It stays pending: run "
                "'gatekeeper rollback' again, or the next 'gatekeeper run' finishes it first",
                file=out,
            )
            return 3
        assert split is not None
        ctx.journal(
            EventKind.OPERATOR_APPLIED,
            data={
                "request": seq,
                "kind": "rollback_requested",
                "what": "rolled back (no live runner)",
            },
        )
        if info.status != "rolled back":
            ctx.journal(EventKind.RUN_ENDED, data={"outcome": "rolled back", "reason": why})
            store.set_status(info.run_id, "rolled back")
    finally:
        lease.release()
        closer = getattr(backend, "aclose", None) or getattr(backend, "close", None)
        if closer is not None:
            await call(closer)
    print(f"run {info.run_id}: rolled back, canary at {split.canary:g}%", file=out)
    return 0
