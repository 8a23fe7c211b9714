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

    taskset -c 1 .venv/bin/python benchmarks/detection.py --cells errors   # ~6 min
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from gatekeeper import _judge

Array = NDArray[np.float64]

RATE = 200.0  # requests per second, canary and baseline together
LOOK = 5.0
HORIZON = 4 * 3600.0
ALPHA = 0.01
BASE_ERROR = 0.002
AR_PHI = 0.995
DRIFT_SD = 0.5
BURST_SD = 0.3
LAT_MEDIAN = 0.040
LAT_SHIFT = 1.2
ORDERS = 20.0
MEANS_LOOK = 60.0
REVENUE_BOUNDS = (0.0, 100.0)
_LOG_THRESHOLD = math.log(1.0 / ALPHA)
#: a plan of six compare criteria: each spends alpha / 6 of the rollout's budget
BUDGET_SHARES = 6
_SPLIT_THRESHOLD = math.log(BUDGET_SHARES / ALPHA)
SPLIT_SUFFIX = f" at alpha/{BUDGET_SHARES}"
SPLIT_NAME = f"judge phi=1{SPLIT_SUFFIX}"
_Z = float(stats.norm.isf(ALPHA))


@dataclass
class Cell:
    """One scenario and regression; ``results`` maps a judge's name to its per-run
    first FAIL time and first PASS time (``inf``: never)."""

    group: str
    scenario: str
    share: float
    effect: float
    rate: float = RATE
    look: float = LOOK
    knob: str = ""
    param: float = 0.0
    dispersions: tuple[float, ...] = (1.0,)
    dist: str = ""
    op: str = "<="
    fail: dict[str, Array] = field(default_factory=dict)
    passed: dict[str, Array] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        effect = "healthy" if self.effect == 1.0 else f"x{self.effect:g}"
        return f"{self.group}/{self.scenario} {effect} @{self.share * 100:g}%"

    @property
    def healthy(self) -> bool:
        return self.effect == 1.0


# --------------------------------------------------------------------------- judges


class CountsReplica:
    """``_judge.judge_counts`` (op ``<=``, factor 1) vectorised over runs: the tempered
    conditional log-likelihood on the grid, the harm and the safety mixtures."""

    def __init__(self, runs: int, dispersion: float = 1.0) -> None:
        ks = np.arange(-_judge.GRID_HALF, _judge.GRID_HALF + 1)
        self.ratios = np.exp(ks * _judge.GRID_STEP)
        self.log_ratios = np.log(self.ratios)
        self.up = np.array([w for _, w in _judge.UP_WEIGHTS])
        self.down = np.array([w for _, w in _judge.DOWN_WEIGHTS])
        self.loglik = np.zeros((runs, ks.size))
        self.temper = 1.0 / dispersion
        self.max_harm = np.zeros(runs)
        self.max_safe = np.zeros(runs)

    def update(self, ce: Array, ct: Array, be: Array, bt: Array) -> None:
        ok = (ct > 0) & (bt > 0) & (ce + be > 0)
        if not ok.any():
            return
        rows = np.flatnonzero(ok)
        share = (ct[rows] / (ct[rows] + bt[rows]))[:, None]
        log_den = np.log(self.ratios[None, :] * share + (1.0 - share))
        inc = ce[rows, None] * (self.log_ratios[None, :] + np.log(share) - log_den)
        inc += be[rows, None] * (np.log1p(-share) - log_den)
        loglik = self.loglik[rows] + self.temper * inc
        self.loglik[rows] = loglik
        h = _judge.GRID_HALF
        center = loglik[:, h : h + 1]
        harm = _logsumexp_rows(loglik[:, h + 1 :] - center + self.up[None, :])
        safe = _logsumexp_rows(loglik[:, h - 1 :: -1] - center + self.down[None, :])
        self.max_harm[rows] = np.maximum(self.max_harm[rows], harm)
        self.max_safe[rows] = np.maximum(self.max_safe[rows], safe)


def _logsumexp_rows(values: Array) -> Array:
    top = values.max(axis=1)
    return np.asarray(np.log(np.exp(values - top[:, None]).sum(axis=1)) + top, dtype=np.float64)


_LAMBDAS = np.array(_judge.LAMBDAS)
_PSI = -np.log1p(-_LAMBDAS) - _LAMBDAS
_LOG_W = -math.log(_LAMBDAS.size)


def _arm_log_e(n: Array, s: Array, q: Array, m: Array, *, above: bool) -> Array:
    """``_judge.arm_log_e`` vectorised over runs (``m`` inside the bounds)."""
    lo, hi = REVENUE_BOUNDS
    span = hi - lo
    drift = (s - n * m) / span
    if not above:
        drift = -drift
    spread = np.maximum(0.0, q - 2.0 * m * s + n * m * m) / (span * span)
    terms = _LOG_W + _LAMBDAS[None, :] * drift[:, None] - _PSI[None, :] * spread[:, None]
    out = np.asarray(special.logsumexp(terms, axis=1), dtype=np.float64)
    return np.where(n > 0, out, 0.0)


Arm = tuple[Array, Array, Array]


def means_harm(canary: Arm, baseline: Arm, *, upper: bool) -> Array:
    """log harm e-value of ``judge_means`` (factor 1, offset 0) vectorised: evidence the
    canary's mean is above (``upper``) or below the baseline's, halved (union bound)."""
    lo, hi = REVENUE_BOUNDS
    above = upper

    def pair(m: Array) -> tuple[Array, Array]:
        return (
            _arm_log_e(canary[0], canary[1], canary[2], m, above=above),
            _arm_log_e(baseline[0], baseline[1], baseline[2], m, above=not above),
        )

    runs = canary[0].size
    left, right = np.full(runs, lo), np.full(runs, hi)
    a_l, b_l = pair(left)
    a_r, b_r = pair(right)
    at_left = (a_l <= b_l) if above else (a_l >= b_l)
    at_right = (a_r >= b_r) if above else (a_r <= b_r)
    inside, outside = left.copy(), right.copy()
    for _ in range(60):
        middle = 0.5 * (inside + outside)
        a, b = pair(middle)
        go_right = (a > b) == above
        inside = np.where(go_right, middle, inside)
        outside = np.where(go_right, outside, middle)
    a_i, b_i = pair(inside)
    a_o, b_o = pair(outside)
    bisected = np.maximum(np.minimum(a_i, b_i), np.minimum(a_o, b_o))
    out = np.where(
        at_left, np.minimum(a_l, b_l), np.where(at_right, np.minimum(a_r, b_r), bisected)
    )
    return out - math.log(2.0)


# --------------------------------------------------------------------------- simulation


def _ar1(rng: np.random.Generator, state: Array | None, runs: int, sd: float) -> Array:
    if state is None:
        return rng.normal(0.0, sd, runs)
    return AR_PHI * state + rng.normal(0.0, sd * math.sqrt(1.0 - AR_PHI**2), runs)


def _first(times: Array, hit: NDArray[np.bool_], now: float) -> None:
    times[hit & np.isinf(times)] = now


@dataclass
class Record:
    """Cumulative counts of the first runs, per look, for the library cross-check."""

    keep: int = 4
    counts: list[Array] = field(default_factory=list)


def simulate_errors(
    cell: Cell, runs: int, horizon: float, rng: np.random.Generator, record: Record | None = None
) -> None:
    """Error counts under the cell's scenario; every judge on the same streams."""
    looks = int(horizon / cell.look)
    judges = {f"judge phi={d:g}": CountsReplica(runs, d) for d in cell.dispersions}
    names = [*judges, *([SPLIT_NAME] if 1.0 in cell.dispersions else []), "oracle", "z/look"]
    fail = {name: np.full(runs, np.inf) for name in names}
    passed = {name: np.full(runs, np.inf) for name in judges}
    cum = np.zeros((4, runs))
    p1 = BASE_ERROR * (cell.effect if not cell.healthy else 2.0)
    hit, miss = math.log(p1 / BASE_ERROR), math.log1p(-p1) - math.log1p(-BASE_ERROR)
    oracle = np.zeros(runs)
    shared: Array | None = None
    bursts: list[Array | None] = [None, None]
    phase = rng.uniform(0.0, 2 * math.pi, runs)
    for look in range(1, looks + 1):
        now = look * cell.look
        volume = np.ones(runs)
        if cell.knob == "diurnal":
            volume = 1.8 + 1.5 * np.sin(2 * math.pi * now / HORIZON + phase)
        mean_requests = cell.rate * cell.look * volume
        nc = rng.poisson(mean_requests * cell.share).astype(np.float64)
        nb = rng.poisson(mean_requests * (1.0 - cell.share)).astype(np.float64)
        pb = np.full(runs, BASE_ERROR)
        pc = np.full(runs, BASE_ERROR * cell.effect)
        if cell.knob == "drift":
            shared = _ar1(rng, shared, runs, DRIFT_SD)
            factor = np.exp(shared - DRIFT_SD**2 / 2)
            pb, pc = pb * factor, pc * factor
        if cell.knob == "bursts":
            for arm in (0, 1):
                bursts[arm] = _ar1(rng, bursts[arm], runs, BURST_SD)
            assert bursts[0] is not None
            assert bursts[1] is not None
            pc = pc * np.exp(bursts[0] - BURST_SD**2 / 2)
            pb = pb * np.exp(bursts[1] - BURST_SD**2 / 2)
        if cell.knob == "nb":
            k = cell.param
            ec = rng.poisson(nc * pc * rng.gamma(k, 1 / k, runs)).astype(np.float64)
            eb = rng.poisson(nb * pb * rng.gamma(k, 1 / k, runs)).astype(np.float64)
            ec, eb = np.minimum(ec, nc), np.minimum(eb, nb)
        else:
            ec = rng.binomial(nc.astype(np.int64), np.minimum(pc, 1.0)).astype(np.float64)
            eb = rng.binomial(nb.astype(np.int64), np.minimum(pb, 1.0)).astype(np.float64)
        cum += np.stack([ec, nc, eb, nb])
        if record is not None:
            record.counts.append(cum[:, : record.keep].T.copy())
        for name, judge in judges.items():
            judge.update(ec, nc, eb, nb)
            _first(fail[name], judge.max_harm >= _LOG_THRESHOLD, now)
            if name + SPLIT_SUFFIX in fail:  # the same judge at a 1/6 share of the budget
                _first(fail[name + SPLIT_SUFFIX], judge.max_harm >= _SPLIT_THRESHOLD, now)
            _first(passed[name], judge.max_safe >= _LOG_THRESHOLD, now)
        oracle += ec * hit + (nc - ec) * miss
        _first(fail["oracle"], oracle >= _LOG_THRESHOLD, now)
        pooled = (cum[0] + cum[2]) / np.maximum(cum[1] + cum[3], 1.0)
        se = np.sqrt(
            pooled * (1 - pooled) * (1 / np.maximum(cum[1], 1) + 1 / np.maximum(cum[3], 1))
        )
        diff = cum[0] / np.maximum(cum[1], 1) - cum[2] / np.maximum(cum[3], 1)
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
        _first(fail["z/look"], z > _Z, now)
    cell.fail, cell.passed = fail, passed


def _edges() -> Array:
    return np.asarray(np.geomspace(0.001, 10.0, 41), dtype=np.float64)


def latency_cdf(dist: str, x: Array, scale: float = 1.0) -> Array:
    """P(latency <= x) of the cell's distribution, every latency multiplied by ``scale``."""
    x = np.asarray(x, dtype=np.float64) / scale
    if dist == "lomax":
        return np.asarray(1.0 - (1.0 + x / LAT_MEDIAN) ** -1.5, dtype=np.float64)
    sigma = float(dist.removeprefix("lognormal"))
    return np.asarray(stats.norm.cdf((np.log(x) - math.log(LAT_MEDIAN)) / sigma), dtype=np.float64)


def tail_bound(dist: str, quantile: float) -> float:
    """The baseline's bucket bound at ``quantile``: the first with that share below it."""
    edges = _edges()
    return float(edges[np.argmax(latency_cdf(dist, edges) >= quantile)])


def _bucket_probs(dist: str, scale: float) -> Array:
    cdf = latency_cdf(dist, _edges(), scale)
    cdf = np.concatenate([[0.0], cdf, [1.0]])
    return np.asarray(np.diff(cdf), dtype=np.float64)  # 41 buckets, the last is +Inf


def simulate_latency(
    cell: Cell, runs: int, horizon: float, rng: np.random.Generator, record: Record | None = None
) -> None:
    """Histogram latencies; the judge on the share slower than the baseline's p90 bound,
    the oracle on the canary's whole histogram."""
    looks = int(horizon / cell.look)
    edges = _edges()
    p0 = _bucket_probs(cell.dist, 1.0)
    pc = _bucket_probs(cell.dist, cell.effect)
    p1 = _bucket_probs(cell.dist, cell.effect if not cell.healthy else LAT_SHIFT)
    weights = np.log(np.maximum(p1, 1e-300) / np.maximum(p0, 1e-300))
    # one judge per tail bound: the baseline's p50 and p90 bucket bounds
    tails = {}
    for quantile in (0.5, 0.9):
        slow_index = int(np.argmax(np.isclose(edges, tail_bound(cell.dist, quantile)))) + 1
        tails[f"tail p{quantile * 100:.0f}"] = (slow_index, float(p0[slow_index:].sum()))
    judges = {name: CountsReplica(runs) for name in tails}
    fail = {name: np.full(runs, np.inf) for name in [*judges, "oracle"]}
    fail[f"tail p50{SPLIT_SUFFIX}"] = np.full(runs, np.inf)
    passed = {name: np.full(runs, np.inf) for name in judges}
    oracle = np.zeros(runs)
    cum = np.zeros((4, runs))
    lam_c = cell.rate * cell.look * cell.share * pc
    lam_b = cell.rate * cell.look * (1.0 - cell.share)
    for look in range(1, looks + 1):
        now = look * cell.look
        hc = rng.poisson(lam_c, (runs, lam_c.size)).astype(np.float64)
        all_c = hc.sum(axis=1)
        hb = rng.multinomial(rng.poisson(lam_b, runs), p0).astype(np.float64)
        all_b = hb.sum(axis=1)
        for name, judge in judges.items():
            slow_index, _ = tails[name]
            slow_c, slow_b = hc[:, slow_index:].sum(axis=1), hb[:, slow_index:].sum(axis=1)
            if name == "tail p90":
                cum += np.stack([slow_c, all_c, slow_b, all_b])
                if record is not None:
                    record.counts.append(cum[:, : record.keep].T.copy())
            judge.update(slow_c, all_c, slow_b, all_b)
            _first(fail[name], judge.max_harm >= _LOG_THRESHOLD, now)
            if name + SPLIT_SUFFIX in fail:  # the same judge at a 1/6 share of the budget
                _first(fail[name + SPLIT_SUFFIX], judge.max_harm >= _SPLIT_THRESHOLD, now)
            _first(passed[name], judge.max_safe >= _LOG_THRESHOLD, now)
        oracle += hc @ weights
        _first(fail["oracle"], oracle >= _LOG_THRESHOLD, now)
    cell.fail, cell.passed = fail, passed


def _revenue(rng: np.random.Generator, dist: str, size: int, scale: float) -> Array:
    if dist == "lomax":
        values = (rng.random(size) ** (-1 / 1.5) - 1.0) * scale
    else:
        values = rng.lognormal(0.0, float(dist.removeprefix("lognormal")), size) * scale
    return np.minimum(values, REVENUE_BOUNDS[1])


def simulate_means(
    cell: Cell, runs: int, horizon: float, rng: np.random.Generator, record: Record | None = None
) -> None:
    """Revenue per order clipped to the declared bounds; ``judge_means`` with bounds."""
    looks = int(horizon / MEANS_LOOK)
    fail = {"judge": np.full(runs, np.inf), "oracle": np.full(runs, np.inf)}
    moments = np.zeros((6, runs))  # n, s, q canary; n, s, q baseline
    upper = cell.op == "<="
    oracle = np.zeros(runs)
    run_ids = np.arange(runs)
    # oracle: a normal SPRT on the canary's orders knowing the baseline's mean and
    # variance and the true shift (designed for x0.8 / x1.2 when healthy)
    reference = _revenue(np.random.default_rng(7), cell.dist, 2_000_000, 1.0)
    shifted = _revenue(
        np.random.default_rng(8),
        cell.dist,
        2_000_000,
        cell.effect if not cell.healthy else (1.2 if upper else 0.8),
    )
    mu0, var0 = float(reference.mean()), float(reference.var())
    delta = float(shifted.mean()) - mu0
    for look in range(1, looks + 1):
        now = look * MEANS_LOOK
        arms = []
        for share, scale in ((cell.share, cell.effect), (1.0 - cell.share, 1.0)):
            counts = rng.poisson(ORDERS * MEANS_LOOK * share, runs)
            values = _revenue(rng, cell.dist, int(counts.sum()), scale)
            owner = np.repeat(run_ids, counts)
            arms.append(
                (
                    counts.astype(np.float64),
                    np.bincount(owner, values, runs),
                    np.bincount(owner, values * values, runs),
                    values,
                    owner,
                )
            )
        moments += np.stack(
            [arms[0][0], arms[0][1], arms[0][2], arms[1][0], arms[1][1], arms[1][2]]
        )
        if record is not None:
            record.counts.append(moments[:, : record.keep].T.copy())
        harm = means_harm(
            (moments[0], moments[1], moments[2]), (moments[3], moments[4], moments[5]), upper=upper
        )
        _first(fail["judge"], harm >= _LOG_THRESHOLD, now)
        n_look, s_look = arms[0][0], arms[0][1]
        oracle += (delta * (s_look - n_look * mu0) - n_look * delta * delta / 2.0) / var0
        _first(fail["oracle"], oracle >= _LOG_THRESHOLD, now)
    cell.fail, cell.passed = fail, {}


# --------------------------------------------------------------------------- checks


def cross_check(cell: Cell, record: Record, looks: int) -> float:
    """Largest gap between the library's log e-value and the replica's over the first
    ``looks`` looks of the recorded runs (both are running maxima)."""
    worst = 0.0
    per_look = np.stack(record.counts[:looks])  # looks x runs x 4
    for run in range(min(2, per_look.shape[1])):
        for dispersion in cell.dispersions:
            state: _judge.CountsState | None = None
            replica = CountsReplica(1, dispersion)
            previous = np.zeros(4)
            for look in range(looks):
                ce, ct, be, bt = (float(v) for v in per_look[look, run])
                state, result = _judge.judge_counts(
                    state, ce, ct, be, bt, alpha=ALPHA, dispersion=dispersion
                )
                inc = per_look[look, run] - previous
                previous = per_look[look, run]
                replica.update(*(np.array([v]) for v in inc))
                mine = min(float(replica.max_harm[0]), 700.0)
                worst = max(worst, abs(math.log(result.e_value) - mine))
    return worst


def means_check(cell: Cell, rng: np.random.Generator, looks: int) -> float:
    """The means replica against ``judge_means`` on a few simulated looks."""
    worst = 0.0
    canary = np.zeros(3)
    baseline = np.zeros(3)
    state: _judge.MeansState | None = None
    best = 0.0
    for _ in range(looks):
        for moments, share, scale in (
            (canary, cell.share, cell.effect),
            (baseline, 1 - cell.share, 1.0),
        ):
            values = _revenue(rng, cell.dist, int(rng.poisson(ORDERS * MEANS_LOOK * share)), scale)
            moments += (values.size, values.sum(), (values * values).sum())  # noqa: PLW2901 - in place
        state, result = _judge.judge_means(
            state,
            _judge.Moments(n=canary[0], total=canary[1], total_sq=canary[2]),
            _judge.Moments(n=baseline[0], total=baseline[1], total_sq=baseline[2]),
            alpha=ALPHA,
            op=cell.op,
            bounds=REVENUE_BOUNDS,
        )
        harm = means_harm(
            (canary[0:1], canary[1:2], canary[2:3]),
            (baseline[0:1], baseline[1:2], baseline[2:3]),
            upper=cell.op == "<=",
        )
        best = max(best, float(harm[0]))
        worst = max(worst, abs(math.log(result.e_value) - min(best, 700.0)))
    return worst


def refusal_check(rng: np.random.Generator) -> int:
    """Unbounded revenue through the library: every look INCONCLUSIVE, never a verdict."""
    verdicts = 0
    for dist in ("lognormal1.5", "lomax"):
        state: _judge.MeansState | None = None
        values_c = np.abs(rng.lognormal(0, 1.5, 500)) if dist != "lomax" else rng.pareto(1.5, 500)
        values_b = np.abs(rng.lognormal(0, 1.5, 5000)) if dist != "lomax" else rng.pareto(1.5, 5000)
        state, result = _judge.judge_means(
            state,
            _judge.Moments.of(list(values_c)),
            _judge.Moments.of(list(values_b)),
            alpha=ALPHA,
            op=">=",
        )
        verdicts += result.outcome.name != "INCONCLUSIVE"
    return verdicts


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
