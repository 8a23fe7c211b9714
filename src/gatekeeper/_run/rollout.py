"""The run loop: phases, checkpoints, decisions — the parts put together.

Async at the core; :meth:`Rollout.run_sync` and the functions in ``gatekeeper``
are the sync facade. The pytest plugin and the CLI drive the same step methods
(:meth:`start`, :meth:`begin_phase`, :meth:`judge_checkpoint`, :meth:`end_phase`,
:meth:`finish`) that :meth:`run` is made of, so they cannot decide differently.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from .._approval import ApprovalState, Approver
from .._calendar_start import StartAt
from .._clock import SystemClock
from .._model import (
    Action,
    Checkpoint,
    CheckpointResult,
    Decision,
    GateResult,
    Kind,
    Measurement,
    Phase,
    PhaseResult,
    Plan,
    RunOutcome,
    RunResult,
    Split,
)
from .._plugins import Plugins, default_plugins
from .._policy import PolicyState, decide
from .._protocols import Clock, MetricSource, Store, TrafficBackend
from .._schedule import schedule_data
from .._store import MemoryStore
from ..exceptions import GatekeeperError, PlanError, StoreError, TrafficError
from . import ending, steps, waits
from .approvals import Approvals
from .build import (
    build_sources,
    build_traffic,
    default_approver,
    plugin_context,
    redact_text,
    run_redactor,
)
from .context import PhaseState, RunContext
from .events import EventKind
from .lease import LeaseKeeper
from .measure import Measurer
from .notifications import attach_notifications
from .observers import OBSERVER_TIMEOUT, Observers
from .operator import OperatorChannel, OperatorRollback
from .replay import Journal
from .start import check_previous_phase, claim, record_prerun, resume
from .traffic import TrafficControl

__all__ = ["DEFAULT_QUERY_TIMEOUT", "POLL", "Rollout"]

DEFAULT_QUERY_TIMEOUT = timedelta(seconds=30)
#: How often a waiting runner reads the operator channel (rollback within seconds).
POLL = timedelta(seconds=1)


class Rollout:
    """One run of a plan against sources and a traffic backend.

    Everything it talks through can be injected: ``sources`` (name → source),
    ``traffic``, ``clock``, ``store``, ``plugins``, ``approver``. What it builds
    itself (from the plan and the plugins) it also closes. ``store`` defaults to
    an in-memory journal here; ``gatekeeper.run`` and the CLI use the plan's
    durable one.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        sources: Mapping[str, MetricSource] | None = None,
        traffic: TrafficBackend | None = None,
        clock: Clock | None = None,
        store: Store | str | Path | None = None,
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
        observer_timeout: float = OBSERVER_TIMEOUT,
        redact: Any = None,
        start_at: StartAt | None = None,
        notify: bool | None = None,
    ) -> None:
        self.plan = plan
        # The run's own start (--start-at) for its first phase, over the plan's.
        self.start_at = start_at
        self.first_phase: Phase | None = None
        # The phase that advanced last: its gate guards the waits before the next.
        self.last_state: PhaseState | None = None
        self.resume = resume
        self.restart = restart
        self.force = force
        self.wait_for_approval = wait_for_approval
        self.journal_state: Journal | None = None
        self.created: Any = None
        # The plan's last run had already covered these phases: reported, not repeated.
        self.reported = False
        self.plugins = plugins or default_plugins()
        context = plugin_context(plan, env)
        # One redactor for everything the run writes, shows or sends: the plan's
        # secrets now, and what each source and backend adds as it is built.
        self.redactor = run_redactor(plan, context.env, store)
        context = attrs.evolve(context, redactor=self.redactor, tracer_provider=tracer_provider)
        self._owned: list[object] = []
        if sources is None:
            sources = build_sources(plan, self.plugins, context)
            self._owned.extend(sources.values())
        self.sources: Mapping[str, MetricSource] = sources
        if traffic is None and not judge_only:
            traffic = build_traffic(plan, self.plugins, context)
            self._owned.append(traffic)
        self.clock: Clock = clock or SystemClock()
        if isinstance(store, str | Path):
            from .build import open_run_store  # noqa: PLC0415

            store, _ = open_run_store(plan, store)
            self._owned.append(store)
        self.store: Store = store or MemoryStore()
        self.lease = LeaseKeeper(self.store, wait=lease_wait)
        real = isinstance(self.clock, SystemClock)
        self.observers = Observers(self.plugins, threaded=real, timeout=observer_timeout)
        if redact is None:
            redact = self.redactor.redact_data
        self.ctx = RunContext(
            plan=plan,
            store=self.store,
            clock=self.clock,
            observers=self.observers,
            lease=self.lease,
            rehearsal=rehearsal,
            judge_only=judge_only,
            origin=origin,
            tracer_provider=tracer_provider,
            redact=redact,
        )
        self.observers.on_failure = self.ctx.observer_failed
        # A rehearsal pages nobody unless asked to (notify=True).
        wanted = not rehearsal if notify is None else notify
        self.notifications = (
            attach_notifications(self, context.env, redact_text(redact)) if wanted else None
        )
        self.traffic = TrafficControl(self.ctx, traffic)
        self.measurer = Measurer(
            plan=plan, sources=sources, timeout=query_timeout, deadlines=real, span=self.ctx.span
        )
        self.operator = OperatorChannel(self.ctx)
        self.approvals = Approvals(
            self.ctx,
            self.operator,
            approver or default_approver(context.env),
            wait_for_approval=wait_for_approval,
        )
        self.prerun: dict[str, Measurement] = {}
        self.phase_results: list[PhaseResult] = []
        self.result: RunResult | None = None
        self.poll = POLL if real else None

    # -- what the run is ------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.ctx.run_id

    @property
    def started_at(self) -> datetime | None:
        return self.ctx.started_at

    @property
    def info(self) -> Any:
        return self.ctx.info

    @functools.cached_property
    def budget(self) -> Any:
        """The rollout's α over every compare criterion of the plan (None without any)."""
        if not any(c.kind is Kind.COMPARE for p in self.plan.phases for c in p.gate.criteria):
            return None
        from .. import _judge  # noqa: PLC0415 - only plans with compare need it

        try:
            return _judge.AlphaBudget.of(self.plan.phases, alpha=self.plan.policy.alpha)
        except ValueError as exc:
            raise PlanError(str(exc), file=self.plan.path, key="policy.alpha") from None

    @property
    def confirmed(self) -> Split | None:
        return self.traffic.confirmed

    def select(self, phases: Sequence[str] | None) -> list[Phase]:
        """The phases to run, in plan order; an unknown name lists the known ones."""
        try:
            return list(self.plan.select(phases))
        except KeyError as exc:
            raise PlanError(str(exc.args[0]), file=self.plan.path) from None

    # -- the whole run ----------------------------------------------------------------

    async def run(self, phases: Sequence[str] | None = None) -> RunResult:
        """Run the plan (or the named phases, in plan order) to its end."""
        selected = self.select(phases)
        current: Phase | None = None
        try:
            await self.start(selected)
            if self.result is not None:
                return self.result  # finished before, or rolled back on resume
            with self.ctx.span("gatekeeper.run", {"gatekeeper.plan": self.plan.name}):
                for phase in selected:
                    current = phase
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
        except OperatorRollback as request:
            return await self.operator_rollback(current, request.reason)
        except (asyncio.CancelledError, KeyboardInterrupt):
            return await self.interrupted("interrupted (signal or cancellation)")
        except TrafficError as exc:
            return await self.finish(RunOutcome.ERROR, f"traffic change failed: {exc}")
        except StoreError as exc:
            if self.ctx.view is None:
                raise  # refused at start (another runner drives it): nothing to stop
            return self.journal_lost(exc)
        finally:
            await self.aclose()

    def run_sync(self, phases: Sequence[str] | None = None) -> RunResult:
        """:meth:`run` for scripts without an event loop."""
        return asyncio.run(self.run(phases))

    # -- steps ----------------------------------------------------------------------

    async def start(self, phases: Sequence[Phase] | None = None) -> str:
        """Open the run (or resume the plan's unfinished one), read the balancer,
        record pre-run values.

        An unfinished run of the same plan is resumed (unless ``resume=False``): the
        traffic is checked against the journal first (an unconfirmed rollback is
        finished, and the run ends rolled back), the phase in progress carried on.
        A plan edited since that run started is refused unless ``restart=True``.
        """
        selected = list(phases or self.plan.phases)
        self.first_phase = selected[0] if selected else None
        found = await claim(self, selected) if self.resume or self.restart else None
        if self.result is not None:
            return self.result.run_id
        if found is not None and self.created is None:
            if found.plan_digest != self.plan.digest and not self.restart:
                self.lease.release()
                raise GatekeeperError(
                    f"run {found.run_id} of plan {self.plan.name!r} is unfinished "
                    f"({found.status}) and the plan changed since it started: finish it "
                    "with the plan it started with, roll it back "
                    f"(gatekeeper rollback {found.run_id}), or start over with --restart"
                )
            await resume(self, found.run_id, found.status, found.started_at, selected)
            return self.result.run_id if self.result is not None else self.run_id
        try:
            check_previous_phase(self, selected)
        except GatekeeperError:
            if self.created is not None:  # claimed, then refused: never left "running"
                self.ctx.open(self.created.run_id, self.clock.now())
                self.ctx.journal(EventKind.ABANDONED, data={"reason": "refused at start"})
                self.store.set_status(self.created.run_id, "abandoned")
                self.lease.release()
            raise
        now = self.clock.now()
        if self.created is not None:
            run_id = self.created.run_id
        else:
            run_id = self.store.create_run(
                plan=self.plan.name, plan_digest=self.plan.digest, started_at=now
            )
            self.ctx.run_id = run_id
            self.lease.take(run_id)
        self.ctx.open(run_id, now)
        self.ctx.journal(
            EventKind.RUN_STARTED,
            data={
                "plan": self.plan.name,
                "digest": self.plan.digest,
                "phases": [p.name for p in selected],
                "schedule": schedule_data(selected),
                "rehearsal": self.ctx.rehearsal,
                "judge_only": self.ctx.judge_only,
            },
        )
        await self.observers.emit("run_started", run=self.info)
        await self.traffic.read()
        await record_prerun(self, selected)
        return self.run_id

    def resumed_phase(self, phase: Phase) -> PhaseState | None:
        """The phase in progress when the run stopped, rebuilt from the journal."""
        return steps.resumed_phase(self, phase)

    async def begin_phase(self, phase: Phase) -> PhaseState:
        """Ask for approval if needed, then move traffic. A refused or withheld
        approval ends the phase right away (``state.decision`` is set)."""
        state = PhaseState(phase=phase, started_at=self.clock.now())
        state.decision = await self._before_traffic(phase)
        if state.decision is not None:
            if state.decision.action is Action.ROLLBACK:
                await self.rollback(phase, state.decision.reason)
            return state
        await self.traffic.set(phase, phase.traffic, f"phase {phase.name} starts")
        state.traffic = phase.traffic
        state.started_at = self.clock.now()
        state.shares.append((0.0, phase.traffic))
        self.ctx.journal(
            EventKind.PHASE_STARTED,
            phase=phase.name,
            data={"traffic": phase.traffic, "started_at": state.started_at.isoformat()},
        )
        split = self.confirmed or Split(canary=phase.traffic, detail="not changed (judge only)")
        await self.observers.emit("phase_started", run=self.info, phase=phase, split=split)
        return state

    async def judge_checkpoint(
        self, state: PhaseState, checkpoint: Checkpoint
    ) -> list[CheckpointResult]:
        """Wait for the checkpoint, judge it, decide; re-check while the policy holds.

        Returns every evaluation of this checkpoint; the last one's decision is final
        for the checkpoint (CONTINUE, ADVANCE, ROLLBACK or a final HOLD). A ROLLBACK
        is applied before any observer hears of it.
        """
        return await steps.judge_checkpoint(self, state, checkpoint)

    async def fail_checks(
        self, state: PhaseState, checkpoint: Checkpoint, failed: list[str]
    ) -> CheckpointResult:
        """Tests attached to the checkpoint failed: its gate failed; the policy decides."""
        return await steps.fail_checks(self, state, checkpoint, failed)

    async def evaluate(
        self,
        state: PhaseState,
        checkpoint: Checkpoint,
        at: datetime,
        attempt: int = 1,
        *,
        quiet: bool = False,
    ) -> GateResult:
        """Judge the phase's gate at ``at``: every query runs concurrently, every
        measurement and verdict is journaled (``quiet``: only a look that did not pass)."""
        return await steps.evaluate(self, state, checkpoint, at, attempt, quiet=quiet)

    async def wait_until(self, due: datetime) -> None:
        """Wait for ``due`` (monotonic in a real run), reading the operator channel
        every :data:`POLL`; raises :class:`OperatorRollback` when a person asked."""
        while True:
            if self.lease.lost:
                # Renewal failed: the journal vanished or another runner took the run.
                raise StoreError(
                    f"run {self.run_id}: its lease could not be renewed (the journal is gone "
                    "or replaced, or another runner took the run over)"
                )
            self.operator.poll()
            now = self.clock.now()
            if now >= due:
                return
            step = due if self.poll is None else min(due, now + self.poll)
            await self.clock.sleep_until(step)

    async def _before_traffic(self, phase: Phase) -> Decision | None:
        """Everything a phase waits for before it moves traffic: its start time, its
        go/no-go (asked at ``ask_at``, due by the start), its window, freezes and a
        person's hold. The phase before it keeps being judged meanwhile."""
        guard = self.last_state
        start, stop = await waits.phase_start(self, phase, guard)
        if stop is not None:
            return stop
        if phase.approval is not None:
            ask, deadline = waits.approval_times(self, phase, start)
            stop = await waits.wait_for_start(self, ask, guard)
            if stop is not None:
                return stop
            answer = await self.approvals.ask(phase, self.wait_until, deadline=deadline)
            if answer.state is not ApprovalState.GIVEN:
                return steps.unapproved(self, phase, answer, deadline)
        stop = await waits.wait_for_start(self, start, guard)
        if stop is not None:
            return stop
        return await waits.until_allowed(self, guard, phase, f"{phase.name} starts")

    def end_phase(self, state: PhaseState) -> Decision:
        """Close the phase in the journal; its decision (ADVANCE when it ran out of
        checkpoints with every one passed)."""
        decision = state.decision
        if decision is None:
            decision = Decision(action=Action.HOLD, reason="the phase ended without a decision")
        if not state.ended_in_journal:
            self.ctx.journal(
                EventKind.PHASE_ENDED,
                phase=state.phase.name,
                data={"action": decision.action.value, "reason": decision.reason},
            )
        self.phase_results.append(
            PhaseResult(phase=state.phase.name, decision=decision, checkpoints=tuple(state.results))
        )
        if decision.action is Action.ADVANCE:
            self.last_state = state
        return decision

    async def finish_on(self, decision: Decision, phase: Phase) -> RunResult:
        if decision.action is Action.ROLLBACK:
            return await self.finish(
                RunOutcome.ROLLED_BACK, f"{phase.name}: rolled back: {decision.reason}"
            )
        return await self.finish(RunOutcome.HELD, f"{phase.name}: held: {decision.reason}")

    async def finish(self, outcome: RunOutcome, reason: str) -> RunResult:
        """End the run: journal it, then tell the observers; return the result."""
        return await ending.finish(self, outcome, reason)

    async def operator_rollback(self, phase: Phase | None, reason: str) -> RunResult:
        """A person asked for a rollback: canary to 0 %, then the run ends."""
        return await ending.operator_rollback(self, phase, reason)

    async def interrupted(self, why: str) -> RunResult:
        """Journal an interruption; traffic stays where it is (never a success)."""
        return await ending.interrupted(self, why)

    def journal_lost(self, exc: StoreError) -> RunResult:
        """The journal failed: stop where we are, traffic as it is."""
        return ending.journal_lost(self, exc)

    async def aclose(self) -> None:
        """Close what this rollout built (sources' HTTP clients and the like)."""
        if self.notifications is not None:
            notifications, self.notifications = self.notifications, None
            await asyncio.to_thread(notifications.close)  # bounded; before the lease goes
        self.lease.release()
        owned, self._owned = self._owned, []
        for thing in owned:
            closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
            if closer is not None:
                from .calls import call  # noqa: PLC0415

                await call(closer)

    # -- traffic ----------------------------------------------------------------------

    async def set_traffic(self, phase: Phase | None, percent: float, why: str) -> Split | None:
        """Move the canary share (intent journaled, lease checked, read back)."""
        return await self.traffic.set(phase, percent, why)

    async def rollback(self, phase: Phase | None, why: str) -> None:
        """Send every request to the baseline (canary 0 %); final for the run."""
        await self.traffic.rollback(phase, why)

    def decide(
        self, state: PhaseState, result: GateResult, *, last: bool, now: datetime, why: str
    ) -> tuple[Decision, PolicyState]:
        from .judging import collecting  # noqa: PLC0415

        return decide(
            state.phase.policy,
            state.policy,
            result.outcome,
            last=last,
            now=now,
            why=why,
            collecting=collecting(result),
        )
