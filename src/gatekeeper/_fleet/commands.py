"""What the command line calls for a fleet plan: run, rehearse, status, rollback.

Each returns the exit code and writes its report to ``out``; none of them parses
arguments (the CLI does) or exits the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .._model import RunOutcome, Split
from .._plugins import Plugins, default_plugins
from .._protocols import Clock, Store
from .journal import replay_fleet
from .model import Fleet, fleet_name, target_name
from .orchestrate import FleetResult, FleetRun, TargetParts

__all__ = ["fleet_rollback", "fleet_status", "rehearse_fleet", "run_fleet"]


def _store(fleet: Fleet, store: Store | str | Path | None) -> tuple[Store, bool]:
    from .._run.build import open_run_store  # noqa: PLC0415

    return open_run_store(fleet.plan, store)


async def _close(parts: Iterable[TargetParts]) -> None:
    """Close the backends and sources built for the targets (we made them)."""
    from .._run.calls import call  # noqa: PLC0415

    for part in parts:
        for thing in [part.traffic, *(part.sources or {}).values()]:
            closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
            if closer is not None:
                await call(closer)


def _print(result: FleetResult, out: TextIO) -> None:
    print(f"fleet {result.plan}: {result.outcome.value}: {result.reason}", file=out)
    for target, outcome in sorted(result.targets.items()):
        print(f"  {target}: {outcome}", file=out)


async def run_fleet(
    fleet: Fleet,
    *,
    store: Store | str | Path | None = None,
    plugins: Plugins | None = None,
    env: Mapping[str, str] | None = None,
    restart: bool = False,
    out: TextIO | None = None,
    clock: Clock | None = None,
    clock_at: Callable[[datetime], Clock] | None = None,
    **options: Any,
) -> FleetResult:
    """Run the fleet for real: each target's backend and sources built from its plan.

    ``options`` go to every target's :class:`Rollout` (``wait_for_approval``,
    ``lease_wait``, ``query_timeout`` ...); ``clock`` (and ``clock_at``, the clock a
    wave's targets start on) default to the one real clock."""
    from .._clock import SystemClock  # noqa: PLC0415
    from .._run import build_sources, build_traffic, plugin_context  # noqa: PLC0415

    plugins = plugins or default_plugins()
    journal, owned = _store(fleet, store)

    def parts(target: str) -> TargetParts:
        plan = fleet.target_plan(target)
        context = plugin_context(plan, env)
        return TargetParts(
            traffic=build_traffic(plan, plugins, context),
            sources=build_sources(plan, plugins, context),
        )

    run: FleetRun | None = None
    try:
        run = FleetRun(
            fleet,
            store=journal,
            parts=parts,
            clock=clock or SystemClock(),
            clock_at=clock_at,
            restart=restart,
            options={"plugins": plugins, "env": env, **options},
        )
        result = await run.run()
    finally:
        if run is not None:
            await _close(run.parts.values())
        if owned:
            journal.close()
    if out is not None:
        _print(result, out)
    return result


def rehearse_fleet(
    fleet: Fleet,
    recording: str | Path | Mapping[str, str | Path],
    *,
    store: Store | None = None,
    plugins: Plugins | None = None,
    out: TextIO | None = None,
) -> FleetResult:
    """Rehearse the fleet on simulated clocks (sync; the CLI's ``rehearse``)."""
    import asyncio  # noqa: PLC0415

    from .._run.calls import call  # noqa: PLC0415
    from .rehearse import fleet_rehearsal  # noqa: PLC0415

    run, backends = fleet_rehearsal(fleet, recording, store=store, plugins=plugins)

    async def rehearse() -> tuple[FleetResult, dict[str, float]]:
        result = await run.run()
        shares: dict[str, float] = {}
        for target, backend in backends.items():
            split: Split = await call(backend.get_split)
            shares[target] = split.canary
        return result, shares

    result, shares = asyncio.run(rehearse())
    if out is not None:
        print(f"fleet {result.plan}: {result.outcome.value}: {result.reason}", file=out)
        for wave in fleet.waves:
            for target in wave.targets:
                outcome = result.targets.get(target, "never started")
                print(
                    f"  {wave.name:<10} {target:<16} {outcome:<14} canary {shares[target]:g}%",
                    file=out,
                )
    return result


def fleet_status(fleet: Fleet, store: Store, *, out: TextIO) -> int:
    """A table of targets x wave x last phase x share x last verdict, and what the
    fleet waits for. Exit 0 (the status itself is not a verdict)."""
    from .._run.events import EventKind  # noqa: PLC0415

    runs = list(store.runs())
    fleets = [r for r in runs if r.plan == fleet_name(fleet.name)]
    if not fleets:
        print(f"fleet {fleet.name}: never run", file=out)
        return 0
    info = fleets[-1]
    state = replay_fleet(store.events(info.run_id))
    mine = [r.run_id for r in runs].index(info.run_id)
    print(f"fleet {fleet.name}: run {info.run_id}, {info.status}", file=out)
    print(
        f"{'target':<16} {'wave':<10} {'run':<10} {'phase':<10} {'share':>6}  last verdict",
        file=out,
    )
    for target in fleet.targets:
        wave = fleet.wave_of(target).name
        ours = [r for r in runs[mine + 1 :] if r.plan == target_name(fleet.name, target)]
        if not ours:
            print(f"{target:<16} {wave:<10} {'-':<10} {'-':<10} {'-':>6}  not started", file=out)
            continue
        phase, share, verdict = "-", "-", "-"
        for event in store.events(ours[-1].run_id):
            if event.kind == EventKind.PHASE_STARTED and event.phase:
                phase = event.phase
            elif event.kind == EventKind.TRAFFIC_CONFIRMED:
                share = f"{float(event.data.get('canary', 0)):g}%"
            elif event.kind == EventKind.DECISION:
                verdict = str(event.data.get("action", "-"))
        print(
            f"{target:<16} {wave:<10} {ours[-1].status:<10} {phase:<10} {share:>6}  {verdict}",
            file=out,
        )
    print("waiting for: " + _waiting(fleet, state), file=out)
    return 0


def _waiting(fleet: Fleet, state: Any) -> str:
    if state.ended is not None:
        return f"nothing (ended {state.ended.get('outcome')}: {state.ended.get('reason')})"
    for wave in fleet.waves:
        if wave.name in state.waves_done:
            continue
        if wave.name not in state.waves_started:
            return f"wave {wave.name} to start (entry gate)"
        if wave.name in state.bakes:
            return f"wave {wave.name} to bake (since {state.bakes[wave.name].isoformat()})"
        return f"wave {wave.name}'s targets to finish their phases"
    return "the fleet to end"


def fleet_rollback(
    fleet: Fleet,
    store: Store,
    *,
    targets: Sequence[str] | None,
    by: str,
    reason: str,
    out: TextIO,
) -> int:
    """``gatekeeper rollback --target T`` (or every target the fleet moved): the
    engine's own rollback on each target's latest run (through its live runner if
    there is one). Exit 0 when every one is confirmed, 3 otherwise."""
    from .._operate import rollback  # noqa: PLC0415

    names = list(targets or fleet.targets)
    code = 0
    for name in names:
        if name not in fleet.targets:
            print(f"unknown target {name!r} (known: {', '.join(fleet.targets)})", file=out)
            return 2
        plan = fleet.target_plan(name)
        runs = [r for r in store.runs() if r.plan == plan.name and r.status != "restarted"]
        if not runs:
            print(f"{name}: never started, nothing to roll back", file=out)
            continue
        done = rollback(store, plan, runs[-1], by=by, reason=reason, out=out)
        code = max(code, 0 if done == 0 else RunOutcome.HELD.exit_code)
    return code
