"""Where runs are, read from their journals: ``gatekeeper status`` and ``history``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from ._model import Plan
from ._protocols import Event, RunInfo, Store
from .exceptions import StoreError

__all__ = ["default_store_target", "describe_run", "format_event", "open_plan_store"]

STORE_ENV = "GATEKEEPER_STORE"


def default_store_target(plan: Plan, env: Mapping[str, str] | None = None) -> str:
    """Where a plan's journal lives: ``$GATEKEEPER_STORE`` if set, else a SQLite file
    next to the plan (``gates.toml`` → ``gates.journal.sqlite3``)."""
    env = os.environ if env is None else env
    if env.get(STORE_ENV):
        return env[STORE_ENV]
    if plan.path is None:
        return "memory:"
    # Absolute, once: the same journal from any working directory (a relative
    # target would be anchored at the plan's folder a second time).
    path = Path(plan.path).resolve()
    return str(path.with_name(path.stem + ".journal.sqlite3"))


def open_plan_store(plan: Plan, target: str | None = None) -> Store:
    """The store named on the command line, or the plan's default one."""
    from .store import open_store  # noqa: PLC0415 - sqlite3 and friends only when needed

    base = Path(plan.path).resolve().parent if plan.path else None
    return open_store(target or default_store_target(plan), base_dir=base)


def find_run(store: Store, run_id: str) -> RunInfo:
    """A run by id or unique prefix; ``StoreError`` naming the candidates otherwise."""
    runs = [r for r in store.runs() if r.run_id.startswith(run_id)]
    if len(runs) == 1:
        return runs[0]
    if not runs:
        known = ", ".join(r.run_id for r in store.runs()[-5:]) or "none"
        raise StoreError(f"no run {run_id!r} in the journal (latest: {known})")
    raise StoreError(f"{run_id!r} matches several runs: {', '.join(r.run_id for r in runs)}")


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_run(info: RunInfo, events: Sequence[Event]) -> list[str]:
    """A few lines: status, phase, traffic, what it waits for, the last verdicts."""
    lines = [
        f"run {info.run_id} · plan {info.plan} · {info.status} · started {_clock(info.started_at)}"
    ]
    phase = None
    split = None
    waiting = ""
    last_decision: Event | None = None
    pending: list[Event] = []  # verdicts of the evaluation not decided yet
    verdicts: list[Event] = []  # those of the last decided evaluation
    for event in events:
        if event.kind == "phase_started":
            phase = event.phase
        elif event.kind in ("traffic_confirmed", "traffic_read"):
            split = event.data.get("canary")
        elif event.kind == "approval_requested":
            waiting = f"waiting for the {event.data.get('prompt', 'approval')} of {event.phase}"
        elif event.kind in ("approval_given", "approval_rejected"):
            waiting = ""
        elif event.kind == "verdict":
            pending.append(event)
        elif event.kind == "decision":
            last_decision = event
            verdicts, pending = pending, []
            recheck = event.data.get("recheck_at")
            waiting = f"re-check of {event.checkpoint} at {recheck}" if recheck else ""
        elif event.kind == "run_ended" and event.data.get("outcome") != "held":
            waiting = ""
    where = f"phase {phase}" if phase else "no phase started"
    traffic = f", canary at {split:g}%" if isinstance(split, int | float) else ""
    lines.append(f"  {where}{traffic}")
    if waiting:
        lines.append(f"  {waiting}")
    if last_decision is not None:
        data = last_decision.data
        lines.append(
            f"  last decision at {last_decision.checkpoint}: {str(data.get('action', '')).upper()}"
            f" ({data.get('reason', '')})"
        )
        lines.extend(
            f"    {str(v.data.get('outcome', '')).upper():<12} {v.data.get('criterion')}: "
            f"{v.data.get('reason')}"
            for v in verdicts
        )
    return lines


def format_event(event: Event) -> str:
    """One journal entry as a line a person reads."""
    where = " ".join(x for x in (event.phase, event.checkpoint and f"@ {event.checkpoint}") if x)
    data = event.data
    kind = event.kind
    if kind == "measurement":
        value = data.get("value") if data.get("reason") is None else data.get("reason")
        detail = f"{data.get('metric')} ({data.get('variant')}) = {value}  [{data.get('query')}]"
    elif kind == "verdict":
        detail = f"{str(data.get('outcome')).upper()} {data.get('criterion')}: {data.get('reason')}"
    elif kind == "decision":
        detail = f"{str(data.get('action')).upper()}: {data.get('reason')}"
    elif kind.startswith("traffic"):
        detail = ", ".join(f"{k}={v}" for k, v in data.items())
    else:
        detail = ", ".join(f"{k}={v}" for k, v in data.items() if k != "state")
    return f"{event.seq:>5} {_clock(event.at)} {kind:<19} {where:<24} {detail}".rstrip()
