"""Detection through the engine: the reference ramp with a 5-s watch against the same
ramp judged at its checkpoints only (issue 12; issue 11's "through the engine").

Every run drives the public engine -- ``gatekeeper.Rollout`` on a plan built by
``gatekeeper.plan_from_text``, a simulated source (``instant = True``) answering the
cumulative error and request counts of each arm from a seeded stream,
``gatekeeper.SimulatedClock``, a ``MemoryStore`` and the memory traffic backend -- for
one phase shaped like the reference plan's ramp (examples/progressive-rollout):

* checkpoints 15m 30m 1h 2h 3h 4h, gate ``error_rate canary <= baseline * 1.2``
  (symmetric, not ``fail_only``, as in the reference plan), the reference policy
  (roll back on FAIL, hold and re-check every 5 m on INCONCLUSIVE, 3 in a row roll back);
* plan ``checkpoints``: that alone; plan ``watch 5s``: the same plus
  ``[phases.watch] every = "5s"`` with the compare criterion (one e-process, looked at
  every 5 s and at the checkpoints).

The streams are ``detection_sim.draw``'s (200 requests/s in total, Poisson
requests and binomial errors per 5-s look, baseline error rate 0.2 %, the canary's rate
times the regression from the phase's start); both plans see the same streams, run by
run. Beside them, on the same streams:

* ``oracle``: detection_sim's SPRT on the canary's own data that knows the baseline
  rate and the true regression (null x1), at the same 5-s cadence -- the speed limit
  the docs compare with;
* ``direct``: ``detection_sim.CountsReplica`` at factor 1.2 fed the same looks (every
  5 s, or at the checkpoints only). The engine's FAIL time must equal it run by run, or
  the benchmark stops: what the engine decides is what the judge's arithmetic says.

A run's time to detect is the time of the rollback decision from the phase's start;
"detected" counts rollbacks by a FAIL within 4 h. Healthy runs at 1 % rarely gather
enough evidence to PASS ``<= baseline * 1.2`` in 4 h; the reference policy then holds
at 4 h and rolls back after three INCONCLUSIVE looks (4h10m): those runs are counted
apart (not a false FAIL: no statistical criterion failed), and reported.

    nice -n 10 taskset -c 1 .venv/bin/python benchmarks/detection_engine.py --probe 5
    nice -n 10 taskset -c 1 .venv/bin/python benchmarks/detection_engine.py \\
        --runs "healthy=2000,x2=300,x5=300" --json engine.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from detection import START, rollout
from detection_sim import ALPHA, LOOK, Array, CountsReplica, Scenario, draw
from scipy import stats

import gatekeeper
from gatekeeper import Measurement, Query

HORIZON = 4 * 3600.0
#: streams run past the last checkpoint: a phase INCONCLUSIVE at 4h re-checks at 4h05
#: and 4h10 (the reference policy) and is watched meanwhile
TAIL = 600.0
CHECKPOINTS = (900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0)
FACTOR = 1.2
FAIL_ONLY = False
_LOG_THRESHOLD = math.log(1.0 / ALPHA)
CHUNK = 250  # runs simulated at a time (memory: looks x runs x 4 floats)

PLAN = """
[plan]
name = "detection-engine"
[sources.sim]
type = "static"
[metrics.error_rate]
source = "sim"
numerator = "errors"
denominator = "requests"
[traffic]
type = "memory"
[policy]
on_fail = "rollback"
on_inconclusive = "hold"
inconclusive_limit = 3
recheck_interval = "5m"
[[phases]]
name = "ramp"
traffic = {TRAFFIC}
checkpoints = ["15m", "30m", "1h", "2h", "3h", "4h"]
gate = ["error_rate canary <= baseline * 1.2"]
"""

WATCH = """
[phases.watch]
every = "5s"
gate = ["error_rate canary <= baseline * 1.2"]
"""

PLANS = ("checkpoints", "watch 5s")


def build_plan(share: float, watch: bool) -> gatekeeper.Plan:
    text = PLAN.replace("{TRAFFIC}", f"{share * 100:g}") + (WATCH if watch else "")
    if FAIL_ONLY:  # --fail-only: the gate's criterion (the watch shares its test)
        text = text.replace(
            'checkpoints = ["15m", "30m", "1h", "2h", "3h", "4h"]\n'
            'gate = ["error_rate canary <= baseline * 1.2"]',
            'checkpoints = ["15m", "30m", "1h", "2h", "3h", "4h"]\n'
            'gate = [{ criterion = "error_rate canary <= baseline * 1.2", fail_only = true }]',
        )
    if FACTOR != 1.2:  # --factor: the same criterion with another tolerance
        written = "" if FACTOR == 1 else f" * {FACTOR:g}"
        text = text.replace("baseline * 1.2", f"baseline{written}")
    return gatekeeper.plan_from_text(text, path="detection-engine.toml")


class Stream:
    """Answers every look with one run's cumulative counts since the phase started."""

    instant = True  # from memory, never blocks: the engine calls it inline
    by_metric_name = True  # one query per arm: errors and requests together

    def __init__(self, counts: Array) -> None:
        self.counts = counts  # looks x 4: canary errors, requests, baseline errors, requests

    async def query(self, query: Query) -> Measurement:
        look = round((query.at - START).total_seconds() / LOOK)
        row = self.counts[look - 1] if look >= 1 else np.zeros(4)
        errors, requests = (row[0], row[1]) if query.variant == "canary" else (row[2], row[3])
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=float(errors / requests) if requests > 0 else None,
            reason=None if requests > 0 else "no samples: the denominator is 0",
            numerator=float(errors),
            denominator=float(requests),
            source="sim",
        )


@dataclass
class Outcomes:
    """Per run of one plan: the FAIL rollback's time (inf: none), and how it ended."""

    fail: list[float] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    seconds: float = 0.0
    looks: int = 0


async def drive(plan: gatekeeper.Plan, counts: Array, out: Outcomes) -> None:
    """One run through the engine; records the FAIL's decision time and the ending."""
    result = await rollout(plan, Stream(counts)).run()
    failed_at = math.inf
    ended = result.outcome.name.lower()
    for item in result.phases[0].checkpoints:
        if item.decision.action is gatekeeper.Action.ROLLBACK:
            at = (item.result.at - START).total_seconds()
            if item.result.outcome is gatekeeper.Outcome.FAIL:
                failed_at = at
                ended = "FAIL by the watch" if item.decision.reason.startswith("watch") else "FAIL"
            else:
                ended = f"rolled back at {at / 60:g}m: {item.result.outcome.name} limit"
            break
    looks = [
        v.evidence.get("looks", 0) for c in result.phases[0].checkpoints for v in c.result.verdicts
    ]
    out.looks += int(max(looks, default=0))
    out.fail.append(failed_at)
    out.ended.append(ended)


def direct(chunk: Array, at_looks: list[int]) -> Array:
    """The replica at factor 1.2 fed the cumulative counts at ``at_looks`` (1-based):
    the first look's time with harm >= 1/alpha (inf: none)."""
    runs = chunk.shape[1]
    replica = CountsReplica(runs, factor=FACTOR)
    times = np.full(runs, np.inf)
    previous = np.zeros((runs, 4))
    for look in at_looks:
        now = chunk[look - 1]
        inc = now - previous
        previous = now
        replica.update(inc[:, 0], inc[:, 1], inc[:, 2], inc[:, 3])
        hit = (replica.max_harm >= _LOG_THRESHOLD) & np.isinf(times)
        times[hit] = look * LOOK
    return times


@dataclass
class CellResult:
    share: float
    effect: float
    runs: int = 0
    oracle: list[float] = field(default_factory=list)
    plans: dict[str, Outcomes] = field(default_factory=lambda: {p: Outcomes() for p in PLANS})
    mismatches: int = 0


def run_cell(share: float, effect: float, runs: int, seed: int, index: int) -> CellResult:
    plans = {name: build_plan(share, name == "watch 5s") for name in PLANS}
    cell_result = CellResult(share=share, effect=effect)
    looks_all = int((HORIZON + TAIL) / LOOK)
    at_checkpoints = [round(t / LOOK) for t in CHECKPOINTS]
    done = 0
    chunk_index = 0
    while done < runs:
        size = min(CHUNK, runs - done)
        rng = np.random.default_rng([seed, index, chunk_index])
        streams = draw(Scenario("errors", "engine", share, effect), size, HORIZON + TAIL, rng)
        chunk = streams.cum  # looks x runs x 4, cumulative
        oracle = streams.oracle
        cell_result.oracle += [float(t) if t <= HORIZON else math.inf for t in oracle]
        expected = {
            "watch 5s": direct(chunk, list(range(1, looks_all + 1))),
            "checkpoints": direct(chunk, at_checkpoints),
        }
        for name, plan in plans.items():
            out = cell_result.plans[name]
            tick = time.perf_counter()
            for run in range(size):
                asyncio.run(drive(plan, chunk[:, run, :], out))
            out.seconds += time.perf_counter() - tick
            got = np.array(out.fail[done : done + size])
            want = expected[name]
            # within the phase's 4 h the engine must decide exactly what the judge says
            clip_got = np.where(got <= HORIZON, got, np.inf)
            clip_want = np.where(want <= HORIZON, want, np.inf)
            bad = np.flatnonzero(clip_got != clip_want)
            cell_result.mismatches += bad.size
            for run in bad[:3]:
                print(
                    f"# MISMATCH {name} share {share} x{effect} run {done + run}: engine "
                    f"{got[run]} s, direct judge {want[run]} s",
                    file=sys.stderr,
                )
        done += size
        chunk_index += 1
        cell_result.runs = done
        print(
            f"# {share:.0%} x{effect:g}: {done}/{runs} runs, "
            + ", ".join(
                f"{n} {o.seconds / done * 1e3:.0f} ms/run" for n, o in cell_result.plans.items()
            ),
            file=sys.stderr,
            flush=True,
        )
    return cell_result


# --------------------------------------------------------------------------- report


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    low = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return low, high


def pct(k: int, n: int) -> str:
    low, high = clopper_pearson(k, n)
    return f"{k / n:.2%} [{low:.2%}, {high:.2%}]"


def minutes(value: float) -> str:
    if not math.isfinite(value):
        return ">4h"
    return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.2f}h"


def quantiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)  # inf (never) sorts last; no interpolation across it
    n = len(ordered)
    return ordered[math.ceil(0.5 * n) - 1], ordered[math.ceil(0.9 * n) - 1]


def median_interval(times: list[float]) -> tuple[float, float]:
    """A distribution-free 95 % interval of the median: the order statistics whose
    ranks a Binomial(n, 1/2) puts the median between (inf: not detected by then)."""
    ordered = sorted(times)
    n = len(ordered)
    low = int(stats.binom.ppf(0.025, n, 0.5))  # rank (1-based) of the lower end
    high = int(stats.binom.isf(0.025, n, 0.5)) + 1
    return ordered[max(low, 1) - 1], ordered[min(high, n) - 1]


def rows(result: CellResult) -> list[dict[str, Any]]:
    out = []
    oracle_med, oracle_p90 = quantiles(result.oracle)
    for name, o in result.plans.items():
        within = [t if t <= HORIZON else math.inf for t in o.fail]
        med, p90 = quantiles(within)
        endings: dict[str, int] = {}
        for e in o.ended:
            endings[e] = endings.get(e, 0) + 1
        out.append(
            {
                "share": result.share,
                "effect": result.effect,
                "plan": name,
                "runs": result.runs,
                "fail": sum(math.isfinite(t) for t in within),
                "median": med,
                "p90": p90,
                "oracle_median": oracle_med,
                "oracle_p90": oracle_p90,
                "oracle_fail": sum(math.isfinite(t) for t in result.oracle),
                "ms_per_run": o.seconds / max(result.runs, 1) * 1e3,
                "looks_per_run": o.looks / max(result.runs, 1),
                "endings": endings,
                "times": within,
                "oracle_times": result.oracle,
                "mismatches": result.mismatches,
            }
        )
    return out


def render(all_rows: list[dict[str, Any]]) -> str:
    out = [
        "| share | canary | plan | runs | rolled back by a FAIL in 4 h [95 % CI] "
        "| median / p90 to detect [median's 95 % CI] | oracle (5 s) median / p90 [CI] "
        "| median ÷ oracle "
        "| engine ms/run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in all_rows:
        healthy = r["effect"] == 1.0
        ratio = (
            f"{r['median'] / r['oracle_median']:.2f}"
            if not healthy and math.isfinite(r["median"]) and math.isfinite(r["oracle_median"])
            else "—"
        )
        times = "—" if healthy else f"{minutes(r['median'])} / {minutes(r['p90'])}"
        oracle = "—" if healthy else f"{minutes(r['oracle_median'])} / {minutes(r['oracle_p90'])}"
        if not healthy and "times" in r:  # the medians' 95 % intervals
            low, high = median_interval(r["times"])
            times += f" [{minutes(low)}, {minutes(high)}]"
            low, high = median_interval(r["oracle_times"])
            oracle += f" [{minutes(low)}, {minutes(high)}]"
        canary = "healthy" if healthy else f"x{r['effect']:g}"
        out.append(
            f"| {r['share']:.0%} | {canary} | {r['plan']} "
            f"| {r['runs']:,} | {pct(r['fail'], r['runs'])} | {times} | {oracle} | {ratio} "
            f"| {r['ms_per_run']:.0f} |"
        )
    return "\n".join(out)


def parse_runs(text: str) -> dict[float, int]:
    """``healthy=2000,x2=500`` -> {1.0: 2000, 2.0: 500}; ``x1.2`` is the boundary of
    ``<= baseline * 1.2`` (where the test spends its alpha)."""
    out = {}
    for part in text.split(","):
        key, value = part.split("=")
        key = key.strip()
        out[1.0 if key == "healthy" else float(key.removeprefix("x"))] = int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--probe", type=int, default=0, help="Time N runs of each cell only")
    parser.add_argument("--runs", default="healthy=2000,x2=300,x5=300", help="Runs per cell")
    parser.add_argument("--shares", default="1", help="Canary shares in percent, e.g. 1,10")
    parser.add_argument("--json", default="", help="Write the rows to this file")
    parser.add_argument("--seed", type=int, default=20261128, help="Base seed")
    parser.add_argument("--render", nargs="*", default=None, help="Tables from --json files")
    parser.add_argument("--fail-only", action="store_true", help="The criterion is fail_only")
    parser.add_argument(
        "--factor", type=float, default=1.2, help="The criterion's tolerance (1: '<= baseline')"
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        loaded: list[dict[str, Any]] = []
        for path in args.render:
            with open(path, encoding="utf-8") as handle:
                loaded += json.load(handle)
        print(render(loaded))
        return 0
    global FACTOR, FAIL_ONLY  # noqa: PLW0603 - knobs for the plan text and the replica
    FACTOR = args.factor
    FAIL_ONLY = args.fail_only
    per_cell = parse_runs(args.runs)
    shares = [float(s) / 100 for s in args.shares.split(",")]
    started = time.perf_counter()
    all_rows: list[dict[str, Any]] = []
    for share in shares:
        for index, (effect, runs) in enumerate(per_cell.items()):
            runs = args.probe or runs  # noqa: PLW2901 - the probe's handful
            if runs == 0:  # skipped, its seed kept: the other cells draw the same streams
                continue
            result = run_cell(share, effect, runs, args.seed, int(share * 1000) + index)
            all_rows += rows(result)
            if args.json:  # after every cell: a run cut short keeps what it measured
                with open(args.json, "w", encoding="utf-8") as handle:
                    json.dump(all_rows, handle, indent=1)
            if result.mismatches:
                print(render(all_rows))
                raise SystemExit(f"the engine disagrees with the judge in {result.mismatches} runs")
    print(
        f"alpha = {ALPHA}, 200 req/s, baseline error rate 0.2 %, 4 h; "
        f"{time.perf_counter() - started:.0f} s in all."
    )
    print(render(all_rows))
    for r in all_rows:
        print(f"# {r['share']:.0%} x{r['effect']:g} {r['plan']}: {r['endings']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
