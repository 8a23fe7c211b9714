"""The cost of one watch tick against a real Prometheus, and how many runs one core
can watch every 5 s.

A watch of 5 criteria (error rate as numerator/denominator, p99 latency through
``histogram_quantile``, availability, a count, and the canary's error rate against
the baseline's with the sequential judge): 7 PromQL queries per tick. Each tick is the
engine's own watch look, ``Watcher.look`` (``gatekeeper._run.watch``) of a judge-only
``Rollout`` on a simulated clock: measure (no span per query), judge, persistence.

The Prometheus is started here on 127.0.0.1 with two hours of backfilled history
(5-s samples, exact and repeatable), or given with ``--url`` (then the data must
have the series below). Printed:

1. one run ticking back to back: wall time and CPU (``time.process_time``) per tick,
   median and p90, and ``5 s / CPU per tick`` = runs one core can watch at a 5-s cadence;
2. K runs in one process (asyncio tasks, each ticking every 5 s on its own grid,
   starts spread over the first 5 s) for ``--duration`` seconds: how late the ticks
   were (p50/p99/max), the CPU used and the share of one core.

    .venv/bin/python benchmarks/watch_tick.py [--ticks 300] [--runs 50,200] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gatekeeper import MemoryStore, Plan, Rollout, SimulatedClock
from gatekeeper._model import Outcome
from gatekeeper._protocols import PluginContext
from gatekeeper._run.context import PhaseState
from gatekeeper._run.watch import Watcher
from gatekeeper.sources import prometheus
from realservers.prometheus import PrometheusLauncher, openmetrics_family

CADENCE = 5.0
HISTORY = timedelta(hours=2)
STEP = 5  # seconds between backfilled samples
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))

PLAN: dict[str, Any] = {
    "plan": {"name": "watch-tick"},
    "variants": {"canary": "v2", "baseline": "v1"},
    "args": {"service": "checkout"},
    "sources": {"prom": {"type": "prometheus", "url": "http://127.0.0.1:9090"}},
    "metrics": {
        "error_rate": {
            "source": "prom",
            # Counts since the phase started ({{window}}): the sequential judge needs
            # cumulative counts, not a sliding window's.
            "numerator": 'sum(increase(http_requests_total{service="{{service}}",'
            'version="{{variant}}",code=~"5.."}[{{window}}]))',
            "denominator": 'sum(increase(http_requests_total{service="{{service}}",'
            'version="{{variant}}"}[{{window}}]))',
        },
        "latency_p99": {
            "source": "prom",
            "unit": "s",
            "query": "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_"
            'seconds_bucket{service="{{service}}",version="{{variant}}"}[1m])))',
        },
        "availability": {
            "source": "prom",
            "query": 'avg_over_time(probe_success{service="{{service}}",'
            'version="{{variant}}"}[1m])',
        },
        "crashes": {
            "source": "prom",
            "query": 'sum(increase(process_crashes_total{service="{{service}}",'
            'version="{{variant}}"}[1m]))',
        },
    },
    "traffic": {"type": "memory"},
    "phases": [
        {
            "name": "rollout",
            "traffic": 10,
            "checkpoints": ["36h"],
            "gate": [
                "error_rate < 1%",
                "latency_p99 < 500ms",
                "availability >= 99%",
                "crashes == 0",
                "error_rate canary <= baseline * 1.2",
            ],
            "watch": {
                "every": "5s",
                "gate": [
                    "error_rate < 1% for 1m",
                    "latency_p99 < 500ms for 1m",
                    "availability >= 99% for 1m",
                    "crashes == 0",
                    "error_rate canary <= baseline * 1.2",
                ],
            },
        }
    ],
}


def history(end: float) -> str:
    """Two hours of a healthy service, canary (v2) and baseline (v1), every 5 s."""
    stamps = [
        end - HISTORY.total_seconds() + i * STEP
        for i in range(int(HISTORY.total_seconds()) // STEP)
    ]
    requests, durations, probes, crashes = [], [], [], []
    for version, rate, errors in (("v1", 200.0, 0.002), ("v2", 20.0, 0.002)):
        base = {"service": "checkout", "version": version}
        ok = [(t, i * STEP * rate * (1 - errors)) for i, t in enumerate(stamps)]
        bad = [(t, i * STEP * rate * errors) for i, t in enumerate(stamps)]
        requests += [
            ("http_requests_total", {**base, "code": "200"}, ok),
            ("http_requests_total", {**base, "code": "500"}, bad),
        ]
        for le in BUCKETS:
            share = min(1.0, 0.5 + le * 2) if le != float("inf") else 1.0
            label = "+Inf" if le == float("inf") else repr(le)
            points = [(t, i * STEP * rate * share) for i, t in enumerate(stamps)]
            durations.append(
                ("http_request_duration_seconds_bucket", {**base, "le": label}, points)
            )
        probes.append(("probe_success", base, [(t, 1.0) for t in stamps]))
        crashes.append(("process_crashes_total", base, [(t, 0.0) for t in stamps]))
    return (
        openmetrics_family("http_requests", "counter", requests)
        + openmetrics_family("http_request_duration_seconds", "histogram", durations)
        + openmetrics_family("probe_success", "gauge", probes)
        + openmetrics_family("process_crashes", "counter", crashes)
    )


class Run:
    """One watched run: a judge-only ``Rollout`` and its phase's ``Watcher``."""

    def __init__(self, plan: Plan, url: str, start: datetime) -> None:
        self.plan = plan
        self.phase = plan.phases[0]
        self.source = prometheus.create(
            "prom", {"url": url}, PluginContext(base_dir=Path(), env={})
        )
        self.rollout = Rollout(
            plan,
            sources={"prom": self.source},
            clock=SimulatedClock(start),
            store=MemoryStore(),
            judge_only=True,
            notify=False,
            query_timeout=timedelta(seconds=10),
        )
        self.start = start
        self.watcher: Watcher | None = None

    async def tick(self, at: datetime) -> tuple[Outcome, int]:
        """One look of the engine's watch. Returns FAIL when the watch failed (PASS
        otherwise) and how many criteria had no data at this look."""
        if self.watcher is None:
            await self.rollout.start([self.phase])
            state = PhaseState(phase=self.phase, started_at=self.start, traffic=10.0)
            self.watcher = Watcher.of(self.rollout, state)
        failure = await self.watcher.look(at)
        missing = sum(1 for i in range(len(self.watch_criteria)) if self.watcher.seen.get(i) != at)
        return (Outcome.FAIL if failure is not None else Outcome.PASS), missing

    @property
    def watch_criteria(self) -> tuple[Any, ...]:
        assert self.phase.watch is not None
        return self.phase.watch.gate.criteria


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(plan: Plan, url: str, end: float, ticks: int) -> Mapping[str, float]:
    """``ticks`` looks back to back (simulated time moves 5 s a look)."""
    start = datetime.fromtimestamp(end, UTC) - HISTORY + timedelta(minutes=10)
    run = Run(plan, url, start)
    walls, cpus = [], []
    outcomes: dict[str, int] = {}
    missing = 0
    try:
        for i in range(ticks + 10):
            at = start + timedelta(seconds=CADENCE * (i + 1))
            wall, cpu = time.perf_counter(), time.process_time()
            outcome, problems = await run.tick(at)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            missing += problems
            if i >= 10:  # the first looks open the connections
                walls.append(wall)
                cpus.append(cpu)
                outcomes[outcome.name] = outcomes.get(outcome.name, 0) + 1
    finally:
        await run.source.aclose()
    if missing or "FAIL" in outcomes:
        raise SystemExit(f"every look of the healthy history should have data: {missing} missing")
    print(f"outcomes of the one run's looks: {outcomes} (PASS: the watch did not fail)")
    return {
        "wall_p50": statistics.median(walls),
        "wall_p90": quantile(walls, 0.9),
        "cpu_p50": statistics.median(cpus),
        "cpu_p90": quantile(cpus, 0.9),
        "cpu_mean": statistics.fmean(cpus),
    }


async def many_runs(
    plan: Plan, url: str, end: float, count: int, duration: float
) -> Mapping[str, float]:
    """``count`` runs in this process, each looking every 5 s (real time) for
    ``duration`` seconds; how late each look started, and the CPU it all took."""
    start = datetime.fromtimestamp(end, UTC) - HISTORY + timedelta(minutes=10)
    runs = [Run(plan, url, start) for _ in range(count)]
    late: list[float] = []
    problems = 0
    loop = asyncio.get_running_loop()
    origin = loop.time() + 0.5
    stop = origin + duration

    async def watch(index: int, run: Run) -> None:
        nonlocal problems
        due = origin + CADENCE * index / count  # spread the runs over the cadence
        n = 0
        while due < stop:
            await asyncio.sleep(max(0.0, due - loop.time()))
            late.append(loop.time() - due)
            at = start + timedelta(seconds=CADENCE * (n + 1))
            outcome, missing = await run.tick(at)
            if missing or outcome is Outcome.FAIL:
                problems += 1
            n += 1
            due += CADENCE

    cpu = time.process_time()
    wall = time.perf_counter()
    try:
        await asyncio.gather(*(watch(i, r) for i, r in enumerate(runs)))
    finally:
        await asyncio.gather(*(r.source.aclose() for r in runs))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "looks": len(late),
        "late_p50": statistics.median(late),
        "late_p99": quantile(late, 0.99),
        "late_max": max(late),
        "cpu_share": cpu / wall,
        "cpu_per_look": cpu / max(len(late), 1),
        "bad": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a real Prometheus with the series (default: start one)")
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--runs", default="50,200", help="K runs in one process, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each K-run test")
    args = parser.parse_args()
    end = time.time() - 600  # backfilled samples must lie in the past
    launcher = None
    with tempfile.TemporaryDirectory(prefix="watch-tick-") as root:
        if args.url:
            url = args.url
        else:
            launcher = PrometheusLauncher(Path(root))
            url = launcher.backfilled(history(end)).url
        plan = Plan.from_mapping({**PLAN, "sources": {"prom": {"type": "prometheus", "url": url}}})
        try:
            single = asyncio.run(one_run(plan, url, end, args.ticks))
            counts = [int(k) for k in args.runs.split(",") if k]
            crowds = {k: asyncio.run(many_runs(plan, url, end, k, args.duration)) for k in counts}
        finally:
            if launcher is not None:
                launcher.stop_all()
    print(f"target: {args.url or 'a Prometheus started here, 2 h of backfilled 5-s samples'}")
    print("tick: the engine's Watcher.look, 5 criteria, 7 PromQL queries")
    print(
        f"one run, {args.ticks} ticks back to back: wall {single['wall_p50'] * 1e3:.2f} ms "
        f"(p90 {single['wall_p90'] * 1e3:.2f}), CPU {single['cpu_p50'] * 1e3:.2f} ms "
        f"(p90 {single['cpu_p90'] * 1e3:.2f}, mean {single['cpu_mean'] * 1e3:.2f})"
    )
    print(
        f"runs one core can watch at a {CADENCE:g}-s cadence: {CADENCE / single['cpu_p50']:.0f} "
        f"(5 s / median CPU), {CADENCE / single['cpu_p90']:.0f} (5 s / p90 CPU)"
    )
    for k, crowd in crowds.items():
        print(
            f"{k} runs in one process for {args.duration:g} s: {crowd['looks']} looks, "
            f"late p50 {crowd['late_p50'] * 1e3:.1f} ms, p99 {crowd['late_p99'] * 1e3:.1f} ms, "
            f"max {crowd['late_max'] * 1e3:.1f} ms; CPU {crowd['cpu_share'] * 100:.0f} % of "
            f"one core ({crowd['cpu_per_look'] * 1e3:.2f} ms per look: "
            f"{CADENCE / crowd['cpu_per_look']:.0f} runs per core at that); "
            f"looks with missing data or FAIL: {crowd['bad']}"
        )


if __name__ == "__main__":
    main()
