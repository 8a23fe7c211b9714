"""What a fail-only PASS is worth: the chance that a regression still passes a
``fail_only`` criterion at the end of its phase (no FAIL by the horizon), with 95 %
Clopper-Pearson intervals. The bound test (``judge_bound``) is vectorised over runs;
a few runs are replayed through the library (log e-values must agree to 1e-9).

    taskset -c 1 .venv/bin/python benchmarks/fail_only_power.py      # ~1 min
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from gatekeeper import _judge

Array = NDArray[np.float64]
ALPHA = 0.01
LOOK = 5.0


def harm_log_e(events: Array, trials: Array, bound: float) -> Array:
    """``_judge.bound_log_e(..., above=True)`` vectorised over runs."""
    prior = _judge.bound_prior(bound, above=True)
    p = np.array([q for q, _ in prior])
    w = np.array([v for _, v in prior])
    misses = (trials - events)[:, None]
    terms = (
        w[None, :]
        + events[:, None] * (np.log(p) - math.log(bound))[None, :]
        + misses * (np.log1p(-p) - math.log1p(-bound))[None, :]
    )
    return np.asarray(special.logsumexp(terms, axis=1), dtype=np.float64)


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    low = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return low, high


def simulate(
    bound: float, rate: float, effect: float, horizon: float, runs: int, seed: int
) -> tuple[Array, Array, Array]:
    """First FAIL time per run; also the cumulative counts of the first run per look."""
    rng = np.random.default_rng(seed)
    p = bound * effect
    events = np.zeros(runs)
    trials = np.zeros(runs)
    best = np.zeros(runs)
    failed = np.full(runs, np.inf)
    trace = []
    for look in range(1, int(horizon / LOOK) + 1):
        n = rng.poisson(rate * LOOK, runs).astype(np.float64)
        events += rng.binomial(n.astype(np.int64), p)
        trials += n
        best = np.maximum(best, harm_log_e(events, trials, bound))
        hit = (best >= math.log(1 / ALPHA)) & np.isinf(failed)
        failed[hit] = look * LOOK
        trace.append((events[0], trials[0], best[0]))
    record = np.array(trace)
    return failed, record[:, 0], record[:, 1]


def check(bound: float, events: Array, trials: Array) -> float:
    state: _judge.BoundState | None = None
    worst = 0.0
    best = 0.0
    for e, t in zip(events[:300], trials[:300], strict=True):
        state, result = _judge.judge_bound(
            state, float(e), float(t), bound=bound, op="<", alpha=ALPHA
        )
        best = max(best, float(harm_log_e(np.array([e]), np.array([t]), bound)[0]))
        worst = max(worst, abs(math.log(result.e_value) - best))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args(argv)
    cases = [
        ("availability > 99.95 %, 1 probe/s", 0.0005, 1.0),
        ("error rate < 0.5 %, 2 req/s (1 % of 200)", 0.005, 2.0),
        ("error rate < 0.5 %, 20 req/s (10 % of 200)", 0.005, 20.0),
    ]
    print(
        "| criterion (fail-only) | failure rate | PASS at 1 h [95 % CI] | PASS at 4 h [95 % CI] |"
    )
    print("| --- | --- | --- | --- |")
    for index, (label, bound, rate) in enumerate(cases):
        for effect in (1.0, 2.0, 5.0):
            failed, events, trials = simulate(bound, rate, effect, 4 * 3600.0, args.runs, index)
            gap = check(bound, events, trials)
            if gap > 1e-9:
                raise SystemExit(f"the replica disagrees with judge_bound: {gap}")
            cells = []
            for horizon in (3600.0, 4 * 3600.0):
                passed = int((failed > horizon).sum())
                low, high = clopper_pearson(passed, args.runs)
                cells.append(f"{passed / args.runs:.1%} [{low:.1%}, {high:.1%}]")
            print(f"| {label} | ×{effect:g} the bound | {cells[0]} | {cells[1]} |")
            print(f"# {label} x{effect:g}: replica gap {gap:.1e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
