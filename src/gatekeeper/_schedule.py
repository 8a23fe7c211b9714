"""When things are due: a run's schedule and what follows from it at a moment.

A schedule is the part of a plan that says when: each selected phase's checkpoints
(name and offset from the phase's start) and whether it waits for an approval. The
console reporter, ``gatekeeper status`` and the JSON output use it to say what is
next and when the phase and the run are expected to end. ``status`` reads it from
the journal (``run_started``'s ``schedule``, written by :func:`schedule_data`), or
from the plan file when the journal predates schedules.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from ._model import Phase, Plan
from ._units import format_duration

__all__ = [
    "Outlook",
    "PhaseSchedule",
    "PlanTiming",
    "Progress",
    "compact_checkpoints",
    "outlook",
    "schedule_data",
    "schedule_from",
    "schedule_of",
]

RECHECK = " (re-check)"


@attrs.frozen(kw_only=True)
class PhaseSchedule:
    """One phase's timing: checkpoints as (name, offset from the phase's start)."""

    name: str
    traffic: float
    checkpoints: tuple[tuple[str, timedelta], ...]
    approval: bool = False

    @property
    def duration(self) -> timedelta:
        return self.checkpoints[-1][1] if self.checkpoints else timedelta(0)

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        # Built once: a console asks at every checkpoint, and a series may be long.
        return {n: i for i, (n, _) in enumerate(self.checkpoints)}

    def offset(self, checkpoint: str) -> timedelta | None:
        index = self._positions.get(checkpoint.removesuffix(RECHECK))
        return None if index is None else self.checkpoints[index][1]

    def after(self, checkpoint: str) -> tuple[str, timedelta] | None:
        """The checkpoint following ``checkpoint`` (``None`` after the last)."""
        index = self._positions.get(checkpoint.removesuffix(RECHECK))
        if index is None or index + 1 >= len(self.checkpoints):
            return None
        return self.checkpoints[index + 1]


def schedule_of(phases: Iterable[Phase]) -> tuple[PhaseSchedule, ...]:
    return tuple(
        PhaseSchedule(
            name=p.name,
            traffic=p.final_traffic,
            checkpoints=tuple((c.name, c.offset) for c in p.checkpoints),
            approval=p.approval is not None,
        )
        for p in phases
    )


def schedule_data(phases: Iterable[Phase]) -> list[dict[str, Any]]:
    """The schedule as JSON-able journal data (for ``run_started``'s ``schedule``):
    ``[{"phase", "traffic", "approval", "checkpoints": [{"name", "offset_s"}]}]``."""
    return [
        {
            "phase": s.name,
            "traffic": s.traffic,
            "approval": s.approval,
            "checkpoints": [{"name": n, "offset_s": o.total_seconds()} for n, o in s.checkpoints],
        }
        for s in schedule_of(phases)
    ]


def schedule_from(data: Any) -> tuple[PhaseSchedule, ...] | None:
    """The inverse of :func:`schedule_data`; ``None`` for anything else (a journal
    without a schedule, or one this version cannot read)."""
    if not isinstance(data, list) or not data:
        return None
    try:
        return tuple(_phase_from(item) for item in data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _phase_from(item: Any) -> PhaseSchedule:
    return PhaseSchedule(
        name=str(item["phase"]),
        traffic=float(item.get("traffic", 0.0)),
        approval=bool(item.get("approval", False)),
        checkpoints=tuple(
            (str(c["name"]), timedelta(seconds=float(c["offset_s"]))) for c in item["checkpoints"]
        ),
    )


@attrs.frozen(kw_only=True)
class Outlook:
    """What is due in a phase, seen at one moment, if nothing holds from here on."""

    phase: str
    next_checkpoint: str | None
    next_at: datetime | None
    phase_ends: datetime
    run_ends: datetime
    approvals_ahead: int = 0

    def to_data(self) -> dict[str, Any]:
        return {
            "next_checkpoint": self.next_checkpoint,
            "next_at": self.next_at.isoformat() if self.next_at else None,
            "phase_ends_at": self.phase_ends.isoformat(),
            "run_ends_at": self.run_ends.isoformat(),
            "approvals_ahead": self.approvals_ahead,
        }


@attrs.frozen
class PlanTiming:
    """The plan's calendar on the schedule: a phase starts at its ``start_at`` and
    inside its window, and advances only inside its window (the last one ends the
    run whenever it ends)."""

    plan: Plan

    def start(self, name: str, ready: datetime) -> datetime:
        phase = self.plan.phase(name)
        calendar = self.plan.calendar
        return calendar.phase_start(ready, phase.start_at, phase.policy.window) or ready

    def advance(self, name: str, ready: datetime) -> datetime:
        return self.plan.calendar.next_open(ready, self.plan.phase(name).policy.window) or ready


def outlook(
    schedule: Sequence[PhaseSchedule],
    phase: str,
    started_at: datetime,
    *,
    next_checkpoint: str | None,
    next_at: datetime | None,
    timing: PlanTiming | None = None,
) -> Outlook | None:
    """Where the phase ``phase`` (started at ``started_at``) and the run stand.

    ``next_checkpoint``/``next_at`` are what the engine said comes next (a re-check
    included); a late checkpoint pushes the rest of the phase back by as much. With
    ``timing`` the later phases keep the plan's start times and windows; without
    (a journal read without its plan) they follow each other at once.
    ``None`` when ``phase`` is not in the schedule.
    """
    names = [s.name for s in schedule]
    if phase not in names:
        return None
    index = names.index(phase)
    current = schedule[index]
    phase_ends = started_at + current.duration
    if next_checkpoint is not None and next_at is not None:
        offset = current.offset(next_checkpoint)
        if next_checkpoint.endswith(RECHECK):
            # The later checkpoints keep their times; only the last one's re-check
            # moves the end.
            phase_ends = max(phase_ends, next_at)
        elif offset is not None:
            phase_ends = max(phase_ends, next_at + (current.duration - offset))
    later = schedule[index + 1 :]
    try:
        if timing is not None and later:
            phase_ends = timing.advance(phase, phase_ends)
        run_ends = phase_ends
        for position, following in enumerate(later, 1):
            if timing is not None:
                run_ends = timing.start(following.name, run_ends)
            run_ends += following.duration
            if timing is not None and position < len(later):
                run_ends = timing.advance(following.name, run_ends)
    except KeyError:  # a schedule that is not this plan's: no calendar
        return outlook(
            schedule, phase, started_at, next_checkpoint=next_checkpoint, next_at=next_at
        )
    return Outlook(
        phase=phase,
        next_checkpoint=next_checkpoint,
        next_at=next_at,
        phase_ends=phase_ends,
        run_ends=run_ends,
        approvals_ahead=sum(1 for s in later if s.approval),
    )


class Progress:
    """What an observer keeps to say what is next: the phases the run was asked for
    (default: the plan's) and when each phase started."""

    def __init__(self, phases: Sequence[str] | None = None) -> None:
        self.phases = tuple(phases or ())
        self.started: dict[str, datetime] = {}
        # Built once per plan: an observer asks at every checkpoint, and a schedule's
        # lookups (PhaseSchedule._positions) are cached on the objects it keeps.
        self._schedules: dict[int, tuple[Plan, tuple[PhaseSchedule, ...]]] = {}

    def schedule(self, plan: Plan) -> tuple[PhaseSchedule, ...]:
        kept = self._schedules.get(id(plan))
        if kept is not None and kept[0] is plan:
            return kept[1]
        try:
            built = schedule_of(plan.select(self.phases))
        except KeyError:
            built = schedule_of(plan.phases)
        self._schedules[id(plan)] = (plan, built)
        return built

    def outlook(
        self,
        plan: Plan,
        phase: Phase,
        now: datetime,
        next_checkpoint: str | None,
        next_at: datetime | None,
    ) -> Outlook | None:
        """The outlook after a checkpoint (or at the phase's start)."""
        if next_checkpoint is None or next_at is None:
            return None
        start = self.started.get(phase.name)
        if start is None:  # a resumed run: as the next checkpoint's time implies
            mine = [p for p in self.schedule(plan) if p.name == phase.name]
            offset = (mine[0] if mine else schedule_of([phase])[0]).offset(next_checkpoint)
            start = now if offset is None else next_at - offset
        return outlook(
            self.schedule(plan),
            phase.name,
            start,
            next_checkpoint=next_checkpoint,
            next_at=next_at,
            timing=PlanTiming(plan),
        )


def compact_checkpoints(offsets: Sequence[tuple[str, timedelta]], limit: int = 8) -> str:
    """Checkpoint names as a header shows them: ``every 1d until 12d`` when evenly
    spaced (four or more), the first few and the last when there are many."""
    if len(offsets) >= 4:
        steps = {b[1] - a[1] for a, b in itertools.pairwise(offsets)}
        if len(steps) == 1:
            step = steps.pop()
            first, last = offsets[0][1], offsets[-1][1]
            start = "" if first == step else f" from {format_duration(first)}"
            if step > timedelta(0):
                return (
                    f"every {format_duration(step)}{start} until {format_duration(last)}"
                    f" ({len(offsets)})"
                )
    names = [n for n, _ in offsets]
    if len(names) > limit:
        names = [*names[: limit - 2], "…", names[-1]]
        return " ".join(names) + f" ({len(offsets)})"
    return " ".join(names)
