"""Detection benchmark of the statistical judge (issue 11): false FAIL / false PASS with
95 % Clopper-Pearson intervals and time to detect beside an oracle, on the data real
services produce. The results and their commands are in docs/statistics.md.

Every cell simulates many runs of one phase: a canary and its concurrent baseline, looked
at every few seconds for 4 hours, and judges each run with

* ``judge``  gatekeeper's judge -- the arithmetic of ``gatekeeper._judge`` vectorised over
  the runs with numpy (checked against the library itself on recorded runs: the log
  e-values must agree to 1e-6, or the benchmark stops);
* ``oracle`` Wald's SPRT on the canary's own data, knowing the baseline's distribution
  and the true regression (for healthy cells: designed for x2 / +20 %), stopping at
  likelihood ratio 1/alpha: the speed limit no usable judge reaches;
* ``z/look`` (error cells) a one-sided two-proportion z-test at alpha re-run at every
  look, for contrast.

Data (per look, per arm, independent unless said):

* errors: requests Poisson(rate x share x look), errors Binomial(requests, p), p = 0.2 %
  for the baseline and r x 0.2 % for the canary; scenario knobs multiply p or the volume:
  ``diurnal`` (volume x0.3-3.3, a 4-hour sine with a random phase), ``drift`` (a shared
  AR(1) factor on p, log-sd 0.5, lag-1 correlation 0.995 per 5 s), ``nb k`` (each arm's
  errors Poisson(requests x p x G), G ~ Gamma(k, 1/k) per look: negative binomial),
  ``bursts`` (each arm's p times its own AR(1) factor, log-sd 0.3, lag-1 correlation
  0.995 per 5 s);
* latency: 40 log-spaced buckets from 1 ms to 10 s; lognormal (median 40 ms, sigma 0.6
  or 1.5) or Lomax (scale 40 ms, tail index 1.5); the judge is ``judge_tail`` at the
  baseline's p90 bucket bound (the share of requests slower than it, canary against
  baseline, by the counts test); the regression multiplies every latency by 1.2;
* revenue: orders at 20/s in total, values lognormal (median 1, sigma 0.6 or 1.5) or
  Lomax (scale 1, tail 1.5) clipped to [0, 100] (the bounds the metric declares),
  ``judge_means`` with ``bounds=(0, 100)``, looked at every 60 s (the bounded-means test
  costs ~3 ms a look; a 5-s cadence would take hours here). Without bounds the judge
  refuses the mean (INCONCLUSIVE), checked through the library on a few runs.

The engine check (``--engine N``) drives N runs of two error cells through the public
``gatekeeper.Rollout`` (a plan, a simulated source answering from the same streams, the
simulated clock) for a 1-hour phase and requires the engine's verdicts to equal the
direct judge's, run by run.

The simulation and the vectorised judge are in ``detection_sim.py``; the docs' tables come
from ``detection_tables.py`` over the ``--json`` rows. Detection through the engine with a
5-s watch against checkpoints only, on the reference ramp's plan, is
``detection_engine.py`` (every run through ``gatekeeper.Rollout``).

    taskset -c 1 .venv/bin/python benchmarks/detection.py --cells errors/base   # ~3 min
    taskset -c 1 .venv/bin/python benchmarks/detection.py --quick          # smoke: seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from detection_sim import (
    ALPHA,
    HORIZON,
    LAT_SHIFT,
    Array,
    Cell,
    Record,
    cross_check,
    means_check,
    refusal_check,
    simulate_errors,
    simulate_latency,
    simulate_means,
)
from scipy import stats

from gatekeeper import _judge

# --------------------------------------------------------------------------- engine


def engine_check(cell: Cell, runs: int, horizon: float, seed: int) -> tuple[int, int]:
    """Drive ``runs`` runs through ``gatekeeper.Rollout`` on the simulated clock and count
    the runs whose engine verdict (FAIL look, or none) equals the direct judge's on the
    same counts. Returns (agreeing runs, runs)."""
    import gatekeeper  # noqa: PLC0415 - only this check needs the engine
    from gatekeeper._clock import SimulatedClock  # noqa: PLC0415
    from gatekeeper._model import Measurement, Plan, Query  # noqa: PLC0415
    from gatekeeper.traffic.memory import MemoryBackend  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    record = Record(keep=runs)
    direct = Cell(**{**cell.__dict__, "fail": {}, "passed": {}})
    simulate_errors(direct, runs, horizon, rng, record)
    counts = np.stack(record.counts)  # looks x runs x 4 (cumulative)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    plan = Plan.from_mapping(
        {
            "plan": {"name": "detection"},
            "sources": {"sim": {"type": "static"}},
            "metrics": {
                "error_rate": {"source": "sim", "numerator": "errors", "denominator": "requests"}
            },
            "phases": [
                {
                    "name": "canary",
                    "traffic": cell.share * 100,
                    "checkpoints": {"every": f"{cell.look:g}s", "until": f"{horizon:g}s"},
                    "gate": [{"criterion": "error_rate canary <= baseline", "alpha": ALPHA}],
                    "gate_alpha": ALPHA,
                }
            ],
        }
    )

    class Streams:
        """Answers each look with the run's cumulative counts since the phase started."""

        def __init__(self, run: int) -> None:
            self.run = run
            self.phase_start: datetime | None = None

        async def query(self, query: Query) -> Measurement:
            look = round(query.window.total_seconds() / cell.look)
            row = counts[look - 1, self.run] if look >= 1 else np.zeros(4)
            column = {
                "canary": {"errors": 0, "requests": 1},
                "baseline": {"errors": 2, "requests": 3},
            }
            value = float(row[column[query.variant][query.text]])
            return Measurement(metric=query.metric, variant=query.variant, at=query.at, value=value)

    agree = looks = 0
    expected = direct.fail["judge phi=1"]
    for run in range(runs):
        rollout = gatekeeper.Rollout(
            plan,
            sources={"sim": Streams(run)},
            traffic=MemoryBackend(),
            clock=SimulatedClock(start),
            plugins=gatekeeper.Plugins(load_entry_points=False),
            rehearsal=True,
        )
        result = asyncio.run(rollout.run())
        failed_at = math.inf
        # a last look still collecting holds the phase and re-checks after it: keep the
        # looks of the phase's own horizon
        judged = [
            c
            for c in result.phases[0].checkpoints
            if (c.result.at - start).total_seconds() <= horizon + 1e-6
        ]
        for checkpoint in judged:
            if checkpoint.result.outcome.name == "FAIL":
                failed_at = (checkpoint.result.at - start).total_seconds()
                break
        # the engine's last e-value against the library fed the same counts directly
        state: _judge.CountsState | None = None
        last_look = round((judged[-1].result.at - start).total_seconds() / cell.look)
        if run == 0:
            print(
                f"# engine run 0: {len(judged)} checkpoint results, last at look {last_look}, "
                f"{[c.result.at.isoformat()[11:19] for c in judged[-3:]]}",
                file=sys.stderr,
            )
        for look in range(last_look):
            ce, ct, be, bt = (float(v) for v in counts[look, run])
            state, direct_result = _judge.judge_counts(state, ce, ct, be, bt, alpha=ALPHA)
        engine_e = judged[-1].result.verdicts[0].evidence["e_value"]
        same_e = math.isclose(engine_e, direct_result.e_value, rel_tol=1e-9)
        agree += failed_at == expected[run] and same_e and len(judged) > 0
        looks += len(judged)
    print(f"# engine judged {looks:,} looks in {runs} runs", file=sys.stderr)
    return agree, runs


# --------------------------------------------------------------------------- report


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact 95 % interval of a binomial proportion."""
    low = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return low, high


def _pct(k: int, n: int) -> str:
    low, high = clopper_pearson(k, n)
    return f"{k / n:.2%} [{low:.2%}, {high:.2%}]"


def _time(value: float) -> str:
    if not math.isfinite(value):
        return ">4h"
    return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.2f}h"


def _quantiles(times: Array) -> tuple[float, float]:
    ordered = np.sort(times)  # inf (never) sorts last; no interpolation across it
    pick = [ordered[min(ordered.size - 1, math.ceil(q * ordered.size) - 1)] for q in (0.5, 0.9)]
    return float(pick[0]), float(pick[1])


def summarize(cell: Cell) -> list[dict[str, Any]]:
    """One row per judge of the cell."""
    rows = []
    runs = next(iter(cell.fail.values())).size
    oracle_med, oracle_p90 = _quantiles(cell.fail["oracle"])
    for name, times in cell.fail.items():
        if name in ("oracle",):
            continue
        failed = int(np.isfinite(times).sum())
        med, p90 = _quantiles(times)
        passes = cell.passed.get(name)
        passed = 0 if passes is None else int((np.isfinite(passes) & (passes < times)).sum())
        within_1h = int((times <= 3600.0).sum())
        rows.append(
            {
                "cell": cell.name,
                "judge": name,
                "runs": runs,
                "fail": failed,
                "pass": passed,
                "fail_1h": within_1h,
                "median": med,
                "p90": p90,
                "oracle_median": oracle_med,
                "oracle_p90": oracle_p90,
                "oracle_fail": int(np.isfinite(cell.fail["oracle"]).sum()),
                "seconds": cell.seconds,
            }
        )
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: healthy cells give false FAIL %, regressions the detection, time to
    detect beside the oracle, and how often a fail-only criterion would still PASS."""
    out = [
        "| cell | judge | runs | FAIL % [95 % CI] | PASS % [95 % CI] | fail-only PASS at 1 h / 4 h "
        "| median / p90 to FAIL | oracle median / p90 | ratio (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        runs = row["runs"]
        healthy = "healthy" in row["cell"]
        ratio = (
            f"{row['median'] / row['oracle_median']:.2f}"
            if math.isfinite(row["median"]) and math.isfinite(row["oracle_median"]) and not healthy
            else ""
        )
        fail_only = (
            ""
            if healthy
            else (f"{(runs - row['fail_1h']) / runs:.1%} / {(runs - row['fail']) / runs:.1%}")
        )
        times = "" if healthy else f"{_time(row['median'])} / {_time(row['p90'])}"
        oracle = "" if healthy else f"{_time(row['oracle_median'])} / {_time(row['oracle_p90'])}"
        out.append(
            f"| {row['cell']} | {row['judge']} | {runs:,} | {_pct(row['fail'], runs)} | "
            f"{_pct(row['pass'], runs)} | {fail_only} | {times} | {oracle} | {ratio} |"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- cells


def cells() -> list[Cell]:
    """Every scenario of issue 11."""
    out: list[Cell] = []
    for share in (0.01, 0.10):
        out += [
            Cell(group="errors", scenario="base", share=share, effect=effect)
            for effect in (1.0, 1.2, 1.5, 2.0, 5.0)
        ]
        out.append(Cell(group="errors", scenario="look 1s", share=share, effect=1.0, look=1.0))
        out.append(Cell(group="errors", scenario="look 1s", share=share, effect=5.0, look=1.0))
        for scenario, knob in (("diurnal", "diurnal"), ("drift", "drift")):
            out += [
                Cell(group="errors", scenario=scenario, share=share, effect=e, knob=knob)
                for e in (1.0, 2.0)
            ]
        for k in (4.0, 1.0):
            out += [
                Cell(
                    group="errors",
                    scenario=f"nb k={k:g}",
                    share=share,
                    effect=e,
                    knob="nb",
                    param=k,
                    dispersions=(1.0, 2.0, 4.0),
                )
                for e in (1.0, 2.0, 5.0)
            ]
        out += [
            Cell(
                group="errors",
                scenario="bursts",
                share=share,
                effect=e,
                knob="bursts",
                dispersions=(1.0, 2.0, 4.0, 8.0),
            )
            for e in (1.0, 2.0, 5.0)
        ]
        for dist in ("lognormal0.6", "lognormal1.5", "lomax"):
            out += [
                Cell(group="latency", scenario=dist, share=share, effect=e, dist=dist)
                for e in (1.0, LAT_SHIFT)
            ]
    out.append(Cell(group="errors", scenario="1 req/s", share=0.10, effect=1.0, rate=1.0))
    out.append(Cell(group="errors", scenario="1 req/s", share=0.10, effect=5.0, rate=1.0))
    for share in (0.01, 0.10):
        for dist in ("lognormal0.6", "lognormal1.5", "lomax"):
            out.append(
                Cell(
                    group="revenue",
                    scenario=f"{dist} >=",
                    share=share,
                    effect=1.0,
                    dist=dist,
                    op=">=",
                )
            )
        out.append(
            Cell(
                group="revenue",
                scenario="lognormal1.5 <=",
                share=share,
                effect=1.0,
                dist="lognormal1.5",
            )
        )
        out.append(
            Cell(
                group="revenue",
                scenario="lognormal1.5 >=",
                share=share,
                effect=0.8,
                dist="lognormal1.5",
                op=">=",
            )
        )
    return out


SIMULATE: dict[str, Callable[[Cell, int, float, np.random.Generator, Record | None], None]] = {
    "errors": simulate_errors,
    "latency": simulate_latency,
    "revenue": simulate_means,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: few runs, 30 minutes")
    parser.add_argument("--runs", type=int, default=None, help="Simulated runs per cell")
    parser.add_argument("--cells", default="", help="Only cells whose name contains this")
    parser.add_argument("--only-group", default="", help="Only cells of this group (errors...)")
    parser.add_argument(
        "--dispersions", default="", help="Declared dispersions to judge with, e.g. 8,16"
    )
    parser.add_argument("--engine", type=int, default=0, help="Runs per cell through the engine")
    parser.add_argument("--json", default="", help="Write the rows to this file")
    parser.add_argument("--seed", type=int, default=20261127, help="Base seed")
    args = parser.parse_args(argv)
    runs = args.runs or (60 if args.quick else 2000)
    horizon = 1800.0 if args.quick else HORIZON
    every = cells()
    chosen = [c for c in every if args.cells in c.name and args.only_group in ("", c.group)]
    if args.quick:
        chosen = [
            c
            for c in chosen
            if c.scenario in ("base", "nb k=1", "lognormal1.5") or c.group == "revenue"
        ][:12]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if args.dispersions:
        for cell in chosen:
            cell.dispersions = tuple(float(v) for v in args.dispersions.split(","))
    picked = {id(c) for c in chosen}
    for index, cell in enumerate(every):
        if id(cell) not in picked:
            continue
        rng = np.random.default_rng([args.seed, index])
        tick = time.perf_counter()
        record = Record() if cell.group != "revenue" else None
        SIMULATE[cell.group](cell, runs, horizon, rng, record)
        cell.seconds = time.perf_counter() - tick
        if record is not None:
            gap = cross_check(cell, record, 60 if args.quick else 200)
        else:
            gap = means_check(cell, np.random.default_rng([args.seed, index, 1]), 5)
        print(f"# {cell.name}: {cell.seconds:.1f}s, library vs replica {gap:.1e}", file=sys.stderr)
        if gap > 1e-6:
            raise SystemExit(f"the replica disagrees with gatekeeper._judge on {cell.name}: {gap}")
        rows += summarize(cell)
    refused = refusal_check(np.random.default_rng(args.seed))
    print(
        f"# unbounded revenue through the library: {refused} verdicts (0 expected)", file=sys.stderr
    )
    if refused:
        raise SystemExit("an unbounded mean got a verdict")
    if args.engine:
        for cell in chosen:
            if (
                cell.group == "errors"
                and cell.scenario == "base"
                and cell.effect in (1.0, 2.0, 5.0)
            ):
                tick = time.perf_counter()
                agree, total = engine_check(cell, args.engine, 3600.0, args.seed)
                print(
                    f"# engine vs direct, {cell.name}, 1 h: {agree}/{total} runs agree "
                    f"({time.perf_counter() - tick:.0f}s)",
                    file=sys.stderr,
                )
    print(
        f"{runs:,} runs per cell, {horizon / 3600:g} h, alpha = {ALPHA}; "
        f"simulated in {time.perf_counter() - started:.0f} s."
    )
    print(render(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
