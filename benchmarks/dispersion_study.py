"""Why the counts test tempers by a *declared* dispersion, not by one estimated from the
run: false FAIL of healthy canaries, 95 % Clopper-Pearson intervals, on the streams of
``detection_sim`` (4 h, a look every 5 s, alpha = 1 %), for

* ``binomial``  -- no tempering (the judge with nothing declared);
* ``estimated`` -- each look tempered by the dispersion the *earlier* looks show (the
  largest over blocks of 5 s x 2^k, k = 0..9, shrunk toward 1 by 20 events' worth of
  binomial information): the best a test may do with an estimate, which must be made
  before the look it tempers;
* ``declared``  -- the judge as built: ``bursts`` (30 %, the streams' correlation time)
  for per-arm bursts, ``dispersion = 3`` for negative binomial counts with about 10
  errors a look.

Also when the estimated judge's false alarms happen (the share in the first 15 minutes,
while the first burst is the only one seen), and the same judges' median time to find
a x2 regression. The judge's arithmetic is vectorised with numpy (``CountsReplica``
plus the estimate); the declared judge is the one ``detection.py`` checks against the
engine run by run.

    nice .venv/bin/python benchmarks/dispersion_study.py --runs 2000      # ~15 min
"""

from __future__ import annotations

import argparse
import math
import time

import detection_sim
import numpy as np
from detection_sim import (
    ALPHA,
    BURST_LASTING,
    BURST_SD,
    HORIZON,
    Array,
    CountsReplica,
    Scenario,
    draw,
)
from detection_tables import interval

from gatekeeper import _judge

_LOG_THRESHOLD = math.log(1.0 / ALPHA)
SCALES = 10
PRIOR_EVENTS = 20.0


class Estimated(CountsReplica):
    """The counts test tempered at each look by the dispersion the earlier looks show:
    per block length, sum of squared deviations of the canary's events over the sum of
    their binomial variances, at the ratio the earlier looks estimate."""

    def __init__(self, runs: int) -> None:
        super().__init__(runs)
        self.blocks = np.zeros((SCALES, runs, 4))
        self.num = np.zeros((SCALES, runs))
        self.den = np.zeros((SCALES, runs))
        self.count = np.zeros((SCALES, runs))
        self.looks = 0
        self.seen = np.zeros((runs, 4))

    def phi(self) -> Array:
        out = np.ones(self.max_harm.size)
        for s in range(SCALES):
            est = (self.num[s] + PRIOR_EVENTS) / np.maximum(self.den[s] + PRIOR_EVENTS, 1e-300)
            out = np.maximum(out, np.where(self.count[s] >= 2, est, 1.0))
        return out

    def look(self, ce: Array, ct: Array, be: Array, bt: Array) -> None:
        self.dispersion_now = self.phi()
        self._tempered(ce, ct, be, bt, self.dispersion_now)
        # then measure, with this look, for the next ones
        self.looks += 1
        step = np.stack([ce, ct, be, bt], axis=1)
        ratio = np.clip(
            ((self.seen[:, 0] + 0.5) / np.maximum(self.seen[:, 1], 1e-9))
            / ((self.seen[:, 2] + 0.5) / np.maximum(self.seen[:, 3], 1e-9)),
            1 / 66,
            66,
        )
        for s in range(SCALES):
            self.blocks[s] += step
            if self.looks % (2**s):
                continue
            b = self.blocks[s]
            total = b[:, 0] + b[:, 2]
            good = (total > 0) & (b[:, 1] > 0) & (b[:, 3] > 0)
            share = b[:, 1] / np.maximum(b[:, 1] + b[:, 3], 1e-300)
            theta = ratio * share / (ratio * share + 1 - share)
            self.num[s] += np.where(good, (b[:, 0] - total * theta) ** 2, 0.0)
            self.den[s] += np.where(good, total * theta * (1 - theta), 0.0)
            self.count[s] += good
            self.blocks[s] = 0.0
        self.seen += step

    def _tempered(self, ce: Array, ct: Array, be: Array, bt: Array, phi: Array) -> None:
        ok = (ct > 0) & (bt > 0) & (ce + be > 0)
        rows = np.flatnonzero(ok)
        if not rows.size:
            return
        share = (ct[rows] / (ct[rows] + bt[rows]))[:, None]
        log_den = np.log(self.ratios[None, :] * share + (1.0 - share))
        inc = ce[rows, None] * (self.log_ratios[None, :] + np.log(share) - log_den)
        inc += be[rows, None] * (np.log1p(-share) - log_den)
        self.loglik[rows] += inc / phi[rows, None]
        h = _judge.GRID_HALF
        center = self.loglik[rows, h : h + 1]
        harm = detection_sim._logsumexp_rows(self.loglik[rows, h + 1 :] - center + self.up[None, :])
        self.max_harm[rows] = np.maximum(self.max_harm[rows], harm)


def fail_times(scenario: Scenario, runs: int, seed: int) -> dict[str, Array]:
    streams = draw(scenario, runs, HORIZON, np.random.default_rng(seed))
    declared = (
        CountsReplica(runs, bursts=(BURST_SD, BURST_LASTING), share=scenario.share)
        if scenario.knob == "bursts"
        else CountsReplica(runs, dispersion=3.0)
    )
    judges = {"binomial": CountsReplica(runs), "estimated": Estimated(runs), "declared": declared}
    times = {name: np.full(runs, np.inf) for name in judges}
    previous = np.zeros((runs, 4))
    for look in range(streams.cum.shape[0]):
        now = streams.cum[look]
        inc = now - previous
        previous = now
        elapsed = (look + 1) * streams.look
        for name, judge in judges.items():
            if isinstance(judge, Estimated):
                judge.look(inc[:, 0], inc[:, 1], inc[:, 2], inc[:, 3])
            else:
                judge.update(inc[:, 0], inc[:, 1], inc[:, 2], inc[:, 3], elapsed)
            hit = (judge.max_harm >= _LOG_THRESHOLD) & np.isinf(times[name])
            times[name][hit] = elapsed
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261208)
    args = parser.parse_args(argv)
    cells = [
        ("per-arm bursts", Scenario("errors", "bursts", 0.10, knob="bursts"), 0.002),
        ("per-arm bursts", Scenario("errors", "bursts", 0.01, knob="bursts"), 0.002),
        (
            "negative binomial k = 1, 1 % errors",
            Scenario("errors", "nb", 0.10, knob="nb", param=1.0),
            0.01,
        ),
    ]
    print(
        "| data | share | judge | runs | false FAIL in 4 h [95 % CI] | of them in the first 15 min "
        "| x2 found: median |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    started = time.perf_counter()
    for index, (label, scenario, error) in enumerate(cells):
        detection_sim.BASE_ERROR = error
        healthy = fail_times(scenario, args.runs, args.seed + index)
        regressed = fail_times(
            Scenario(
                "errors",
                scenario.name,
                scenario.share,
                2.0,
                knob=scenario.knob,
                param=scenario.param,
            ),
            max(args.runs // 4, 1),
            args.seed + 100 + index,
        )
        for name, times in healthy.items():
            k = int(np.isfinite(times).sum())
            early = int((times <= 900.0).sum())
            median = float(np.median(regressed[name]))
            found = f"{median / 60:.1f}m" if math.isfinite(median) else ">4h"
            print(
                f"| {label} | {scenario.share:.0%} | {name} | {args.runs:,} | "
                f"{interval(k, args.runs)} | {early} of {k} | {found} |"
            )
    detection_sim.BASE_ERROR = 0.002
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
