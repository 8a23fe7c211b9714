"""Reading a run's journal back: where it is, so an unfinished run can resume.

The engine journals every step before acknowledging its effect; this module folds
that journal into the state the engine needs to carry on without repeating a
traffic change, skipping a checkpoint or judging one twice differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from .._model import (
    Action,
    CheckpointResult,
    Criterion,
    Decision,
    GateResult,
    Measurement,
    Outcome,
    Phase,
    Plan,
    Verdict,
)
from .._policy import PolicyState
from .._protocols import Event
from .events import EventKind, measurement_from, number

__all__ = ["CheckpointProgress", "Journal", "PhaseProgress", "replay"]


@attrs.define
class CheckpointProgress:
    """What the journal says about one checkpoint of the phase in progress."""

    results: list[CheckpointResult] = attrs.field(factory=list)
    # Verdicts journaled for an attempt whose decision was not (the process died
    # between the two): reused on resume, never re-queried.
    orphan: GateResult | None = None
    # The sequential tests' states after the orphaned look, applied with it.
    orphan_judges: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    @property
    def last(self) -> Decision | None:
        return self.results[-1].decision if self.results else None

    @property
    def settled(self) -> bool:
        """Judged for good: a decision other than a hold with a re-check."""
        last = self.last
        return last is not None and not (last.action is Action.HOLD and last.recheck_at)


@attrs.define
class PhaseProgress:
    """The phase the run was in when it stopped."""

    name: str
    started_at: datetime
    traffic: float | None = None
    policy: PolicyState = attrs.field(factory=PolicyState)
    judges: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    checkpoints: dict[str, CheckpointProgress] = attrs.field(factory=dict)
    ended: Decision | None = None
    # The watch's last snapshot: its looks, persistence runs and compare looks.
    watch: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class Journal:
    """A run's journal, read back."""

    run_id: str
    started_at: datetime | None = None
    last_at: datetime | None = None
    last_seq: int = 0
    phases: list[str] = attrs.field(factory=list)
    prerun: dict[str, Measurement] = attrs.field(factory=dict)
    confirmed: float | None = None
    pending_intent: float | None = None
    # The unconfirmed intent was a rollback: resume finishes it and ends the run.
    pending_rollback: bool = False
    # A rollback was asked for (by the gate or a person): the run never raises
    # traffic or advances again.
    rolled_back: str | None = None
    ended: dict[str, Decision] = attrs.field(factory=dict)
    progress: dict[str, PhaseProgress] = attrs.field(factory=dict)
    approvals: dict[str, tuple[str, str]] = attrs.field(factory=dict)  # phase -> (state, by)
    # phase -> the start it was computed to wait for (start_at and window)
    waits: dict[str, datetime] = attrs.field(factory=dict)
    finished: str | None = None

    def advanced(self, phase: str) -> bool:
        decision = self.ended.get(phase)
        return decision is not None and decision.action is Action.ADVANCE


def _criterion(phase: Phase, text: str) -> Criterion | None:
    watched = phase.watch.gate.criteria if phase.watch is not None else ()
    return next((c for c in (*phase.gate.criteria, *watched) if c.text == text), None)


def _fold_traffic(journal: Journal, event: Event) -> None:
    data = event.data
    kind = event.kind
    if kind == EventKind.TRAFFIC_INTENT:
        journal.pending_intent = float(data["canary"])
        journal.pending_rollback = bool(data.get("rollback", False))
        if journal.pending_rollback:
            journal.rolled_back = journal.rolled_back or str(data.get("why", "rolled back"))
        if event.phase in journal.progress:
            journal.progress[event.phase].traffic = float(data["canary"])
    elif kind in (EventKind.TRAFFIC_CONFIRMED, EventKind.TRAFFIC_READ):
        journal.confirmed = float(data["canary"])
        journal.pending_intent = None
        journal.pending_rollback = False
    elif kind == EventKind.TRAFFIC_FAILED and not journal.pending_rollback:
        # (A failed rollback stays pending: resume must finish it before anything else.)
        journal.pending_intent = None


_TRAFFIC = frozenset(
    {
        EventKind.TRAFFIC_INTENT,
        EventKind.TRAFFIC_CONFIRMED,
        EventKind.TRAFFIC_READ,
        EventKind.TRAFFIC_FAILED,
    }
)


def replay(  # noqa: PLR0915 - one branch per event kind reads best as one fold
    plan: Plan, run_id: str, events: Sequence[Event]
) -> Journal:
    """Fold a journal into a :class:`Journal`."""
    journal = Journal(run_id=run_id)
    pending: dict[tuple[str, str, int], dict[str, list[Any]]] = {}
    staged: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        journal.last_at = event.at
        journal.last_seq = max(journal.last_seq, event.seq)
        data = event.data
        kind = event.kind
        if kind in _TRAFFIC:
            _fold_traffic(journal, event)
        elif kind == EventKind.ROLLBACK_REQUESTED:
            # A person asked: the run is rolled back for good, applied or not yet (the
            # operator channel, which reads the same journal, finishes it on resume).
            journal.rolled_back = journal.rolled_back or str(
                data.get("reason", "rollback requested")
            )
        elif kind == EventKind.RUN_STARTED:
            journal.started_at = journal.started_at or event.at
            journal.phases = list(data.get("phases", []))
        elif kind == EventKind.PHASE_WAITING and event.phase and data.get("start"):
            journal.waits[event.phase] = datetime.fromisoformat(str(data["until"]))
        elif kind == EventKind.PRERUN:
            m = measurement_from(data, event.at)
            journal.prerun[m.metric] = m
        elif kind in (EventKind.APPROVAL_GIVEN, EventKind.APPROVAL_REJECTED) and event.phase:
            state = "given" if kind == EventKind.APPROVAL_GIVEN else "rejected"
            journal.approvals[event.phase] = (state, str(data.get("by", "")))
        elif kind == EventKind.PHASE_STARTED and event.phase:
            started = (
                datetime.fromisoformat(data["started_at"]) if "started_at" in data else event.at
            )
            journal.progress[event.phase] = PhaseProgress(
                name=event.phase, started_at=started, traffic=number(data.get("traffic"))
            )
            journal.ended.pop(event.phase, None)
        elif kind == EventKind.STEP_STARTED and event.phase in journal.progress:
            journal.progress[event.phase].traffic = float(data["traffic"])
        elif (
            kind in (EventKind.MEASUREMENT, EventKind.VERDICT) and event.phase and event.checkpoint
        ):
            attempt = int(data.get("attempt", 0))
            slot = pending.setdefault((event.phase, event.checkpoint, attempt), {"m": [], "v": []})
            slot["m" if kind == EventKind.MEASUREMENT else "v"].append((event.at, data))
        elif kind == EventKind.WATCH_SNAPSHOT and event.phase in journal.progress:
            # Looks that passed decide nothing: their evidence counts as it stands.
            watched = journal.progress[event.phase]
            watched.judges.update({str(k): dict(v) for k, v in data["judges"].items()})
            watched.watch = dict(data)
        elif kind == EventKind.JUDGE_STATE and event.phase in journal.progress:
            # Only a look whose decision made it to the journal counts: an orphaned
            # look is judged again on resume and must not be fed to the test twice.
            staged.setdefault(event.phase, {})[str(data["criterion"])] = dict(data["state"])
        elif kind == EventKind.DECISION and event.phase and event.checkpoint:
            progress = journal.progress.get(event.phase)
            if progress is None:
                continue
            attempt = int(data.get("attempt", 1))
            slot = pending.pop((event.phase, event.checkpoint, attempt), {"m": [], "v": []})
            result = _gate_result(plan, event.phase, event.checkpoint, attempt, event.at, slot)
            recheck = data.get("recheck_at")
            decision = Decision(
                action=Action(data["action"]),
                reason=str(data.get("reason", "")),
                recheck_at=datetime.fromisoformat(recheck) if recheck else None,
            )
            if decision.action is Action.ROLLBACK:
                journal.rolled_back = journal.rolled_back or decision.reason
            cp = progress.checkpoints.setdefault(event.checkpoint, CheckpointProgress())
            cp.results.append(CheckpointResult(result=result, decision=decision))
            cp.orphan = None
            progress.judges.update(staged.pop(event.phase, {}))
            counters = data.get("policy")
            if isinstance(counters, Mapping):
                progress.policy = PolicyState(**{k: int(v) for k, v in counters.items()})
        elif kind == EventKind.PHASE_ENDED and event.phase:
            decision = Decision(action=Action(data["action"]), reason=str(data.get("reason", "")))
            if decision.action is Action.ROLLBACK:
                journal.rolled_back = journal.rolled_back or decision.reason
            journal.ended[event.phase] = decision
            if event.phase in journal.progress:
                journal.progress[event.phase].ended = decision
        elif kind == EventKind.RUN_ENDED:
            journal.finished = str(data.get("outcome", ""))
            if journal.finished == "rolled back":
                journal.rolled_back = journal.rolled_back or str(data.get("reason", ""))
    # Verdicts without a decision: the process died in between.
    for (phase, checkpoint, attempt), slot in pending.items():
        progress = journal.progress.get(phase)
        if progress is None or not slot["v"] or slot["v"][-1][1].get("watch"):
            continue  # (a watch's failing look without its decision is looked at again)
        at = slot["v"][-1][0]
        cp = progress.checkpoints.setdefault(checkpoint, CheckpointProgress())
        result = _gate_result(plan, phase, checkpoint, attempt, at, slot)
        if len(result.verdicts) == len(plan.phase(phase).gate.criteria):
            cp.orphan = result
            cp.orphan_judges = staged.get(phase, {})
    return journal


def _gate_result(
    plan: Plan,
    phase_name: str,
    checkpoint: str,
    attempt: int,
    at: datetime,
    slot: Mapping[str, list[Any]],
) -> GateResult:
    phase = plan.phase(phase_name)
    measurements = {
        (d.get("metric"), d.get("variant")): measurement_from(d, t) for t, d in slot.get("m", [])
    }
    verdicts: list[Verdict] = []
    for when, data in slot.get("v", []):
        criterion = _criterion(phase, str(data.get("criterion", "")))
        if criterion is None:
            continue
        used = tuple(m for (metric, _), m in measurements.items() if metric == criterion.metric)
        verdicts.append(
            Verdict(
                criterion=criterion,
                outcome=Outcome(data["outcome"]),
                reason=str(data.get("reason", "")),
                observed=number(data.get("observed")),
                bound=number(data.get("bound")),
                measurements=used,
                evidence=dict(data.get("evidence") or {}),
            )
        )
        at = when
    return GateResult(
        phase=phase_name, checkpoint=checkpoint, at=at, verdicts=tuple(verdicts), attempt=attempt
    )
