"""Running a fleet: waves in order, the targets of a wave concurrently, bakes,
the entry gate, and the fleet-wide decision when a target fails.

Each target is an ordinary :class:`gatekeeper.Rollout` of its own plan
(``"<plan>@<target>"``) in the fleet's store, so it journals, leases, resumes and
rolls back exactly as a single-target run does. The fleet's own progress is a run
of ``"<plan>@fleet"`` in the same store (:mod:`.journal`). A crash at any point
resumes every target where it was: a target run created after the fleet run is
this fleet's and is resumed; an older one belongs to an earlier fleet run and the
target starts over (``restart``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .._clock import SimulatedClock
from .._model import Outcome, RunOutcome, RunResult, Split
from .._protocols import Clock, Event, MetricSource, RunInfo, Store, TrafficBackend
from ..exceptions import GatekeeperError
from ..store.base import FINISHED_STATUSES, LeasingStore
from .bake import requests_served
from .journal import FleetEvent, FleetState, replay_fleet
from .model import ENTRY_PHASE, Fleet, FleetOnFail, Wave, fleet_name

__all__ = ["FleetResult", "FleetRun", "TargetParts"]

_FAILED = (RunOutcome.ROLLED_BACK, RunOutcome.ERROR)


@attrs.frozen(kw_only=True)
class TargetParts:
    """What one target's rollout talks through (``None``: built from its plan)."""

    traffic: TrafficBackend
    sources: Mapping[str, MetricSource] | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class FleetResult:
    """How a fleet run ended, and how each target's run did."""

    run_id: str
    plan: str
    outcome: RunOutcome
    reason: str
    targets: Mapping[str, str] = attrs.field(factory=dict)  # target -> its outcome
    rolled_back: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


class FleetRun:
    """One run of a fleet. ``parts(target)`` gives each target's backend (and
    sources); ``clock_at(moment)`` the clock a target's rollout starts on (a fresh
    simulated clock in a rehearsal, the one real clock otherwise)."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        store: Store,
        parts: Callable[[str], TargetParts],
        clock: Clock,
        clock_at: Callable[[datetime], Clock] | None = None,
        restart: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.fleet = fleet
        self.store = store
        self.clock = clock
        self.clock_at = clock_at or (lambda _moment: clock)
        self.restart = restart
        self.options = dict(options or {})
        self.parts = {name: parts(name) for name in fleet.targets}
        self.run_id = ""
        self.lease: Any = None
        self.state = FleetState()
        self.outcomes: dict[str, str] = {}

    # -- the journal ------------------------------------------------------------------

    def journal(self, kind: str, **data: Any) -> None:
        self.store.append(self.run_id, Event(kind=kind, at=self.clock.now(), data=data))

    def claim(self) -> RunInfo | None:
        """Create the fleet run or find the unfinished one; a finished one is returned
        (and reported by :meth:`run`)."""
        name = fleet_name(self.fleet.name)
        now = self.clock.now()
        store: Any = self.store
        if isinstance(store, LeasingStore):
            got = store.claim_run(
                plan=name, plan_digest=self.fleet.digest, started_at=now, restart=self.restart
            )
            self.lease = got.lease
            self.run_id = got.run.run_id
            if got.finished:
                return got.run
            if got.created:
                self.journal(FleetEvent.STARTED, digest=self.fleet.digest)
                return None
            return got.run if self._resumable(got.run) else None
        runs = [r for r in store.runs() if r.plan == name and r.status != "restarted"]
        if runs and runs[-1].status not in ("advanced", "rolled back") and not self.restart:
            self.run_id = runs[-1].run_id
            return runs[-1] if self._resumable(runs[-1]) else None
        if runs and not self.restart:
            latest: RunInfo = runs[-1]
            self.run_id = latest.run_id
            return latest
        self.run_id = store.create_run(plan=name, plan_digest=self.fleet.digest, started_at=now)
        self.journal(FleetEvent.STARTED, digest=self.fleet.digest)
        return None

    def _resumable(self, info: RunInfo) -> bool:
        """Pick up an unfinished fleet run; True when its journal shows it had in fact
        finished (the process died between journaling its end and marking the run):
        its status is completed and it is reported, not run again."""
        if info.plan_digest != self.fleet.digest:
            self._release()
            raise GatekeeperError(
                f"fleet run {info.run_id} of {self.fleet.name!r} is unfinished and the plan "
                "changed since it started: finish it with the plan it started with, roll it "
                "back, or start over with --restart"
            )
        self.state = replay_fleet(self.store.events(info.run_id))
        # What earlier processes of this fleet run saw end (on_fail reaches back to them).
        self.outcomes = {t: str(d["outcome"]) for t, d in self.state.ended_targets.items()}
        if isinstance(self.clock, SimulatedClock) and self.state.last_at is not None:
            self.clock.advance_to(self.state.last_at)
        if not self.state.started:  # created, then killed before its first event
            self.journal(FleetEvent.STARTED, digest=self.fleet.digest)
            self.state.started = True
        if self.state.ended is not None:
            outcome = str(self.state.ended.get("outcome"))
            if outcome in FINISHED_STATUSES:
                self.store.set_status(info.run_id, outcome)
                return True
            # Held or interrupted before: on again.
            self.journal(FleetEvent.RESUMED, after=outcome)
            self.state.ended = None
        return False

    def _release(self) -> None:
        if self.lease is not None:
            lease, self.lease = self.lease, None
            with contextlib.suppress(GatekeeperError):
                lease.release()

    # -- the whole fleet --------------------------------------------------------------

    async def run(self) -> FleetResult:
        finished = self.claim()
        renewer = asyncio.create_task(self._renew()) if self.lease is not None else None
        try:
            if finished is not None:
                return self.reported(finished)
            if self.state.failed is not None:
                return await self.fail_over(self.state.failed)
            for wave in self.fleet.waves:
                if wave.name in self.state.waves_done:
                    continue
                if wave.name not in self.state.waves_started:
                    problem = await self.entry(wave)
                    if problem is not None:
                        return self.end(RunOutcome.HELD, f"wave {wave.name}: {problem}")
                    moment = self.clock.now()
                    self.journal(FleetEvent.WAVE_STARTED, wave=wave.name, at=moment.isoformat())
                    self.state.waves_started[wave.name] = moment
                results = await self.run_wave(wave)
                failed = [
                    t for t in wave.targets if results[t] in _FAILED and t not in self.state.asked
                ]
                if failed:
                    return await self.fail(wave, failed)
                cut = [t for t in wave.targets if results[t] is RunOutcome.INTERRUPTED]
                if cut:
                    return self.end(
                        RunOutcome.INTERRUPTED,
                        f"wave {wave.name}: {', '.join(cut)} interrupted: run the fleet again "
                        "to continue",
                    )
                pending = [t for t in wave.targets if results[t] is not RunOutcome.ADVANCED]
                if pending:
                    return self.end(
                        RunOutcome.HELD,
                        f"wave {wave.name}: {', '.join(pending)} did not finish (held or "
                        "interrupted): run the fleet again to continue",
                    )
                problem = await self.bake(wave)
                if problem is not None:
                    return self.end(RunOutcome.HELD, f"wave {wave.name}: {problem}")
                self.journal(FleetEvent.WAVE_DONE, wave=wave.name)
                self.state.waves_done.add(wave.name)
            names = ", ".join(w.name for w in self.fleet.waves)
            return self.end(RunOutcome.ADVANCED, f"every wave advanced and baked ({names})")
        finally:
            if renewer is not None:
                renewer.cancel()
            self._release()

    async def _renew(self) -> None:
        lease = self.lease
        while True:
            left = (lease.expires_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(left / 3, 0.5))
            try:
                await asyncio.to_thread(lease.renew)
            except GatekeeperError:
                return

    def end(self, outcome: RunOutcome, reason: str) -> FleetResult:
        self.journal(FleetEvent.ENDED, outcome=outcome.value, reason=reason)
        status = outcome.value if outcome is not RunOutcome.INTERRUPTED else "interrupted"
        self.store.set_status(self.run_id, status)
        return self.result(outcome, reason)

    def result(self, outcome: RunOutcome, reason: str) -> FleetResult:
        return FleetResult(
            run_id=self.run_id,
            plan=self.fleet.name,
            outcome=outcome,
            reason=reason,
            targets=dict(self.outcomes),
            rolled_back=tuple(sorted(self.state.rolled_back)),
        )

    def reported(self, info: RunInfo) -> FleetResult:
        state = replay_fleet(self.store.events(info.run_id))
        self.state = state
        self.outcomes = {t: str(d.get("outcome")) for t, d in state.ended_targets.items()}
        ended = state.ended or {}
        outcome = RunOutcome(str(ended.get("outcome", "error")))
        return self.result(
            outcome,
            f"fleet run {info.run_id} already finished ({outcome.value}: "
            f"{ended.get('reason', '')}); nothing was done again: --restart starts over",
        )

    # -- a wave -----------------------------------------------------------------------

    async def run_wave(self, wave: Wave) -> dict[str, RunOutcome]:
        """Run the wave's targets concurrently; a failure (per ``on_fail``) asks the
        still-running ones of the wave to roll back through their journals."""
        results: dict[str, RunOutcome] = {}
        tasks: dict[asyncio.Task[RunResult], str] = {}
        rollouts: dict[str, Any] = {}
        for target in wave.targets:
            done = self.state.ended_targets.get(target)
            if done is not None:
                results[target] = RunOutcome(str(done["outcome"]))
                self.outcomes[target] = results[target].value
                continue
            rollout = self.rollout(target, self.state.waves_started[wave.name])
            rollouts[target] = rollout
            tasks[asyncio.ensure_future(rollout.run())] = target
        failing = any(r in _FAILED for r in results.values())
        pending = set(tasks)
        while pending:
            done_tasks, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done_tasks:
                target = tasks[task]
                result = task.result()
                results[target] = result.outcome
                self.outcomes[target] = result.outcome.value
                if result.outcome is RunOutcome.ADVANCED or result.outcome in _FAILED:
                    self.journal(
                        FleetEvent.TARGET_ENDED,
                        wave=wave.name,
                        target=target,
                        outcome=result.outcome.value,
                        run_id=result.run_id,
                        reason=result.reason,
                        at=rollouts[target].clock.now().isoformat(),
                    )
                    self._advance(rollouts[target].clock.now())
                if result.outcome in _FAILED:
                    failing = True
            if failing and self.fleet.policy.on_fail is not FleetOnFail.STOP:
                for task in pending:
                    if tasks[task] not in self.state.asked:
                        self.state.asked.add(tasks[task])
                        self.journal(FleetEvent.ROLLBACK_ASKED, target=tasks[task])
                        self._ask_rollback(
                            rollouts[tasks[task]], "another target of the wave failed"
                        )
        return results

    def rollout(self, target: str, start: datetime) -> Any:
        from .._run import Rollout  # noqa: PLC0415 - the engine loads on first use

        plan = self.fleet.target_plan(target)
        parts = self.parts[target]
        options = {**self.options, **parts.options}
        return Rollout(
            plan,
            store=self.store,
            traffic=parts.traffic,
            sources=parts.sources,
            clock=self.clock_at(start),
            restart=not self._ours(plan.name),
            **options,
        )

    def _ours(self, plan_name: str) -> bool:
        """Whether the plan's latest run was created after this fleet run (so it is
        this fleet's, to resume) rather than left by an earlier fleet run."""
        runs = list(self.store.runs())
        ids = [r.run_id for r in runs]
        mine = ids.index(self.run_id) if self.run_id in ids else len(ids)
        latest = [i for i, r in enumerate(runs) if r.plan == plan_name and r.status != "restarted"]
        return bool(latest) and latest[-1] > mine

    def _ask_rollback(self, rollout: Any, why: str) -> None:
        from .._run.events import EventKind  # noqa: PLC0415

        if not rollout.run_id:
            return
        event = Event(
            kind=EventKind.ROLLBACK_REQUESTED,
            at=self.clock.now(),
            data={"by": "fleet", "reason": why},
        )
        self.store.append(rollout.run_id, event, fenced=False)

    def _advance(self, moment: datetime) -> None:
        if isinstance(self.clock, SimulatedClock):
            self.clock.advance_to(moment)

    # -- entry gate and bake ------------------------------------------------------------

    async def entry(self, wave: Wave) -> str | None:
        """The fleet's entry gate, judged on every target, re-checked every
        ``entry_recheck`` until it passes or ``entry_limit`` has passed; ``None`` when
        it passes, else why the fleet holds."""
        if not self.fleet.policy.entry:
            return None
        give_up = self.clock.now() + self.fleet.policy.entry_limit
        while True:
            problem = await self.entry_once(wave)
            now = self.clock.now()
            if problem is None or now >= give_up:
                return problem
            await self.clock.sleep_until(min(now + self.fleet.policy.entry_recheck, give_up))

    async def entry_once(self, wave: Wave) -> str | None:
        from .._api import acheck  # noqa: PLC0415

        names = list(self.fleet.targets)
        checked = await asyncio.gather(
            *(
                acheck(
                    self.fleet.entry_plan(name),
                    ENTRY_PHASE,
                    sources=self.parts[name].sources,
                    clock=self.clock_at(self.clock.now()),
                    **{k: v for k, v in self.options.items() if k in ("plugins", "env")},
                )
                for name in names
            )
        )
        outcomes = {n: r.outcome.value for n, r in zip(names, checked, strict=True)}
        reasons = {
            n: "; ".join(v.reason for v in r.verdicts if v.outcome is not Outcome.PASS)
            for n, r in zip(names, checked, strict=True)
        }
        self.journal(FleetEvent.ENTRY_CHECKED, wave=wave.name, outcomes=outcomes, reasons=reasons)
        bad = [n for n, o in outcomes.items() if o != Outcome.PASS.value]
        if not bad:
            return None
        return "the entry gate did not pass in " + ", ".join(f"{n} ({reasons[n]})" for n in bad)

    async def bake(self, wave: Wave) -> str | None:
        """Wait out the wave's bake: its time, then its requests per target."""
        bake = wave.bake
        if bake.duration.total_seconds() <= 0 and bake.requests is None:
            return None
        started = self.state.bakes.get(wave.name)
        if started is None:
            started = self.clock.now()
            self.journal(FleetEvent.BAKE_STARTED, wave=wave.name, at=started.isoformat())
            self.state.bakes[wave.name] = started
        await self.clock.sleep_until(started + bake.duration)
        if bake.requests is None:
            return None
        metric = self.fleet.policy.requests
        assert metric is not None  # the loader refuses requests without it
        give_up = started + bake.duration + bake.limit
        while True:
            now = self.clock.now()
            served = {
                t: await requests_served(
                    self.fleet.target_plan(t), self.parts[t].sources, metric, started, now
                )
                for t in wave.targets
            }
            self.journal(FleetEvent.BAKE_CHECKED, wave=wave.name, requests=served)
            short = [t for t, n in served.items() if n is None or n < bake.requests]
            if not short:
                return None
            if now >= give_up:
                return (
                    f"bake: fewer than {bake.requests} requests in {', '.join(short)} by the "
                    "bake's limit"
                )
            await self.clock.sleep_until(min(now + bake.recheck, give_up))

    # -- a failure ------------------------------------------------------------------------

    async def fail(self, wave: Wave, failed: list[str]) -> FleetResult:
        """Journal the fleet's decision (which targets go back to 0 %), then apply it."""
        on_fail = self.fleet.policy.on_fail
        # In wave order: a resumed fleet decides exactly as an uninterrupted one.
        order = [t for w in self.fleet.waves for t in w.targets]
        moved = [t for t in order if t in self.outcomes and t not in failed]
        if on_fail is FleetOnFail.ROLLBACK_WAVE:
            back = [t for t in wave.targets if t not in failed]
        elif on_fail is FleetOnFail.ROLLBACK_ALL:
            back = moved
        else:
            back = []
        data = {"wave": wave.name, "targets": failed, "on_fail": on_fail.value, "rollback": back}
        self.journal(FleetEvent.FAILED, **data)
        return await self.fail_over(data)

    async def fail_over(self, data: Mapping[str, Any]) -> FleetResult:
        for target in data["rollback"]:
            if target in self.state.rolled_back:
                continue
            split = await self.rollback_target(target, f"fleet: {data['on_fail']}")
            self.journal(FleetEvent.TARGET_ROLLED_BACK, target=target, canary=split.canary)
            self.state.rolled_back[target] = split.canary
        failed = ", ".join(data["targets"])
        if data["on_fail"] == FleetOnFail.STOP.value:
            return self.end(
                RunOutcome.HELD,
                f"wave {data['wave']}: {failed} failed and rolled back; the fleet stopped "
                "(on_fail = stop): later waves never start, a person decides",
            )
        back = ", ".join(data["rollback"]) or "no other target"
        return self.end(
            RunOutcome.ROLLED_BACK,
            f"wave {data['wave']}: {failed} failed and rolled back; {back} rolled back "
            f"({data['on_fail']}); later waves never start",
        )

    async def rollback_target(self, target: str, why: str) -> Split:
        """Canary to 0 % on a target whose run already ended, journaled in that run
        (intent, read-back) and fenced by its lease; a balancer already at 0 % is only
        confirmed, never set again."""
        from .rollback import rollback_finished  # noqa: PLC0415

        plan = self.fleet.target_plan(target)
        return await rollback_finished(self.store, plan.name, self.parts[target].traffic, why)
