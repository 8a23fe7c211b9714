"""What one look of each statistical test costs in CPU: ``gatekeeper._judge`` called
with a phase's cumulative data, look after look, as the engine calls it every few
seconds. Prints the median and p90 per look over a 4-hour phase at a 5-s cadence
(2,880 looks; 240 at 60 s for means), process time, in microseconds.

    taskset -c 1 .venv/bin/python benchmarks/judge_look.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from gatekeeper import _judge

ALPHA = 0.01


def _errors(looks: int, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    out, cum = [], np.zeros(4)
    for _ in range(looks):
        nc, nb = rng.poisson(100), rng.poisson(900)
        cum += (rng.binomial(nc, 0.002), nc, rng.binomial(nb, 0.002), nb)
        out.append((float(cum[0]), float(cum[1]), float(cum[2]), float(cum[3])))
    return out


def counts(
    dispersion: float = 1.0, bursts: _judge.Bursts | None = None
) -> Callable[[np.random.Generator], list[float]]:
    def run(rng: np.random.Generator) -> list[float]:
        state: _judge.CountsState | None = None
        costs = []
        for look, (ce, ct, be, bt) in enumerate(_errors(2880, rng), start=1):
            tick = time.process_time_ns()
            state, _ = _judge.judge_counts(
                state,
                ce,
                ct,
                be,
                bt,
                alpha=ALPHA,
                elapsed_s=5.0 * look,
                dispersion=dispersion,
                bursts=bursts,
            )
            costs.append((time.process_time_ns() - tick) / 1e3)
        return costs

    return run


def bound(rng: np.random.Generator) -> list[float]:
    state: _judge.BoundState | None = None
    costs = []
    for ce, ct, _, _ in _errors(2880, rng):
        tick = time.process_time_ns()
        state, _ = _judge.judge_bound(state, ce, ct, bound=0.005, op="<", alpha=ALPHA)
        costs.append((time.process_time_ns() - tick) / 1e3)
    return costs


def means(rng: np.random.Generator) -> list[float]:
    state: _judge.MeansState | None = None
    costs = []
    arms = [np.zeros(3), np.zeros(3)]
    for _ in range(240):
        for index, share in enumerate((0.1, 0.9)):
            values = np.minimum(rng.lognormal(0.0, 1.5, rng.poisson(1200 * share)), 100.0)
            arms[index] += (values.size, values.sum(), (values * values).sum())
        canary, baseline = (_judge.Moments(n=a[0], total=a[1], total_sq=a[2]) for a in arms)
        tick = time.process_time_ns()
        state, _ = _judge.judge_means(
            state, canary, baseline, alpha=ALPHA, op=">=", bounds=(0.0, 100.0)
        )
        costs.append((time.process_time_ns() - tick) / 1e3)
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--phases", type=int, default=5, help="Phases per test")
    args = parser.parse_args(argv)
    tests: dict[str, Callable[[np.random.Generator], list[float]]] = {
        "counts (judge_counts), nothing declared": counts(),
        "counts, dispersion = 2": counts(dispersion=2.0),
        "counts, bursts 30% lasting 17m": counts(bursts=_judge.Bursts(size=0.3, lasting_s=997.0)),
        "rate against a bound (judge_bound)": bound,
        "bounded means (judge_means), a look every 60 s": means,
    }
    print("| test | looks | median µs per look | p90 µs |")
    print("| --- | --- | --- | --- |")
    for name, test in tests.items():
        costs: list[float] = []
        for phase in range(args.phases):
            costs += test(np.random.default_rng(phase))
        p90 = statistics.quantiles(costs, n=10)[-1]
        print(f"| {name} | {len(costs):,} | {statistics.median(costs):.0f} | {p90:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
