"""The watch: a phase's criteria judged every few seconds between its checkpoints.

A watch may stop a phase and never advance one: a FAIL applies the phase's
``on_fail`` at once; a PASS decides nothing. Thresholds may ask for persistence
(``for 1m``); statistical criteria share the checkpoint gate's sequential test (an
e-process is valid at any stopping time, so looking every 5 s spends no extra α).

Compact by design: a passing look leaves no trace. The journal keeps state changes
(``watch_changed``), the failing look whole, and a snapshot of the judges every
:data:`SNAPSHOT` so a resumed run continues the evidence it had; observers hear of
changes and of a summary every :data:`SUMMARY`, never of each look.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .._criteria import judge_threshold
from .._model import (
    Action,
    Criterion,
    Decision,
    GateResult,
    Kind,
    Measurement,
    OnFail,
    Outcome,
    Phase,
    Verdict,
    Watch,
    compare,
)
from .._results import WATCH_DECIDED
from .._units import format_duration
from .context import PhaseState
from .events import EventKind, measurement_data, verdict_data
from .judging import compare_verdict, relative_verdict, share_over, short_reason
from .measure import Key

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = [
    "SNAPSHOT",
    "SUMMARY",
    "WatchFailure",
    "WatchReport",
    "Watcher",
    "failure_decision",
    "journal_failure",
    "watch_until",
]

#: How often the judges' state is journaled while every look passes (run time).
SNAPSHOT = timedelta(minutes=10)
#: How often observers (the console) get a summary of a passing watch.
SUMMARY = timedelta(hours=1)


@attrs.frozen(kw_only=True)
class WatchFailure:
    """The look that failed a watch, and which criteria failed it (persisted)."""

    result: GateResult
    reason: str  # "watch at 3m into ramp"
    failed: tuple[str, ...]  # each failing criterion, and why


@attrs.frozen(kw_only=True)
class WatchReport:
    """News from a watch, for observers: ``kind`` is ``failing``, ``passing``,
    ``no data``, ``failed`` or ``summary``; ``line`` says it for a person."""

    kind: str
    at: datetime
    looks: int
    line: str
    criterion: str | None = None


@attrs.define
class Watcher:
    """The watch of one phase in progress: its looks, persistence and staleness."""

    rollout: Rollout
    state: PhaseState
    watch: Watch
    looks: int = 0
    # criterion index -> since when it has failed (persistence)
    failing: dict[int, datetime] = attrs.field(factory=dict)
    # criterion index -> the last look that had data (PASS, FAIL or collecting)
    seen: dict[int, datetime] = attrs.field(factory=dict)
    # criterion index -> its state as last announced ("passing", "failing", "no data")
    status: dict[int, str] = attrs.field(factory=dict)
    # watch index -> the gate's index of the same statistical criterion
    shared: dict[int, int] = attrs.field(factory=dict)
    since: datetime | None = None
    next_snapshot: datetime | None = None
    next_summary: datetime | None = None
    needs: list[Any] = attrs.field(factory=list)
    # watch index -> the statistical criterion's last e-value (for the summary)
    evidence: dict[int, float] = attrs.field(factory=dict)

    @classmethod
    def of(cls, rollout: Rollout, state: PhaseState) -> Watcher:
        phase = state.phase
        assert phase.watch is not None
        watcher = cls(rollout=rollout, state=state, watch=phase.watch)
        in_gate = {c.text: i for i, c in enumerate(phase.gate.criteria)}
        watcher.shared = {
            i: in_gate[c.text]
            for i, c in enumerate(phase.watch.gate.criteria)
            if c.kind is Kind.COMPARE
        }
        view = attrs.evolve(phase, gate=phase.watch.gate)
        watcher.needs = rollout.measurer.needs(view, timedelta(0))
        watcher.restore(state.watch_saved or {})
        return watcher

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Carry on from a journaled snapshot (a resumed run)."""
        self.looks = int(saved.get("looks", 0))
        texts = {c.text: i for i, c in enumerate(self.watch.gate.criteria)}
        for text, since in dict(saved.get("failing") or {}).items():
            if text in texts:
                self.failing[texts[text]] = datetime.fromisoformat(str(since))
                self.status[texts[text]] = "failing"

    def next_look(self, now: datetime) -> datetime:
        """The next look after ``now``, on the phase's grid of ``every``."""
        return self._after(now, self.watch.every)

    def _after(self, now: datetime, every: timedelta) -> datetime:
        """The first multiple of ``every`` from the phase's start after ``now``."""
        start = self.state.started_at
        return start + every * ((now - start) // every + 1)

    async def look(self, at: datetime) -> WatchFailure | None:
        """One look; the failing result when the watch fails (persistence included)."""
        rollout, state = self.rollout, self.state
        phase = state.phase
        self.looks += 1
        if self.since is None:
            self.since = at
            self.next_snapshot = self._after(at, SNAPSHOT)
            self.next_summary = self._after(at, SUMMARY)
        since_start = at - state.started_at
        measured = await rollout.measurer.all(self.needs, at, since_start, phase.name, spans=False)
        verdicts: list[Verdict | None] = []
        failed: list[str] = []
        for index, criterion in enumerate(self.watch.gate.criteria):
            verdict = self._judge(index, criterion, measured, since_start)
            if verdict is None and (index in self.failing or index in self.status):
                # Passed, with news to tell: judged again, in words (thresholds only).
                verdict = self._judge(index, criterion, measured, since_start, fast=False)
            verdicts.append(verdict)
            if verdict is None:  # a threshold that passed, checked without words
                self.seen[index] = at
            elif await self._note(index, criterion, verdict, at):
                failed.append(self._failed(index, criterion, verdict, at))
        if failed:
            whole = tuple(
                v if v is not None else self._judge(i, c, measured, since_start, fast=False)
                for i, (c, v) in enumerate(zip(self.watch.gate.criteria, verdicts, strict=True))
            )
            result = GateResult(
                phase=phase.name,
                checkpoint="watch",
                at=at,
                verdicts=tuple(v for v in whole if v is not None),
                attempt=0,
            )
            reason = f"{WATCH_DECIDED}{format_duration(since_start)} into {phase.name}"
            await self._report("failed", at, f"{reason}: " + "; ".join(failed), None)
            return WatchFailure(result=result, reason=reason, failed=tuple(failed))
        await self._periodic(at)
        return None

    def _judge(
        self,
        index: int,
        criterion: Criterion,
        measured: Mapping[Key, Measurement],
        since_start: timedelta,
        *,
        fast: bool = True,
    ) -> Verdict | None:
        """One criterion at one look; None for a threshold that passed (``fast``: most
        looks pass, and the words of a verdict cost more than the comparison)."""
        rollout, state = self.rollout, self.state
        metric = rollout.plan.metrics[criterion.metric]
        canary = measured[(metric.name, "canary", False)]
        if criterion.kind in (Kind.THRESHOLD, Kind.COUNT):
            value = canary.value
            assert criterion.op is not None and criterion.bound is not None
            if (
                fast
                and canary.problem is None
                and value is not None
                and compare(value, criterion.op, criterion.bound)
            ):
                return None
            return judge_threshold(criterion, metric, canary)
        if criterion.kind is Kind.RELATIVE:
            return relative_verdict(criterion, metric, measured, rollout.prerun)
        gate_index = self.shared[index]
        verdict, judge = compare_verdict(
            state.phase,
            gate_index,
            metric,
            canary,
            measured.get((metric.name, "baseline", False)),
            prior=state.judges.get(gate_index),
            elapsed_s=since_start.total_seconds(),
            last=False,
            share=share_over(state, gate_index, since_start),
            budget=rollout.budget,
        )
        if judge is not None:
            state.judges[gate_index] = judge
            state.looks[gate_index] = since_start.total_seconds()
        e_value = verdict.evidence.get("e_value")
        if isinstance(e_value, int | float):
            self.evidence[index] = float(e_value)
        return verdict

    def _failed(self, index: int, criterion: Criterion, verdict: Verdict, at: datetime) -> str:
        why = short_reason(verdict)
        since = self.failing.get(index, at)
        lasted = f" for {format_duration(at - since)}" if at > since else ""
        return f"{criterion.label}: {why}{lasted}"

    async def _note(self, index: int, criterion: Criterion, verdict: Verdict, at: datetime) -> bool:
        """Persistence, staleness and state changes of one criterion; True: it failed."""
        outcome = verdict.outcome
        collecting = verdict.evidence.get("collecting") is True
        if outcome is not Outcome.INCONCLUSIVE or collecting:
            self.seen[index] = at
        if outcome is Outcome.FAIL:
            since = self.failing.setdefault(index, at)
            persist = criterion.persist or timedelta(0)
            if at - since >= persist:
                return True
            if self.status.get(index) != "failing":
                await self._changed(
                    index,
                    "failing",
                    at,
                    f"{criterion.text}: failing ({verdict.reason}); fails the watch at "
                    f"{since + persist:%H:%M:%S} UTC unless it passes before",
                )
            return False
        if outcome is Outcome.PASS:
            self.failing.pop(index, None)
            if index in self.status:
                await self._changed(index, "passing", at, f"{criterion.text}: passing again")
                del self.status[index]  # (passing is the quiet state: no news to tell)
            return False
        # INCONCLUSIVE: neither breaks a persistence run nor confirms it.
        if collecting:  # a sequential test gathering evidence has data: no news but that
            if self.status.get(index) == "no data":
                await self._changed(index, "passing", at, f"{criterion.text}: data again")
                del self.status[index]
            return False
        last = self.seen.get(index, self.since or at)
        if at - last > self.watch.stale and self.status.get(index) != "no data":
            quiet = format_duration(at - last)
            await self._changed(
                index, "no data", at, f"{criterion.text}: no data for {quiet} ({verdict.reason})"
            )
        return False

    async def _changed(self, index: int, status: str, at: datetime, line: str) -> None:
        self.status[index] = status
        criterion = self.watch.gate.criteria[index]
        self.rollout.ctx.journal(
            EventKind.WATCH_CHANGED,
            phase=self.state.phase.name,
            data={"criterion": criterion.text, "status": status, "looks": self.looks, "line": line},
        )
        await self._report(status, at, line, criterion.text)

    async def _report(self, kind: str, at: datetime, line: str, criterion: str | None) -> None:
        report = WatchReport(kind=kind, at=at, looks=self.looks, line=line, criterion=criterion)
        await self.rollout.observers.emit(
            "watch_report", run=self.rollout.info, phase=self.state.phase, report=report
        )

    async def _periodic(self, at: datetime) -> None:
        assert self.next_snapshot is not None and self.next_summary is not None
        if at >= self.next_snapshot:
            self.next_snapshot = self._after(at, SNAPSHOT)
            self.snapshot()
        if at >= self.next_summary:
            self.next_summary = self._after(at, SUMMARY)
            await self._report("summary", at, self.summary(at), None)

    def snapshot(self) -> None:
        """Journal the judges' state and the persistence runs (a resumed run goes on
        from here; cumulative counts make the carried-on evidence exact)."""
        state = self.state
        gate = state.phase.gate.criteria
        self.rollout.ctx.journal(
            EventKind.WATCH_SNAPSHOT,
            phase=state.phase.name,
            data={
                "looks": self.looks,
                "judges": {gate[i].text: j.to_dict() for i, j in state.judges.items()},
                "looked": {gate[i].text: s for i, s in state.looks.items()},
                "failing": {
                    self.watch.gate.criteria[i].text: since.isoformat()
                    for i, since in self.failing.items()
                },
            },
        )

    def summary(self, at: datetime) -> str:
        span = format_duration(at - self.since) if self.since else "0s"
        criteria = self.watch.gate.criteria
        bad = [f"{criteria[i].text}: {s}" for i, s in self.status.items() if s != "passing"]
        health = "; ".join(bad) or "all passing"
        evidence = [
            f"{self.watch.gate.criteria[i].metric} e={e:.2g}" for i, e in self.evidence.items()
        ]
        return ", ".join([f"{self.looks:,} looks in {span}", health, *evidence])


def failure_decision(rollout: Rollout, phase: Phase, reason: str) -> Decision:
    """What a watch's failure decides: the phase's ``on_fail`` at once — no failure
    limit (persistence is the watch's guard against noise)."""
    if phase.policy.on_fail is OnFail.ROLLBACK:
        return Decision(action=Action.ROLLBACK, reason=reason)
    return Decision(
        action=Action.HOLD,
        reason=f"{reason}: held for a person (on_fail = hold); "
        f"'gatekeeper resume {rollout.run_id} --by NAME' or 'gatekeeper rollback "
        f"{rollout.run_id}'",
    )


def journal_failure(
    rollout: Rollout, state: PhaseState, checkpoint: str, result: GateResult, attempt: int
) -> None:
    """The failing look, whole: its measurements and verdicts, marked as the watch's
    (replay never takes them for a checkpoint's own look)."""
    ctx = rollout.ctx
    mark = {"attempt": attempt, "watch": True}
    seen = {(m.metric, m.variant): m for v in result.verdicts for m in v.measurements}
    for m in seen.values():
        data = {**measurement_data(m), **mark}
        ctx.journal(EventKind.MEASUREMENT, phase=result.phase, checkpoint=checkpoint, data=data)
    for v in result.verdicts:
        data = {**verdict_data(v), **mark}
        ctx.journal(EventKind.VERDICT, phase=result.phase, checkpoint=checkpoint, data=data)


async def watch_until(rollout: Rollout, state: PhaseState, due: datetime) -> WatchFailure | None:
    """Wait for ``due``, looking at the phase's watch on its cadence meanwhile; the
    failing look's result when the watch fails first (None: ``due`` came)."""
    watch = state.phase.watch
    if watch is None:
        await rollout.wait_until(due)
        return None
    if state.watcher is None:
        state.watcher = Watcher.of(rollout, state)
    watcher: Watcher = state.watcher
    while True:
        at = watcher.next_look(rollout.clock.now())
        if at >= due:
            await rollout.wait_until(due)
            return None
        await rollout.wait_until(at)
        failed = await watcher.look(at)
        if failed is not None:
            return failed
