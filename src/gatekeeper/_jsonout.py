"""Machine output: one JSON object per line, in one versioned schema.

``gatekeeper run --json`` and ``rehearse --json`` print a line per event as it
happens (:class:`JsonLines`, a plugin like the console reporter); ``history --json``
prints the journal's events (:func:`event_json`); ``status --json`` a line per run
(:func:`status_json`). Every line carries ``"schema"``; docs/json.md documents the
fields, and a test checks every line of a rehearsal against that page's table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from ._approval import ApprovalAnswer, ApprovalState
from ._model import Decision, GateResult, Phase, RunResult, Split
from ._protocols import Event
from ._registry import RunInfoView
from ._run.events import decision_data, json_number, measurement_data, verdict_data
from ._run.watch import WatchReport
from ._schedule import Progress, schedule_data
from .hookspecs import hookimpl

__all__ = ["EVENT_SCHEMA", "STATUS_SCHEMA", "JsonLines", "event_json", "status_json"]

#: Every event line (live and from the journal) says which schema it follows.
EVENT_SCHEMA = "gatekeeper.event/1"
#: ``status --json``: one line per run.
STATUS_SCHEMA = "gatekeeper.status/1"

_ANSWERED = {
    ApprovalState.GIVEN: "approval_given",
    ApprovalState.REJECTED: "approval_rejected",
    ApprovalState.PENDING: "approval_pending",
}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def envelope(
    *,
    run: str,
    seq: int,
    at: datetime,
    kind: str,
    origin: str,
    phase: str | None = None,
    checkpoint: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One event line: the fields every line has, whatever its kind."""
    return {
        "schema": EVENT_SCHEMA,
        "origin": origin,
        "run": run,
        "seq": seq,
        "at": at.isoformat(),
        "kind": kind,
        "phase": phase,
        "checkpoint": checkpoint,
        "data": dict(data or {}),
    }


def event_json(event: Event, run_id: str) -> dict[str, Any]:
    """A journal event (``history --json``): ``seq`` is the journal's own."""
    return envelope(
        run=run_id,
        seq=event.seq,
        at=event.at,
        kind=event.kind,
        origin="journal",
        phase=event.phase,
        checkpoint=event.checkpoint,
        data=event.data,
    )


def dumps(value: Mapping[str, Any]) -> str:
    """One line of JSON (sorted keys; NaN and infinities never reach it)."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


class JsonLines:
    """Prints each event of a run as one JSON line, as it happens (``--json``).

    Kinds and ``data`` follow the journal's where the journal has the same event
    (``run_started``, ``phase_waiting``, ``phase_started``, ``traffic_confirmed``,
    ``decision``, ``approval_*``, ``run_ended``), with what a consumer needs added: a decision
    carries its verdicts and what is next, a phase start when it ends.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        phases: Sequence[str] | None = None,
        command_args: Sequence[str] = (),
    ) -> None:
        self.stream = stream or sys.stdout
        self.progress = Progress(phases)
        self.command_args = tuple(command_args)
        self.seq = 0

    def _emit(
        self,
        run: RunInfoView,
        kind: str,
        data: Mapping[str, Any],
        *,
        at: datetime | None = None,
        phase: str | None = None,
        checkpoint: str | None = None,
    ) -> None:
        self.seq += 1
        line = envelope(
            run=run.run_id,
            seq=self.seq,
            at=at or run.clock.now(),
            kind=kind,
            origin="live",
            phase=phase,
            checkpoint=checkpoint,
            data=data,
        )
        print(dumps(line), file=self.stream, flush=True)

    def _outlook(
        self, run: RunInfoView, phase: Phase, name: str | None, due: datetime | None
    ) -> dict[str, Any]:
        view = self.progress.outlook(run.plan, phase, run.clock.now(), name, due)
        if view is None:
            return {
                "next_checkpoint": name,
                "next_at": _iso(due),
                "phase_ends_at": None,
                "run_ends_at": None,
                "approvals_ahead": 0,
            }
        return view.to_data()

    @hookimpl
    def gatekeeper_run_started(self, run: RunInfoView) -> None:
        phases = self.progress.schedule(run.plan)
        self._emit(
            run,
            "run_started",
            {
                "plan": run.plan.name,
                "digest": run.plan.digest,
                "phases": [p.name for p in phases],
                "rehearsal": run.rehearsal,
                "judge_only": run.judge_only,
                "resumed": run.resumed,
                "schedule": schedule_data(run.plan.select([p.name for p in phases])),
            },
            at=run.started_at,
        )

    @hookimpl
    def gatekeeper_approval_requested(self, run: RunInfoView, phase: Phase) -> None:
        from ._report import answer_commands  # noqa: PLC0415 - one spelling of the commands

        assert phase.approval is not None
        give, refuse = answer_commands(run.run_id, phase.name, self.command_args)
        timeout = phase.approval.timeout
        self._emit(
            run,
            "approval_requested",
            {
                "prompt": phase.approval.prompt,
                "timeout_s": timeout.total_seconds() if timeout is not None else None,
                "approve": None if run.rehearsal else give,
                "reject": None if run.rehearsal else refuse,
            },
            phase=phase.name,
        )

    @hookimpl
    def gatekeeper_approval_answered(
        self, run: RunInfoView, phase: Phase, answer: ApprovalAnswer
    ) -> None:
        self._emit(
            run,
            _ANSWERED[answer.state],
            {"by": answer.by, "reason": answer.reason},
            phase=phase.name,
        )

    @hookimpl
    def gatekeeper_phase_started(self, run: RunInfoView, phase: Phase, split: Split) -> None:
        now = run.clock.now()
        self.progress.started[phase.name] = now
        first = phase.checkpoints[0] if phase.checkpoints else None
        due = now + first.offset if first is not None else None
        self._emit(
            run,
            "phase_started",
            {
                "traffic": json_number(split.canary),
                "detail": split.detail,
                "started_at": now.isoformat(),
                **self._outlook(run, phase, first.name if first else None, due),
            },
            at=now,
            phase=phase.name,
        )

    @hookimpl
    def gatekeeper_phase_waiting(
        self, run: RunInfoView, phase: Phase, until: datetime | None, reason: str
    ) -> None:
        self._emit(run, "phase_waiting", {"until": _iso(until), "reason": reason}, phase=phase.name)

    @hookimpl
    def gatekeeper_watch_report(self, run: RunInfoView, phase: Phase, report: WatchReport) -> None:
        self._emit(
            run,
            "watch",
            {
                "status": report.kind,
                "criterion": report.criterion,
                "looks": report.looks,
                "line": report.line,
            },
            phase=phase.name,
        )

    @hookimpl
    def gatekeeper_traffic_changed(
        self, run: RunInfoView, phase: Phase | None, split: Split, previous: Split | None
    ) -> None:
        self._emit(
            run,
            "traffic_confirmed",
            {
                "canary": json_number(split.canary),
                "previous": json_number(previous.canary) if previous is not None else None,
                "detail": split.detail,
            },
            phase=phase.name if phase is not None else None,
        )

    @hookimpl
    def gatekeeper_checkpoint_judged(
        self,
        run: RunInfoView,
        phase: Phase,
        result: GateResult,
        decision: Decision,
        next_at: datetime | None,
        next_checkpoint: str | None,
    ) -> None:
        self._emit(
            run,
            "decision",
            {
                **decision_data(decision),
                "outcome": result.outcome.value,
                "attempt": result.attempt,
                "verdicts": [
                    {
                        **verdict_data(v),
                        "measurements": [measurement_data(m) for m in v.measurements],
                    }
                    for v in result.verdicts
                ],
                **self._outlook(run, phase, next_checkpoint, next_at),
            },
            at=result.at,
            phase=phase.name,
            checkpoint=result.checkpoint,
        )

    @hookimpl
    def gatekeeper_run_finished(self, run: RunInfoView, result: RunResult) -> None:
        self._emit(
            run,
            "run_ended",
            {
                "outcome": result.outcome.value,
                "reason": result.reason,
                "exit_code": result.exit_code,
                "canary": json_number(result.split.canary) if result.split else None,
                "phases": [
                    {"phase": p.phase, "action": p.decision.action.value} for p in result.phases
                ],
            },
        )


def status_json(
    info: Any, state: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """One ``status --json`` line: the run and where it stands."""
    return {
        "schema": STATUS_SCHEMA,
        "run": info.run_id,
        "plan": info.plan,
        "status": info.status,
        "started_at": info.started_at.isoformat(),
        **state,
        **({"now": now.isoformat()} if now is not None else {}),
    }
