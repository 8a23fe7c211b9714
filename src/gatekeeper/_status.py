"""Where runs are, read from their journals: ``gatekeeper status`` and ``history``.

``status`` needs no plan file: what a run waits for, its next checkpoint and its
expected end come from the journal (``run_started``'s schedule, ``phase_started``,
the last decision). A plan is used only for a journal written before schedules were
journaled, and only when it is the plan the run started with (same digest).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._model import Plan
from ._protocols import Event, RunInfo, Store
from ._schedule import PhaseSchedule, PlanTiming, outlook, schedule_from, schedule_of
from .exceptions import StoreError

__all__ = [
    "default_store_target",
    "describe_run",
    "format_event",
    "open_journal",
    "open_plan_store",
    "run_state",
]

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


def open_journal(
    plan: Plan | None, target: str | None, env: Mapping[str, str] | None = None
) -> Store:
    """The store for a journal command: the plan's (as :func:`open_plan_store`), or
    with no plan file the one named by ``--store`` or ``$GATEKEEPER_STORE``."""
    if plan is not None:
        return open_plan_store(plan, target)
    env = os.environ if env is None else env
    target = target or env.get(STORE_ENV)
    if not target:
        raise StoreError("no plan file and no journal: name one with --store or $GATEKEEPER_STORE")
    from .store import open_store  # noqa: PLC0415

    return open_store(target)


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


def _schedule(
    info: RunInfo, events: Sequence[Event], plan: Plan | None
) -> tuple[PhaseSchedule, ...] | None:
    """The run's schedule: journaled at its start, else the plan's when it is the plan
    the run started with."""
    started = next((e for e in events if e.kind == "run_started"), None)
    if started is not None:
        journaled = schedule_from(started.data.get("schedule"))
        if journaled is not None:
            return journaled
    if plan is None or not _same_plan(info, plan):
        return None
    names = started.data.get("phases") if started is not None else None
    try:
        return schedule_of(plan.select(list(names) if isinstance(names, list) else None))
    except KeyError:
        return None


def _same_plan(info: RunInfo, plan: Plan) -> bool:
    """Whether ``plan`` is the plan the run started with (as far as digests tell)."""
    return not (plan.digest and info.plan_digest and plan.digest != info.plan_digest)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def run_state(
    info: RunInfo,
    events: Sequence[Event],
    plan: Plan | None = None,
    command_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Where a run stands, as JSON-able data (``status --json`` prints it whole).

    ``command_args`` follow the ``gatekeeper approve`` command of a run waiting for
    an approval (``--plan``, ``--store`` when not the defaults)."""
    from ._report import answer_commands  # noqa: PLC0415 - one spelling of the commands

    asked: str | None = None  # the phase whose approval is awaited
    phase: str | None = None
    phase_started: datetime | None = None
    split: Any = None
    waiting = ""
    ended = False
    last: Event | None = None  # the last decision of the phase in progress
    pending: list[Event] = []  # verdicts of the evaluation not decided yet
    verdicts: list[Event] = []  # those of the last decided evaluation
    watch = _WatchView()
    for event in events:
        watch.fold(event)
        if event.kind == "phase_started":
            phase, last, ended, waiting = event.phase, None, False, ""
            phase_started = _when(event.data.get("started_at")) or event.at
        elif event.kind in ("traffic_confirmed", "traffic_read"):
            split = event.data.get("canary")
        elif event.kind == "approval_requested":
            waiting = f"waiting for the {event.data.get('prompt', 'approval')} of {event.phase}"
            asked = event.phase
        elif event.kind in ("approval_given", "approval_rejected"):
            waiting, asked = "", None
        elif event.kind == "phase_waiting":
            until = _when(event.data.get("until"))
            waiting = str(event.data.get("reason") or f"{event.phase} waits")
            waiting += f" (until {_clock(until)})" if until is not None else ""
        elif event.kind == "verdict":
            pending.append(event)
        elif event.kind == "decision":
            last = event
            verdicts, pending = pending, []
            recheck = event.data.get("recheck_at")
            waiting = f"re-check of {event.checkpoint} at {recheck}" if recheck else ""
        elif event.kind == "phase_ended":
            ended = True
        elif event.kind == "run_ended" and event.data.get("outcome") != "held":
            waiting = ""
    state: dict[str, Any] = {
        "phase": phase,
        "canary": split if isinstance(split, int | float) else None,
        "waiting": waiting or None,
        "next_checkpoint": None,
        "next_at": None,
        "phase_ends_at": None,
        "run_ends_at": None,
        "approvals_ahead": None,
        "last_decision": None,
        "approve": None,
        "reject": None,
        "watch": None,
    }
    if asked and waiting and info.status in ("running", "held"):
        state["approve"], state["reject"] = answer_commands(info.run_id, asked, command_args)
    state["last_decision"] = _decision(last, verdicts)
    if not ended:
        state["watch"] = watch.data()
    if info.status == "running" and phase is not None and phase_started is not None and not ended:
        state.update(_ahead(info, events, plan, phase, phase_started, last))
    return state


class _WatchView:
    """The phase in progress's watch, from its journaled changes and snapshots."""

    def __init__(self) -> None:
        self.looks: int | None = None
        self.at: datetime | None = None
        self.news: dict[str, str] = {}  # criterion -> its line, while not passing

    def fold(self, event: Event) -> None:
        if event.kind == "phase_started":
            self.looks, self.at, self.news = None, None, {}
        elif event.kind == "watch_snapshot":
            self.looks, self.at = int(event.data.get("looks", 0)), event.at
        elif event.kind == "watch_changed":
            self.looks, self.at = int(event.data.get("looks", 0)), event.at
            criterion = str(event.data.get("criterion", ""))
            if event.data.get("status") == "passing":
                self.news.pop(criterion, None)
            else:
                self.news[criterion] = str(event.data.get("line", ""))

    def data(self) -> dict[str, Any] | None:
        if self.looks is None:
            return None
        at = self.at.isoformat() if self.at is not None else None
        return {"looks": self.looks, "at": at, "news": list(self.news.values())}


def _ahead(
    info: RunInfo,
    events: Sequence[Event],
    plan: Plan | None,
    phase: str,
    phase_started: datetime,
    last: Event | None,
) -> dict[str, Any]:
    """A running phase's next checkpoint and the expected ends (empty: unknown)."""
    schedule = _schedule(info, events, plan)
    if schedule is None:
        return {"next_checkpoint": "unknown: the journal has no schedule; pass --plan"}
    found = _next_due(schedule, phase, phase_started, last)
    if found is None:
        return {}
    name, due = found
    timing = PlanTiming(plan) if plan is not None and _same_plan(info, plan) else None
    view = outlook(schedule, phase, phase_started, next_checkpoint=name, next_at=due, timing=timing)
    return view.to_data() if view is not None else {}


def _decision(last: Event | None, verdicts: Sequence[Event]) -> dict[str, Any] | None:
    """The last decision and its verdicts, as ``status --json`` shows them."""
    if last is None:
        return None
    return {
        "checkpoint": last.checkpoint,
        "at": last.at.isoformat(),
        **{k: last.data.get(k) for k in ("action", "reason", "outcome", "recheck_at")},
        "verdicts": [
            {k: v.data.get(k) for k in ("criterion", "outcome", "reason")} for v in verdicts
        ],
    }


def _next_due(
    schedule: Sequence[PhaseSchedule], phase: str, started: datetime, last: Event | None
) -> tuple[str | None, datetime | None] | None:
    """The phase's next checkpoint and when, after its ``last`` decision."""
    current = next((s for s in schedule if s.name == phase), None)
    if current is None or not current.checkpoints:
        return None
    if last is None:
        name, offset = current.checkpoints[0]
        return name, started + offset
    if last.data.get("recheck_at"):
        return f"{last.checkpoint} (re-check)", _when(last.data.get("recheck_at"))
    if last.data.get("action") == "continue" and last.checkpoint:
        following = current.after(last.checkpoint)
        return (None, None) if following is None else (following[0], started + following[1])
    return None


def describe_run(
    info: RunInfo,
    events: Sequence[Event],
    *,
    plan: Plan | None = None,
    now: datetime | None = None,
    command_args: Sequence[str] = (),
) -> list[str]:
    """A few lines: status, phase, traffic, what it waits for, what is next and when
    the phase and the run should end, the last verdicts."""
    from ._report import format_span  # noqa: PLC0415 - the console's way of saying spans

    state = run_state(info, events, plan, command_args)
    now = now or datetime.now(UTC)
    lines = [
        f"run {info.run_id} · plan {info.plan} · {info.status} · started {_clock(info.started_at)}"
    ]
    phase, canary = state["phase"], state["canary"]
    where = f"phase {phase}" if phase else "no phase started"
    traffic = f", canary at {canary:g}%" if canary is not None else ""
    lines.append(f"  {where}{traffic}")
    if state["waiting"]:
        lines.append(f"  {state['waiting']}")
    if state["approve"]:
        lines.append(f"    go:    {state['approve']}\n    no-go: {state['reject']}")

    def due(key: str) -> str:
        at = _when(state[key]) or now
        if at < now:
            return f"{_clock(at)} (overdue)"
        return f"{_clock(at)}, in {format_span(at - now)}"

    if state["next_at"]:
        lines.append(f"  next: {phase} @ {state['next_checkpoint']} at {due('next_at')}")
        ahead = state["approvals_ahead"]
        approvals = f" ({ahead} approval{'s' if ahead > 1 else ''} ahead)" if ahead else ""
        lines.append(f"  phase {phase} ends ~{due('phase_ends_at')}")
        lines.append(f"  run ends ~{due('run_ends_at')}{approvals}")
    elif state["next_checkpoint"]:
        lines.append(f"  next checkpoint {state['next_checkpoint']}")
    watch = state["watch"]
    if watch is not None:
        at = _when(watch["at"])
        when = f" by {_clock(at)}" if at is not None else ""
        health = "; ".join(watch["news"]) or "nothing failing"
        lines.append(f"  watch: {watch['looks']:,} looks{when}; {health}")
    decision = state["last_decision"]
    if decision is not None:
        lines.append(
            f"  last decision at {decision['checkpoint']}: {str(decision['action'] or '').upper()}"
            f" ({decision['reason'] or ''})"
        )
        lines.extend(
            f"    {str(v['outcome'] or '').upper():<12} {v['criterion']}: {v['reason']}"
            for v in decision["verdicts"]
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
