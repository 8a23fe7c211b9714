"""The run engine: phases, traffic, checkpoints, gates, decisions, the journal.

Async at the core; :meth:`Rollout.run_sync` and the module functions in
``gatekeeper`` are the sync facade. The pytest plugin drives the same step methods
(:meth:`Rollout.start`, :meth:`Rollout.begin_phase`, :meth:`Rollout.judge_checkpoint`,
:meth:`Rollout.finish`) that :meth:`Rollout.run` is made of, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs

from ._approval import (
    ApprovalAnswer,
    ApprovalRequest,
    ApprovalState,
    Approver,
    ChainApprover,
    EnvApprover,
    FileApprover,
)
from ._clock import SystemClock
from ._criteria import judge_relative, judge_stable, judge_threshold
from ._model import (
    Action,
    Checkpoint,
    CheckpointResult,
    Decision,
    GateResult,
    Kind,
    Measurement,
    Metric,
    Outcome,
    Phase,
    PhaseResult,
    Plan,
    Query,
    Reference,
    RunOutcome,
    RunResult,
    Split,
    Verdict,
)
from ._planfile import plan_error
from ._plugins import Plugins, RunInfoView, default_plugins
from ._policy import PolicyState, decide
from ._protocols import Clock, Event, MetricSource, PluginContext, Store, TrafficBackend
from ._resume import CheckpointProgress, Journal, replay
from ._store import MemoryStore
from ._units import format_duration
from .exceptions import ConfigError, GatekeeperError, PlanError, TrafficError

__all__ = ["Rollout", "build_sources", "build_traffic"]

T = TypeVar("T")

DEFAULT_QUERY_TIMEOUT = timedelta(seconds=30)
DEFAULT_CHECK_WINDOW = timedelta(minutes=5)
APPROVAL_POLL = timedelta(seconds=5)


async def call(func: Callable[..., T | Awaitable[T]], *args: Any) -> T:
    """Call a plugin method that may be ``def`` or ``async def``.

    Coroutine functions are awaited; plain functions run in a worker thread so a
    blocking backend never stalls the other queries of a checkpoint.
    """
    if inspect.iscoroutinefunction(func):
        return cast("T", await func(*args))
    result = await asyncio.to_thread(func, *args)
    if inspect.isawaitable(result):
        result = await result
    return cast("T", result)


def default_approver(env: Mapping[str, str]) -> Approver:
    """Approvals for CI: ``GATEKEEPER_APPROVE`` / ``GATEKEEPER_REJECT``, and the JSON
    file named by ``GATEKEEPER_APPROVAL_FILE`` (the journal is always asked first)."""
    approvers: list[Approver] = [EnvApprover(env)]
    if env.get("GATEKEEPER_APPROVAL_FILE"):
        approvers.append(FileApprover(Path(env["GATEKEEPER_APPROVAL_FILE"])))
    return ChainApprover(*approvers)


def plugin_context(plan: Plan, env: Mapping[str, str] | None = None) -> PluginContext:
    base = Path(plan.path).resolve().parent if plan.path else Path.cwd()
    return PluginContext(
        base_dir=base, env=dict(os.environ) if env is None else env, plan_name=plan.name
    )


def build_sources(plan: Plan, plugins: Plugins, context: PluginContext) -> dict[str, MetricSource]:
    """Every source of the plan, built by its factory; errors name the plan line."""
    built: dict[str, MetricSource] = {}
    for name, config in plan.sources.items():
        key = ("sources", name)
        if config.type not in plugins.sources:
            raise plan_error(plan, (*key, "type"), plugins.sources.unknown(config.type))
        try:
            built[name] = plugins.sources.get(config.type)(name, config.options, context)
        except ConfigError as exc:
            sub = tuple(exc.key.split(".")) if exc.key else ()
            raise plan_error(plan, (*key, *sub), exc.message) from None
    # A source may check its metrics' own options now, not at the ramp's third hour.
    for name, metric in plan.metrics.items():
        validator = getattr(built[metric.source], "validate_metric", None)
        if validator is None:
            continue
        try:
            validator(metric.query or "", metric.options)
        except ConfigError as exc:
            sub = tuple(exc.key.split(".")) if exc.key else ()
            raise plan_error(plan, ("metrics", name, *sub), exc.message) from None
    return built


def build_traffic(plan: Plan, plugins: Plugins, context: PluginContext) -> TrafficBackend:
    """The plan's traffic backend, built by its factory."""
    config = plan.traffic
    if config.type not in plugins.backends:
        raise plan_error(plan, ("traffic", "type"), plugins.backends.unknown(config.type))
    try:
        return plugins.backends.get(config.type)(config.options, context)
    except ConfigError as exc:
        sub = tuple(exc.key.split(".")) if exc.key else ()
        raise plan_error(plan, ("traffic", *sub), exc.message) from None


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def measurement_data(m: Measurement) -> dict[str, Any]:
    """A measurement as JSON-able journal data."""
    data: dict[str, Any] = {
        "metric": m.metric,
        "variant": m.variant,
        "value": _json_number(m.value),
        "query": m.query,
        "source": m.source,
    }
    for field in ("reason", "numerator", "denominator"):
        value = getattr(m, field)
        if value is not None:
            data[field] = _json_number(value) if isinstance(value, float) else value
    if m.moments is not None:
        data["moments"] = list(m.moments)
    if m.labels:
        data["labels"] = list(m.labels)
    if m.warnings:
        data["warnings"] = list(m.warnings)
    if m.retries:
        data["retries"] = m.retries
    return data


def verdict_data(v: Verdict) -> dict[str, Any]:
    data: dict[str, Any] = {
        "criterion": v.criterion.text,
        "outcome": v.outcome.value,
        "reason": v.reason,
        "observed": _json_number(v.observed),
        "bound": _json_number(v.bound),
    }
    if v.evidence:
        data["evidence"] = dict(v.evidence)
    return data


def summarize(result: GateResult) -> str:
    """One line: the criteria that decided the gate's outcome."""
    outcome = result.outcome
    if outcome is Outcome.PASS:
        count = len(result.verdicts)
        return "the criterion passed" if count == 1 else f"all {count} criteria passed"
    deciding = [v for v in result.verdicts if v.outcome is outcome]
    # The statistical evidence (e-values, sample sizes) stays in the verdict; the
    # one-line summary keeps what a person needs to act on.
    return "; ".join(
        f"{v.criterion.label}: "
        + (v.reason.split(", e=")[0] if v.criterion.kind is Kind.COMPARE else v.reason)
        for v in deciding
    )


@attrs.define
class PhaseState:
    """A phase in progress: when it started and what the policy remembers."""

    phase: Phase
    started_at: datetime
    policy: PolicyState = attrs.field(factory=PolicyState)
    history: dict[str, list[tuple[datetime, float]]] = attrs.field(factory=dict)
    results: list[CheckpointResult] = attrs.field(factory=list)
    decision: Decision | None = None
    # Sequential tests carry their evidence across the phase's checkpoints.
    judges: dict[int, Any] = attrs.field(factory=dict)
    # The share asked for the current step (the balancer may round it).
    traffic: float | None = None
    # Resumed: the phase had already ended in the journal / a person released its hold.
    ended_in_journal: bool = False
    released: bool = False


@attrs.frozen(kw_only=True)
class _Need:
    metric: Metric
    variant: str
    window: timedelta | None = None  # set for range queries


class Rollout:
    """One run of a plan against sources and a traffic backend.

    Everything it talks through can be injected: ``sources`` (name → source),
    ``traffic``, ``clock``, ``store``, ``plugins``, ``approver``. What it builds
    itself (from the plan and the plugins) it also closes.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        sources: Mapping[str, MetricSource] | None = None,
        traffic: TrafficBackend | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        plugins: Plugins | None = None,
        approver: Approver | None = None,
        env: Mapping[str, str] | None = None,
        tracer_provider: Any = None,
        judge_only: bool = False,
        rehearsal: bool = False,
        origin: datetime | None = None,
        query_timeout: timedelta = DEFAULT_QUERY_TIMEOUT,
        resume: bool = True,
        restart: bool = False,
        force: bool = False,
        wait_for_approval: bool = False,
        lease_wait: timedelta | None = None,
    ) -> None:
        self.plan = plan
        self.resume = resume
        self.restart = restart
        self.force = force
        self.wait_for_approval = wait_for_approval
        self.lease_wait = lease_wait
        self.journal_state: Journal | None = None
        self._lease: Any = None
        self._renewer: asyncio.Task[None] | None = None
        self.plugins = plugins or default_plugins()
        context = plugin_context(plan, env)
        self._owned: list[object] = []
        if sources is None:
            sources = build_sources(plan, self.plugins, context)
            self._owned.extend(sources.values())
        self.sources: Mapping[str, MetricSource] = sources
        if traffic is None and not judge_only:
            traffic = build_traffic(plan, self.plugins, context)
            self._owned.append(traffic)
        self.traffic = traffic
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or MemoryStore()
        self.approver: Approver = approver or default_approver(context.env)
        self.judge_only = judge_only
        self.rehearsal = rehearsal
        self.origin = origin
        self.query_timeout = query_timeout
        self._tracer_provider = tracer_provider
        self._tracer: Any = None
        self.run_id = ""
        self.started_at: datetime | None = None
        self.confirmed: Split | None = None
        self.prerun: dict[str, Measurement] = {}
        self.phase_results: list[PhaseResult] = []
        self.result: RunResult | None = None
        self._info: RunInfoView | None = None

    # -- the whole run ------------------------------------------------------------

    async def run(self, phases: Sequence[str] | None = None) -> RunResult:
        """Run the plan (or the named phases, in plan order) to its end."""
        selected = self.select(phases)
        try:
            await self.start(selected)
            with self._span("gatekeeper.run", {"gatekeeper.plan": self.plan.name}):
                for phase in selected:
                    if self.journal_state is not None and self.journal_state.advanced(phase.name):
                        continue  # advanced before the run was interrupted
                    state = self.resumed_phase(phase) or await self.begin_phase(phase)
                    if state.ended_in_journal and state.decision is not None:
                        await self.rollback(phase, state.decision.reason)  # no-op when done
                    if state.decision is None:
                        for checkpoint in phase.checkpoints:
                            results = await self.judge_checkpoint(state, checkpoint)
                            if results[-1].decision.final:
                                break
                    decision = self.end_phase(state)
                    if decision.action is not Action.ADVANCE:
                        return await self.finish_on(decision, phase)
                names = ", ".join(p.name for p in selected)
                return await self.finish(RunOutcome.ADVANCED, f"every phase advanced ({names})")
        except (asyncio.CancelledError, KeyboardInterrupt):
            return await self.interrupted("interrupted (signal or cancellation)")
        except TrafficError as exc:
            return await self.finish(RunOutcome.ERROR, f"traffic change failed: {exc}")
        finally:
            await self.aclose()

    def run_sync(self, phases: Sequence[str] | None = None) -> RunResult:
        """:meth:`run` for scripts without an event loop."""
        return asyncio.run(self.run(phases))

    def select(self, phases: Sequence[str] | None) -> list[Phase]:
        """The phases to run, in plan order; an unknown name lists the known ones."""
        try:
            return list(self.plan.select(phases))
        except KeyError as exc:
            raise PlanError(str(exc.args[0]), file=self.plan.path) from None

    # -- steps --------------------------------------------------------------------

    async def start(self, phases: Sequence[Phase] | None = None) -> str:
        """Open the run in the journal, read the balancer, record pre-run values.

        An unfinished run of the same plan in the store is resumed instead (unless
        ``resume=False``): same run id, the traffic checked against the journal
        first, the phase in progress carried on. A plan edited since that run
        started is refused unless ``restart=True``, which abandons the old run.
        """
        selected = list(phases or self.plan.phases)
        if self.resume and await self._resume(selected):
            return self.run_id
        self._check_previous_phase(selected)
        now = self.clock.now()
        self.started_at = now
        self.run_id = self.store.create_run(
            plan=self.plan.name, plan_digest=self.plan.digest, started_at=now
        )
        self._take_lease()
        self._info = RunInfoView(
            run_id=self.run_id,
            plan=self.plan,
            clock=self.clock,
            started_at=now,
            rehearsal=self.rehearsal,
            judge_only=self.judge_only,
        )
        self.journal(
            "run_started",
            data={
                "plan": self.plan.name,
                "digest": self.plan.digest,
                "phases": [p.name for p in phases or self.plan.phases],
                "rehearsal": self.rehearsal,
                "judge_only": self.judge_only,
            },
        )
        self.plugins.run_started(self.info)
        if self.traffic is not None and not self.judge_only:
            self.confirmed = await call(self.traffic.get_split)
            self.journal("traffic_read", data={"canary": self.confirmed.canary})
        await self._record_prerun(phases or self.plan.phases)
        return self.run_id

    async def _resume(self, phases: Sequence[Phase]) -> bool:
        unfinished = getattr(self.store, "unfinished_runs", None)
        if unfinished is None:
            return False
        runs = [r for r in unfinished(self.plan.name) if r.status not in ("restarted",)]
        if not runs:
            return False
        previous = runs[-1]
        if previous.plan_digest != self.plan.digest:
            if not self.restart:
                raise GatekeeperError(
                    f"run {previous.run_id} of plan {self.plan.name!r} is unfinished "
                    f"({previous.status}) and the plan changed since it started: finish it "
                    "with the plan it started with, roll it back "
                    f"(gatekeeper rollback {previous.run_id}), or start over with --restart"
                )
            self.store.append(
                previous.run_id,
                Event(
                    kind="abandoned",
                    at=self.clock.now(),
                    data={"reason": "restarted with an edited plan"},
                ),
            )
            self.store.set_status(previous.run_id, "restarted")
            return False
        self.run_id = previous.run_id
        self._take_lease()
        journal = replay(self.plan, self.run_id, self.store.events(self.run_id))
        self.journal_state = journal
        self.started_at = journal.started_at or previous.started_at
        advance = getattr(self.clock, "advance_to", None)
        if advance is not None and journal.last_at is not None:
            advance(journal.last_at)  # a simulated clock never goes back before the journal
        self.prerun = dict(journal.prerun)
        self._info = RunInfoView(
            run_id=self.run_id,
            plan=self.plan,
            clock=self.clock,
            started_at=self.started_at,
            rehearsal=self.rehearsal,
            judge_only=self.judge_only,
            resumed=True,
        )
        self.store.set_status(self.run_id, "running")
        self.journal(
            "resumed", data={"status": previous.status, "phases": [p.name for p in phases]}
        )
        self.plugins.run_started(self.info)
        await self._reconcile_traffic(journal)
        self._check_previous_phase(phases)
        return True

    async def _reconcile_traffic(self, journal: Journal) -> None:
        """Before anything else on resume: the balancer must do what the journal last
        confirmed; an intent that was never confirmed is finished (set again: a
        no-op when it had been applied)."""
        if self.traffic is None or self.judge_only:
            return
        actual = await call(self.traffic.get_split)
        self.confirmed = actual
        wanted = journal.pending_intent if journal.pending_intent is not None else journal.confirmed
        if wanted is None:
            self.journal("traffic_read", data={"canary": actual.canary})
            return
        if journal.pending_intent is None and _same_share(actual.canary, wanted):
            self.journal("traffic_read", data={"canary": actual.canary})
            return
        why = (
            f"finishing the unconfirmed change to {wanted:g}%"
            if journal.pending_intent is not None
            else f"the balancer reports {actual.canary:g}%, the journal {wanted:g}%"
        )
        self.journal(
            "traffic_reconcile", data={"found": actual.canary, "wanted": wanted, "why": why}
        )
        await self.set_traffic(None, wanted, why)

    def _check_previous_phase(self, phases: Sequence[Phase]) -> None:
        """Running a later phase on its own needs the phase before it advanced in the
        journal (of this run or an earlier run of the same plan), unless forced."""
        if self.force or self.rehearsal or self.judge_only or not phases:
            return
        index = self.plan.phases.index(phases[0])
        if index == 0:
            return
        before = self.plan.phases[index - 1].name
        if self.journal_state is not None and self.journal_state.advanced(before):
            return
        for info in reversed(self.store.runs()):
            if info.plan != self.plan.name or info.plan_digest != self.plan.digest:
                continue
            if replay(self.plan, info.run_id, self.store.events(info.run_id)).advanced(before):
                return
        raise GatekeeperError(
            f"phase {phases[0].name!r} follows {before!r}, which has not advanced in the "
            f"journal; run {before!r} first, or pass --force (pytest: --gate-force) to judge "
            f"{phases[0].name!r} anyway"
        )

    def _take_lease(self) -> None:
        acquire = getattr(self.store, "acquire", None)
        if acquire is None:
            return
        self._lease = acquire(self.run_id, wait=self.lease_wait)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._renewer = loop.create_task(self._renew_lease())

    async def _renew_lease(self) -> None:
        """Keep the lease while the run lives (every third of its duration)."""
        lease = self._lease
        period = max((lease.expires_at - _wall_now()).total_seconds() / 3, 0.5)
        while True:
            await asyncio.sleep(period)
            await asyncio.to_thread(lease.renew)

    def resumed_phase(self, phase: Phase) -> PhaseState | None:
        """The phase in progress when the run stopped, rebuilt from the journal."""
        journal = self.journal_state
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
        if progress.ended is not None and progress.ended.action is Action.ROLLBACK:
            # Rolled back before the process died: the run ends here, never restarts it.
            state.decision = progress.ended
            state.ended_in_journal = True
            return state
        self._restore_judges(state, progress.judges)
        for cp in phase.checkpoints:
            done = progress.checkpoints.get(cp.name)
            if done is not None:
                state.results.extend(done.results)
        if progress.ended is not None:
            # Held for a person, who now runs it again: carry on with fresh counters.
            self.journal("hold_released", phase=phase.name, data={"reason": progress.ended.reason})
            journal.progress[phase.name].ended = None
            state.released = True
        return state

    @staticmethod
    def _restore_judges(state: PhaseState, saved: Mapping[str, Mapping[str, Any]]) -> None:
        """Sequential test states from the journal, by criterion text."""
        if not saved:
            return
        from . import _judge as judge  # noqa: PLC0415

        for index, criterion in enumerate(state.phase.gate.criteria):
            if criterion.text in saved:
                state.judges[index] = judge.state_from_dict(saved[criterion.text])

    @property
    def info(self) -> RunInfoView:
        if self._info is None:
            raise GatekeeperError("the run has not started: call start() first")
        return self._info

    async def _record_prerun(self, phases: Sequence[Phase]) -> None:
        wanted = {
            c.metric for p in phases for c in p.gate.criteria if c.reference is Reference.PRERUN
        }
        if not wanted:
            return
        at = self.origin or self.clock.now()
        window = DEFAULT_CHECK_WINDOW
        measured = await asyncio.gather(
            *(
                self.measure(
                    _Need(metric=self.plan.metrics[name], variant="canary"), at, window, ""
                )
                for name in sorted(wanted)
            )
        )
        for m in measured:
            self.prerun[m.metric] = m
            self.journal("prerun", data=measurement_data(m))

    async def begin_phase(self, phase: Phase) -> PhaseState:
        """Ask for approval if needed, then move traffic. A refused or withheld
        approval ends the phase right away (``state.decision`` is set)."""
        state = PhaseState(phase=phase, started_at=self.clock.now())
        if phase.approval is not None:
            answer = await self._approve(phase)
            if answer.state is not ApprovalState.GIVEN:
                if answer.state is ApprovalState.REJECTED:
                    why = f"no-go for {phase.name} by {answer.by or 'someone'}"
                    if answer.reason:
                        why += f" ({answer.reason})"
                    state.decision = Decision(action=Action.ROLLBACK, reason=why)
                    await self.rollback(phase, why)
                else:
                    how = (
                        f"approve with 'gatekeeper approve {self.run_id} --phase {phase.name} "
                        f"--by NAME' and run again (in CI: GATEKEEPER_APPROVE={phase.name})"
                        if not self.rehearsal
                        else "the recording withholds it"
                    )
                    state.decision = Decision(
                        action=Action.HOLD,
                        reason=f"waiting for the {phase.approval.prompt} of {phase.name}: {how}",
                    )
                return state
        await self.set_traffic(phase, phase.traffic, f"phase {phase.name} starts")
        state.traffic = phase.traffic
        state.started_at = self.clock.now()
        self.journal(
            "phase_started",
            phase=phase.name,
            data={"traffic": phase.traffic, "started_at": state.started_at.isoformat()},
        )
        split = self.confirmed or Split(canary=phase.traffic, detail="not changed (judge only)")
        self.plugins.phase_started(self.info, phase, split)
        return state

    async def _approve(self, phase: Phase) -> ApprovalAnswer:
        """Ask for the phase's go/no-go. Answers come from the journal (``gatekeeper
        approve`` / ``reject``) or the approver (environment, file, recording).
        Waiting holds traffic where it is."""
        assert phase.approval is not None
        journal = self.journal_state
        recorded = journal.approvals.get(phase.name) if journal is not None else None
        if recorded is not None:
            # Answered while the run was not running (gatekeeper approve / reject).
            answer = ApprovalAnswer(
                state=ApprovalState.GIVEN if recorded[0] == "given" else ApprovalState.REJECTED,
                by=recorded[1],
                reason="recorded in the journal",
            )
            self.plugins.approval_answered(self.info, phase, answer)
            return answer
        asked = self.journal(
            "approval_requested", phase=phase.name, data={"prompt": phase.approval.prompt}
        )
        self.plugins.approval_requested(self.info, phase)
        deadline = (
            self.clock.now() + phase.approval.timeout
            if phase.approval.timeout is not None
            else None
        )
        while True:
            now = self.clock.now()
            journaled = self._journaled_approval(phase, after=asked)
            if journaled is not None:
                answer = journaled
            else:
                request = ApprovalRequest(
                    run_id=self.run_id,
                    plan=self.plan.name,
                    phase=phase.name,
                    prompt=phase.approval.prompt,
                    at=now,
                    offset_in_run=self._offset_in_run(now).total_seconds(),
                )
                answer = await call(self.approver.check, request)
                if answer.state is not ApprovalState.PENDING:
                    kind = (
                        "approval_given"
                        if answer.state is ApprovalState.GIVEN
                        else "approval_rejected"
                    )
                    self.journal(
                        kind, phase=phase.name, data={"by": answer.by, "reason": answer.reason}
                    )
            if answer.state is not ApprovalState.PENDING:
                self.plugins.approval_answered(self.info, phase, answer)
                return answer
            waiting = self.wait_for_approval or deadline is not None
            if not waiting or (deadline is not None and now >= deadline):
                self.journal("approval_pending", phase=phase.name, data={"reason": answer.reason})
                self.plugins.approval_answered(self.info, phase, answer)
                return answer
            step = now + APPROVAL_POLL
            await self.clock.sleep_until(step if deadline is None else min(deadline, step))

    def _journaled_approval(self, phase: Phase, *, after: int) -> ApprovalAnswer | None:
        """An answer someone wrote into the journal after the request (the CLI's
        ``approve`` / ``reject``), or ``None``."""
        for event in self.store.events(self.run_id, after=after):
            if event.phase != phase.name:
                continue
            if event.kind in ("approval_given", "approval_rejected"):
                state = (
                    ApprovalState.GIVEN
                    if event.kind == "approval_given"
                    else ApprovalState.REJECTED
                )
                return ApprovalAnswer(
                    state=state,
                    by=str(event.data.get("by", "")),
                    reason=str(event.data.get("reason", "") or "from the journal"),
                )
        return None

    def _offset_in_run(self, now: datetime) -> timedelta:
        origin = self.origin or self.started_at or now
        return now - origin

    async def judge_checkpoint(  # noqa: PLR0915 - wait, judge, decide, journal: one loop
        self, state: PhaseState, checkpoint: Checkpoint
    ) -> list[CheckpointResult]:
        """Wait for the checkpoint, judge it, decide; re-check while the policy holds.

        Returns every evaluation of this checkpoint; the last one's decision is
        final for the checkpoint (CONTINUE, ADVANCE, ROLLBACK or a final HOLD). A
        ROLLBACK is applied here (unless judging only).
        """
        phase = state.phase
        last = checkpoint == phase.checkpoints[-1]
        due = state.started_at + checkpoint.offset
        results: list[CheckpointResult] = []
        attempt = 0
        journaled = self._journaled(phase, checkpoint)
        orphan = None
        if journaled is not None:
            results = list(journaled.results)
            decision = results[-1].decision if results else None
            released = decision is not None and decision.action is Action.HOLD and state.released
            if journaled.settled and not released:
                if decision is not None and decision.action is Action.ROLLBACK:
                    # Idempotent: finishes a rollback the dead process had not confirmed.
                    await self.rollback(phase, decision.reason)
                if decision is not None and decision.final:
                    state.decision = decision
                return results  # judged before the run was interrupted: never again
            if released:
                # A person released a final hold: judge this checkpoint again, now.
                state.released = False
                attempt = results[-1].result.attempt
                due = self.clock.now()
            elif results:
                attempt = results[-1].result.attempt
                recheck = results[-1].decision.recheck_at
                assert recheck is not None
                due = recheck
            orphan = journaled.orphan
        if checkpoint.traffic is not None and checkpoint.traffic != state.traffic:
            # The next step of a stepped phase starts when the previous one ended.
            assert checkpoint.step_start is not None
            await self.clock.sleep_until(state.started_at + checkpoint.step_start)
            await self.set_traffic(
                phase, checkpoint.traffic, f"{phase.name} steps up to {checkpoint.traffic:g}%"
            )
            state.traffic = checkpoint.traffic
            self.journal(
                "step_started",
                phase=phase.name,
                checkpoint=checkpoint.name,
                data={"traffic": checkpoint.traffic},
            )
        while True:
            await self.clock.sleep_until(due)
            now = self.clock.now()
            attempt += 1
            with self._span(
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
                    self._restore_judges(state, journaled.orphan_judges)
                else:
                    result = await self.evaluate(state, checkpoint, now, attempt)
                orphan = None
                decision, state.policy = decide(
                    phase.policy,
                    state.policy,
                    result.outcome,
                    last=last,
                    now=now,
                    why=summarize(result),
                    collecting=_collecting(result),
                )
                if span is not None:
                    span.set_attribute("gatekeeper.outcome", result.outcome.value)
                    span.set_attribute("gatekeeper.decision", decision.action.value)
            self.journal(
                "decision",
                phase=phase.name,
                checkpoint=checkpoint.name,
                data={
                    "action": decision.action.value,
                    "reason": decision.reason,
                    "outcome": result.outcome.value,
                    "attempt": attempt,
                    "recheck_at": decision.recheck_at.isoformat() if decision.recheck_at else None,
                    "policy": attrs.asdict(state.policy),
                },
            )
            item = CheckpointResult(result=result, decision=decision)
            results.append(item)
            state.results.append(item)
            next_name, next_at = self._next(state, checkpoint, decision)
            self.plugins.checkpoint_judged(self.info, phase, result, decision, next_at, next_name)
            if decision.action is Action.HOLD and decision.recheck_at is not None:
                due = decision.recheck_at
                continue
            if decision.final:
                state.decision = decision
            if decision.action is Action.ROLLBACK:
                await self.rollback(phase, decision.reason)
            return results

    def _journaled(self, phase: Phase, checkpoint: Checkpoint) -> CheckpointProgress | None:
        journal = self.journal_state
        if journal is None or phase.name not in journal.progress:
            return None
        return journal.progress[phase.name].checkpoints.get(checkpoint.name)

    def _next(
        self, state: PhaseState, checkpoint: Checkpoint, decision: Decision
    ) -> tuple[str | None, datetime | None]:
        if decision.action is Action.HOLD and decision.recheck_at is not None:
            return checkpoint.name + " (re-check)", decision.recheck_at
        if decision.action is not Action.CONTINUE:
            return None, None
        index = state.phase.checkpoints.index(checkpoint)
        following = state.phase.checkpoints[index + 1]
        return following.name, max(state.started_at + following.offset, self.clock.now())

    def end_phase(self, state: PhaseState) -> Decision:
        """Close the phase in the journal; its decision (ADVANCE when it ran out of
        checkpoints with every one passed)."""
        decision = state.decision
        if decision is None:
            decision = Decision(action=Action.HOLD, reason="the phase ended without a decision")
        if not state.ended_in_journal:
            self.journal(
                "phase_ended",
                phase=state.phase.name,
                data={"action": decision.action.value, "reason": decision.reason},
            )
        self.phase_results.append(
            PhaseResult(phase=state.phase.name, decision=decision, checkpoints=tuple(state.results))
        )
        return decision

    async def finish_on(self, decision: Decision, phase: Phase) -> RunResult:
        if decision.action is Action.ROLLBACK:
            return await self.finish(
                RunOutcome.ROLLED_BACK, f"{phase.name}: rolled back: {decision.reason}"
            )
        return await self.finish(RunOutcome.HELD, f"{phase.name}: held: {decision.reason}")

    async def finish(self, outcome: RunOutcome, reason: str) -> RunResult:
        """End the run: journal it, tell the hooks, return the result."""
        if self.result is not None:
            return self.result
        self.result = RunResult(
            run_id=self.run_id,
            plan=self.plan.name,
            outcome=outcome,
            reason=reason,
            phases=tuple(self.phase_results),
            split=self.confirmed,
        )
        if self.run_id:
            self.journal("run_ended", data={"outcome": outcome.value, "reason": reason})
            self.store.set_status(self.run_id, outcome.value)
            self.plugins.run_finished(self.info, self.result)
        return self.result

    async def interrupted(self, why: str) -> RunResult:
        """Journal an interruption; traffic stays where it is (never a success)."""
        where = (
            f"; the canary keeps {self.confirmed.canary:g}% of traffic" if self.confirmed else ""
        )
        if self.run_id:
            self.journal("interrupted", data={"reason": why})
        how = (
            f"run the same plan again to resume run {self.run_id}, or roll it back with "
            f"'gatekeeper rollback {self.run_id}'"
            if self.run_id
            else "nothing was started"
        )
        return await self.finish(RunOutcome.INTERRUPTED, f"{why}{where}. To go on: {how}")

    async def aclose(self) -> None:
        """Close what this rollout built (sources' HTTP clients and the like)."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self._lease is not None:
            lease, self._lease = self._lease, None
            with contextlib.suppress(GatekeeperError):
                lease.release()
        owned, self._owned = self._owned, []
        for thing in owned:
            closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
            if closer is not None:
                await call(closer)

    # -- traffic --------------------------------------------------------------------

    async def set_traffic(self, phase: Phase | None, percent: float, why: str) -> Split | None:
        """Journal the intent, apply, journal the confirmed split. On failure, try to
        return to the last confirmed split, then raise :class:`TrafficError`."""
        if self.judge_only or self.traffic is None:
            return None
        name = phase.name if phase else None
        self.journal("traffic_intent", phase=name, data={"canary": percent, "why": why})
        previous = self.confirmed
        try:
            with self._span("gatekeeper.traffic", {"gatekeeper.canary_percent": percent}):
                split = await call(self.traffic.set_split, percent)
        except TrafficError as exc:
            self.journal("traffic_failed", phase=name, data={"canary": percent, "error": str(exc)})
            restored = ""
            if previous is not None:
                try:
                    back = await call(self.traffic.set_split, previous.canary)
                    self.confirmed = back
                    self.journal(
                        "traffic_confirmed",
                        phase=name,
                        data={"canary": back.canary, "detail": back.detail},
                    )
                    restored = f"; returned to the last confirmed split ({back.canary:g}%)"
                except TrafficError as again:
                    restored = f"; returning to {previous.canary:g}% failed too: {again}"
            raise TrafficError(
                f"could not set the canary to {percent:g}%: {exc}{restored}",
                wanted=percent,
                actual=exc.actual,
            ) from exc
        self.confirmed = split
        self.journal(
            "traffic_confirmed", phase=name, data={"canary": split.canary, "detail": split.detail}
        )
        if previous is None or previous.canary != split.canary:
            self.plugins.traffic_changed(self.info, phase, split, previous)
        return split

    async def rollback(self, phase: Phase | None, why: str) -> None:
        """Send every request to the baseline (canary 0 %)."""
        await self.set_traffic(phase, 0.0, f"rollback: {why}")

    # -- judging --------------------------------------------------------------------

    async def evaluate(
        self, state: PhaseState, checkpoint: Checkpoint, at: datetime, attempt: int = 1
    ) -> GateResult:
        """Judge the phase's gate at ``at``: every query of the checkpoint runs
        concurrently, every measurement and verdict is journaled."""
        phase = state.phase
        since_start = at - state.started_at
        needs = self._needs(phase, since_start)
        measured = await asyncio.gather(
            *(self.measure(need, at, need.window or since_start, phase.name) for need in needs)
        )
        by_key = {
            (n.metric.name, n.variant, n.window is not None): m
            for n, m in zip(needs, measured, strict=True)
        }
        for m in measured:
            self.journal(
                "measurement",
                phase=phase.name,
                checkpoint=checkpoint.name,
                data={**measurement_data(m), "attempt": attempt},
            )
        last = checkpoint == phase.checkpoints[-1]
        verdicts = tuple(
            self._judge(i, by_key, state, at, since_start, last=last)
            for i in range(len(phase.gate.criteria))
        )
        for v in verdicts:
            self.journal(
                "verdict",
                phase=phase.name,
                checkpoint=checkpoint.name,
                data={**verdict_data(v), "attempt": attempt},
            )
        # Remember canary values for stability judged from checkpoint history.
        for (metric, variant, ranged), m in by_key.items():
            if variant == "canary" and not ranged and m.problem is None and m.value is not None:
                state.history.setdefault(metric, []).append((at, m.value))
        return GateResult(
            phase=phase.name, checkpoint=checkpoint.name, at=at, verdicts=verdicts, attempt=attempt
        )

    def _needs(self, phase: Phase, since_start: timedelta) -> list[_Need]:
        needs: dict[tuple[str, str, bool], _Need] = {}

        def add(metric: Metric, variant: str, window: timedelta | None = None) -> None:
            needs.setdefault(
                (metric.name, variant, window is not None),
                _Need(metric=metric, variant=variant, window=window),
            )

        for criterion in phase.gate.criteria:
            metric = self.plan.metrics[criterion.metric]
            add(metric, "canary")
            if criterion.reference is Reference.BASELINE:
                add(metric, "baseline")
            if criterion.kind is Kind.STABLE and hasattr(
                self.sources[metric.source], "query_range"
            ):
                add(metric, "canary", criterion.window or since_start)
        return list(needs.values())

    def _judge(
        self,
        index: int,
        measured: Mapping[tuple[str, str, bool], Measurement],
        state: PhaseState,
        at: datetime,
        since_start: timedelta,
        *,
        last: bool,
    ) -> Verdict:
        criterion = state.phase.gate.criteria[index]
        metric = self.plan.metrics[criterion.metric]
        canary = measured[(metric.name, "canary", False)]
        if criterion.kind in (Kind.THRESHOLD, Kind.COUNT):
            return judge_threshold(criterion, metric, canary)
        if criterion.kind is Kind.RELATIVE:
            reference = (
                measured.get((metric.name, "baseline", False))
                if criterion.reference is Reference.BASELINE
                else self.prerun.get(metric.name)
            )
            return judge_relative(criterion, metric, canary, reference)
        if criterion.kind is Kind.STABLE:
            ranged = measured.get((metric.name, "canary", True))
            if ranged is not None:
                return judge_stable(criterion, metric, [v for _, v in ranged.series], ranged)
            window = criterion.window or since_start
            history = [v for t, v in state.history.get(metric.name, []) if t >= at - window]
            if canary.value is not None and canary.problem is None:
                history.append(canary.value)
            return judge_stable(criterion, metric, history, canary)
        baseline = measured.get((metric.name, "baseline", False))
        measurements = (canary,) if baseline is None else (canary, baseline)
        try:
            return self._judge_compare(index, state, canary, baseline, at, last=last)
        except ValueError as exc:  # counts that cannot be (negative, more events than trials)
            return Verdict(
                criterion=criterion,
                outcome=Outcome.INCONCLUSIVE,
                reason=f"unusable counts: {exc}",
                measurements=measurements,
            )

    def _judge_compare(
        self,
        index: int,
        state: PhaseState,
        canary: Measurement,
        baseline: Measurement | None,
        at: datetime,
        *,
        last: bool,
    ) -> Verdict:
        """The anytime-valid judge (``_judge``): its state is carried across the
        phase's checkpoints and journaled after every look."""
        from . import _judge as judge  # noqa: PLC0415 - only plans with compare need it

        criterion = state.phase.gate.criteria[index]
        metric = self.plan.metrics[criterion.metric]
        measurements = (canary,) if baseline is None else (canary, baseline)

        def inconclusive(reason: str) -> Verdict:
            return Verdict(
                criterion=criterion,
                outcome=Outcome.INCONCLUSIVE,
                reason=reason,
                measurements=measurements,
            )

        common: dict[str, Any] = {
            "alpha": judge.criterion_alpha(state.phase.gate, index),
            "final": last,
            "fail_only": criterion.fail_only,
            "elapsed_s": (at - state.started_at).total_seconds(),
            "name": metric.name,
        }
        prior = state.judges.get(index)
        new: Any
        if criterion.reference is None:
            assert criterion.bound is not None and criterion.op is not None
            if canary.numerator is None or canary.denominator is None:
                return inconclusive(
                    canary.problem
                    or "a statistical bound needs counts: give the metric a numerator and "
                    "a denominator"
                )
            new, result = judge.judge_bound(
                prior,
                canary.numerator,
                canary.denominator,
                bound=_as_ratio(criterion.bound, metric),
                op=criterion.op,
                **common,
            )
        else:
            assert criterion.op is not None
            if baseline is None:
                return inconclusive("no baseline measurement")
            if canary.moments is not None and baseline.moments is not None:
                new, result = judge.judge_means(
                    prior,
                    judge.Moments(
                        n=canary.moments[0], total=canary.moments[1], total_sq=canary.moments[2]
                    ),
                    judge.Moments(
                        n=baseline.moments[0],
                        total=baseline.moments[1],
                        total_sq=baseline.moments[2],
                    ),
                    factor=criterion.factor,
                    offset=criterion.offset,
                    op=criterion.op,
                    **common,
                )
            else:
                counts = [_counts(canary), _counts(baseline)]
                if counts[0] is None or counts[1] is None:
                    problem = canary.problem or (
                        baseline.problem and f"baseline: {baseline.problem}"
                    )
                    return inconclusive(
                        problem or "compare needs counts (numerator/denominator or a count metric)"
                    )
                (c_events, c_trials), (b_events, b_trials) = counts[0], counts[1]
                new, result = judge.judge_counts(
                    prior,
                    c_events,
                    c_trials,
                    b_events,
                    b_trials,
                    factor=criterion.factor,
                    op=criterion.op,
                    split=state.phase.traffic,
                    **common,
                )
        state.judges[index] = new
        self.journal(
            "judge_state",
            phase=state.phase.name,
            data={"criterion": criterion.text, "state": new.to_dict()},
        )
        return Verdict(
            criterion=criterion,
            outcome=result.outcome,
            reason=result.explanation,
            observed=result.estimate,
            bound=criterion.bound,
            measurements=measurements,
            evidence={**result.as_evidence(), "collecting": result.collecting},
        )

    async def measure(
        self, need: _Need, at: datetime, window: timedelta, phase: str
    ) -> Measurement:
        """Ask the metric's source; never raises: errors and time-outs become the
        measurement's reason (and so an INCONCLUSIVE verdict)."""
        metric = need.metric
        source = self.sources[metric.source]
        by_name = bool(getattr(source, "by_metric_name", False))
        window = metric.window or window or DEFAULT_CHECK_WINDOW
        args = {**self.plan.args, **metric.args}
        args["variant"] = self.plan.variants.get(need.variant, need.variant)

        def query(text: str) -> Query:
            return Query(
                metric=metric.name,
                text=text,
                at=at,
                window=window,
                variant=need.variant,
                phase=phase,
                args=args,
                options=metric.options,
                deadline=at + self.query_timeout if isinstance(self.clock, SystemClock) else None,
            )

        if by_name:
            return await self._ask(source, query(metric.name), need)
        if metric.is_ratio:
            assert metric.numerator is not None and metric.denominator is not None
            top, bottom = await asyncio.gather(
                self._ask(source, query(metric.numerator), need),
                self._ask(source, query(metric.denominator), need),
            )
            return _ratio(metric, need.variant, at, top, bottom)
        text = metric.query or metric.name
        if need.variant == "baseline" and metric.baseline_query:
            text = metric.baseline_query
        return await self._ask(source, query(text), need)

    async def _ask(self, source: MetricSource, query: Query, need: _Need) -> Measurement:
        timeout = self.query_timeout.total_seconds()
        with self._span(
            "gatekeeper.query",
            {"gatekeeper.metric": query.metric, "gatekeeper.variant": query.variant},
        ):
            try:
                if need.window is not None:
                    # An optional extra of MetricSource, present when _needs() asked for it.
                    ranged: Any = getattr(source, "query_range")  # noqa: B009
                    step = max(need.window / 60, timedelta(seconds=1))
                    coro = call(lambda q: ranged(q, step=step), query)
                else:
                    coro = call(source.query, query)
                measurement: object = await asyncio.wait_for(coro, timeout)
            except TimeoutError:
                return _failed(query, f"timed out after {format_duration(self.query_timeout)}")
            except Exception as exc:  # noqa: BLE001 - a broken source is a reason, never a pass
                return _failed(query, f"source error: {type(exc).__name__}: {exc}")
        if not isinstance(measurement, Measurement):
            return _failed(
                query, f"the source returned {type(measurement).__name__}, not a Measurement"
            )
        return measurement

    # -- helpers --------------------------------------------------------------------

    def journal(
        self,
        kind: str,
        *,
        phase: str | None = None,
        checkpoint: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        return self.store.append(
            self.run_id,
            Event(
                kind=kind,
                at=self.clock.now(),
                phase=phase,
                checkpoint=checkpoint,
                data=dict(data or {}),
            ),
        )

    def _span(self, name: str, attributes: Mapping[str, Any]) -> Any:
        if self._tracer is None:
            from ._telemetry import get_tracer  # noqa: PLC0415 - keep otel out of import time

            self._tracer = get_tracer(self._tracer_provider)
        return self._tracer.start_as_current_span(name, attributes=dict(attributes))


def _same_share(a: float, b: float) -> bool:
    """Balancers round weights (10 % may read back as 10.16 %): within half a point
    the split is the one asked for; backends verify the exact share themselves."""
    return abs(a - b) < 0.5


def _wall_now() -> datetime:
    return datetime.now(UTC)


def _collecting(result: GateResult) -> bool:
    """True when the gate is inconclusive only because sequential tests are still
    collecting evidence (no missing data, no errors)."""
    pending = [v for v in result.verdicts if v.outcome is Outcome.INCONCLUSIVE]
    return bool(pending) and all(v.evidence.get("collecting") is True for v in pending)


def _as_ratio(bound: float, metric: Metric) -> float:
    """A bound in the metric's unit as a rate in (0, 1) (``percent`` metrics are x100)."""
    return bound / 100.0 if metric.unit == "percent" else bound


def _counts(m: Measurement) -> tuple[float, float | None] | None:
    """(events, trials) of a measurement: a ratio's two counts, or a bare count."""
    if m.numerator is not None and m.denominator is not None:
        return m.numerator, m.denominator
    if m.problem is None and m.value is not None:
        return m.value, None
    return None


def _failed(query: Query, reason: str) -> Measurement:
    return Measurement(
        metric=query.metric,
        variant=query.variant,
        at=query.at,
        value=None,
        reason=reason,
        query=query.text,
    )


def _ratio(
    metric: Metric, variant: str, at: datetime, top: Measurement, bottom: Measurement
) -> Measurement:
    """numerator / denominator, keeping both counts for the statistical judge."""
    ratio = Measurement(
        metric=metric.name,
        variant=variant,
        at=at,
        value=None,
        query=f"({top.query}) / ({bottom.query})",
        source=top.source,
        retries=top.retries + bottom.retries,
    )
    problem = top.problem or bottom.problem
    if problem is not None:
        which = "numerator" if top.problem else "denominator"
        return attrs.evolve(ratio, reason=f"{which}: {problem}")
    assert top.value is not None and bottom.value is not None
    counts = attrs.evolve(ratio, numerator=top.value, denominator=bottom.value)
    if bottom.value == 0:
        return attrs.evolve(counts, reason="no samples: the denominator is 0")
    return attrs.evolve(counts, value=top.value / bottom.value)
