"""The simulation behind ``detection.py``: the scenarios' data, the judge's arithmetic
vectorised over runs (a copy of ``gatekeeper._judge`` checked against it), the oracle
and the cross-checks. ``detection.py`` holds the cells, the engine check and the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
    """``_judge.judge_counts`` (op ``<=``) vectorised over runs: the tempered
    conditional log-likelihood on the grid of ratios ``factor * 1.1^k``, the harm and
    the safety mixtures."""

    def __init__(self, runs: int, dispersion: float = 1.0, factor: float = 1.0) -> None:
        ks = np.arange(-_judge.GRID_HALF, _judge.GRID_HALF + 1)
        self.ratios = factor * np.exp(ks * _judge.GRID_STEP)
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
    """The means replica's log harm e-value against the library's own computation
    (``_judge.means`` before the running maximum, so healthy data that never gather
    evidence still compare), at the cell's effect and at a canary 0.6 and 1.6 times
    the baseline, so both signs of evidence are compared."""
    lo, hi = REVENUE_BOUNDS
    worst = 0.0
    upper = cell.op == "<="
    for scale in (cell.effect, 0.6, 1.6):
        canary = np.zeros(3)
        baseline = np.zeros(3)
        for _ in range(looks):
            for moments, share, factor in (
                (canary, cell.share, scale),
                (baseline, 1 - cell.share, 1.0),
            ):
                count = int(rng.poisson(ORDERS * MEANS_LOOK * share))
                values = _revenue(rng, cell.dist, count, factor)
                moments += (values.size, values.sum(), (values * values).sum())  # noqa: PLW2901 - in place
            library = _judge.evidence_apart(
                _judge.Moments(n=canary[0], total=canary[1], total_sq=canary[2]),
                _judge.Moments(n=baseline[0], total=baseline[1], total_sq=baseline[2]),
                lo,
                hi,
                1.0,
                0.0,
                above=upper,
            ) - math.log(2.0)
            replica = means_harm(
                (canary[0:1], canary[1:2], canary[2:3]),
                (baseline[0:1], baseline[1:2], baseline[2:3]),
                upper=upper,
            )
            worst = max(worst, abs(library - float(replica[0])))
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
