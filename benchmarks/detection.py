"""Detection benchmark of the statistical judge (issue 6), with the results in docs/statistics.md.

Simulates a canary and its concurrent baseline serving 200 requests/s in total (Poisson
arrivals), the gate looked at every 5 s for the 4 h of the reference ramp, at 1 % and
10 % canary traffic, and runs five judges on the same simulated streams:

1. ``threshold``  the reference plan's fixed threshold on the canary over a 5-minute
                  window (error rate < 0.5 %; p99 latency < 200 ms), checked every look;
2. ``fixed/look`` a fixed-sample one-sided test (two-proportion z-test; Mann-Whitney U)
                  at level alpha on all data so far, re-run at every look;
3. ``fixed/ckpt`` the same test only at the reference checkpoints (15m 30m 1h 2h 3h 4h);
4. ``sequential`` gatekeeper's judge (the e-processes of ``gatekeeper._judge``) at alpha;
5. ``oracle``     Wald's SPRT on the canary's data knowing both the baseline and the true
                  regression (for the healthy columns: designed for x2 / +20 %).

Errors are Bernoulli per request (baseline 0.2 %); the autocorrelated case multiplies
both arms' error probability by a shared AR(1) factor (log-scale sd 0.5, lag-1
correlation 0.995 per look: incidents upstream that hit both versions). Latencies are
lognormal (median 40 ms, sigma 0.6: p99 161 ms), observed as fine histograms (40
log-spaced buckets, as Prometheus would give them); a regression multiplies every
latency by 1.2. Runs are vectorised with numpy over the simulated runs, one look at a
time; the sequential judge's arithmetic is a vectorised copy of the library's, checked
against the library itself on a few runs (``--quick`` does it too).

    .venv/bin/python benchmarks/detection.py              # full: 2,000 runs per cell
    .venv/bin/python benchmarks/detection.py --quick      # smoke: seconds
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from gatekeeper import _judge

Array = NDArray[np.float64]

RATE = 200.0  # requests per second, canary and baseline together
LOOK = 5.0  # seconds between looks
HORIZON = 4 * 3600.0
CHECKPOINTS = (15 * 60.0, 30 * 60.0, 3600.0, 2 * 3600.0, 3 * 3600.0, 4 * 3600.0)
WINDOW = 300.0  # the threshold judge's rate window
ALPHA = 0.01
BASE_ERROR = 0.002
ERROR_LIMIT = 0.005
LAT_MEDIAN = 0.040
LAT_SIGMA = 0.6
P99_LIMIT = 0.200
LAT_SHIFT = 1.2
AR_PHI = 0.995
AR_SD = 0.5
JUDGES = ("threshold", "fixed/look", "fixed/ckpt", "sequential", "oracle")
_LOG_THRESHOLD = math.log(1.0 / ALPHA)
_Z = float(stats.norm.isf(ALPHA))


@dataclass
class Cell:
    """One simulated scenario: the alarm time of every judge in every run."""

    name: str
    share: float
    kind: str  # "errors" | "latency"
    effect: float  # error-rate multiplier or latency factor; 1.0 is healthy
    autocorrelated: bool = False
    times: dict[str, Array] = field(default_factory=dict)


def _first_alarm(times: Array, alarm: NDArray[np.bool_], now: float) -> None:
    hit = alarm & np.isinf(times)
    times[hit] = now


def _logsumexp_rows(values: Array) -> Array:
    return np.asarray(special.logsumexp(values, axis=1), dtype=np.float64)


class SequentialCounts:
    """Vectorised copy of ``_judge.judge_counts``' harm e-process (op ``<=``)."""

    def __init__(self, runs: int, factor: float = 1.0) -> None:
        ks = np.arange(0, _judge.GRID_HALF + 1)
        self.ratios = factor * np.exp(ks * _judge.GRID_STEP)
        self.log_ratios = np.log(self.ratios)
        self.log_w = np.array([w for _, w in _judge._UP_WEIGHTS])
        self.loglik = np.zeros((runs, ks.size))
        self.max_log_e = np.zeros(runs)

    def update(self, ce: Array, ct: Array, be: Array, bt: Array) -> Array:
        ok = (ct > 0) & (bt > 0) & (ce + be > 0)
        share = np.where(ok, ct / np.maximum(ct + bt, 1.0), 0.5)[:, None]
        log_den = np.log(self.ratios[None, :] * share + 1.0 - share)
        inc = ce[:, None] * (self.log_ratios[None, :] + np.log(share) - log_den) + be[:, None] * (
            np.log1p(-share) - log_den
        )
        self.loglik += np.where(ok[:, None], inc, 0.0)
        rel = self.loglik[:, 1:] - self.loglik[:, :1] + self.log_w[None, :]
        self.max_log_e = np.maximum(self.max_log_e, _logsumexp_rows(rel))
        return self.max_log_e


class SequentialMeans:
    """Vectorised copy of ``_judge.judge_means``' harm e-process (op ``<=``, factor 1)."""

    def __init__(self, runs: int) -> None:
        self.rho2 = _judge._rho_squared(_judge.MEANS_TARGET_N, ALPHA)
        self.max_log_e = np.zeros(runs)

    def update(
        self, n: tuple[Array, Array], s: tuple[Array, Array], q: tuple[Array, Array]
    ) -> Array:
        (nc, nb), (sc, sb), (qc, qb) = n, s, q
        ok = (nc >= _judge.MIN_MEANS_SAMPLES) & (nb >= _judge.MIN_MEANS_SAMPLES)
        nc1, nb1 = np.maximum(nc, 2.0), np.maximum(nb, 2.0)
        vc = np.maximum(0.0, (qc - sc * sc / nc1) / (nc1 - 1))
        vb = np.maximum(0.0, (qb - sb * sb / nb1) / (nb1 - 1))
        var = vc / nc1 + vb / nb1
        ok &= var > 0
        var = np.where(ok, var, 1.0)
        z = (sc / nc1 - sb / nb1) / np.sqrt(var)
        t = np.maximum(vc, vb) / var
        grow = 1.0 + self.rho2 * t
        srt = z * np.sqrt(t)
        log_e = (
            math.log(2.0)
            + self.rho2 * srt * srt / (2.0 * grow)
            - 0.5 * np.log(grow)
            + special.log_ndtr(math.sqrt(self.rho2) * srt / np.sqrt(grow))
        )
        self.max_log_e = np.maximum(self.max_log_e, np.where(ok, log_e, 0.0))
        return self.max_log_e


def _ar1(rng: np.random.Generator, state: Array | None, runs: int) -> Array:
    if state is None:
        return rng.normal(0.0, AR_SD, runs)
    innovation = AR_SD * math.sqrt(1.0 - AR_PHI**2)
    return AR_PHI * state + rng.normal(0.0, innovation, runs)


def run_errors(cell: Cell, runs: int, looks: int, rng: np.random.Generator) -> list[Array]:
    """Simulate one error-rate cell; returns the first runs' per-look counts (for the
    cross-check against the library)."""
    window = int(WINDOW / LOOK)
    checkpoints = {round(c / LOOK) for c in CHECKPOINTS}
    times = {j: np.full(runs, np.inf) for j in JUDGES}
    seq = SequentialCounts(runs)
    cum = np.zeros((4, runs))  # canary errors, canary requests, baseline errors, baseline reqs
    ring = np.zeros((window, 2, runs))
    p1 = BASE_ERROR * (cell.effect if cell.effect != 1.0 else 2.0)
    oracle_hit = math.log(p1 / BASE_ERROR)
    oracle_miss = math.log1p(-p1) - math.log1p(-BASE_ERROR)
    oracle = np.zeros(runs)
    ar: Array | None = None
    recorded: list[Array] = []
    for look in range(1, looks + 1):
        now = look * LOOK
        base_p = np.full(runs, BASE_ERROR)
        if cell.autocorrelated:
            ar = _ar1(rng, ar, runs)
            base_p = BASE_ERROR * np.exp(ar - AR_SD**2 / 2.0)
        base_p = np.minimum(base_p, 0.5)
        can_p = np.minimum(base_p * cell.effect, 1.0)
        nc = rng.poisson(RATE * LOOK * cell.share, runs).astype(np.float64)
        nb = rng.poisson(RATE * LOOK * (1.0 - cell.share), runs).astype(np.float64)
        ec = rng.binomial(nc.astype(np.int64), can_p).astype(np.float64)
        eb = rng.binomial(nb.astype(np.int64), base_p).astype(np.float64)
        cum += np.stack([ec, nc, eb, nb])
        recorded.append(cum[:, :3].copy())  # shape (4, 3): counts of the first runs
        # 1. threshold on the canary's 5-minute rate
        ring[look % window] = np.stack([ec, nc])
        w_err, w_req = ring[:, 0].sum(axis=0), ring[:, 1].sum(axis=0)
        _first_alarm(times["threshold"], (w_req > 0) & (w_err > ERROR_LIMIT * w_req), now)
        # 2./3. pooled two-proportion z-test on everything so far
        pooled = (cum[0] + cum[2]) / np.maximum(cum[1] + cum[3], 1.0)
        se = np.sqrt(
            pooled * (1 - pooled) * (1 / np.maximum(cum[1], 1) + 1 / np.maximum(cum[3], 1))
        )
        diff = cum[0] / np.maximum(cum[1], 1) - cum[2] / np.maximum(cum[3], 1)
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
        _first_alarm(times["fixed/look"], z > _Z, now)
        if look in checkpoints:
            _first_alarm(times["fixed/ckpt"], z > _Z, now)
        # 4. the sequential judge
        _first_alarm(times["sequential"], seq.update(ec, nc, eb, nb) >= _LOG_THRESHOLD, now)
        # 5. Wald's SPRT on the canary alone, knowing p0 and p1
        oracle += ec * oracle_hit + (nc - ec) * oracle_miss
        _first_alarm(times["oracle"], oracle >= _LOG_THRESHOLD, now)
    cell.times = times
    return [np.stack([r[:, i] for r in recorded]) for i in range(min(3, runs))]


def _buckets() -> tuple[Array, Array]:
    """Bucket edges (seconds; first and last open-ended) and the geometric midpoints."""
    edges = np.geomspace(0.001, 10.0, 41)
    mids = np.sqrt(edges[:-1] * edges[1:])
    return edges, mids


def _bucket_probs(edges: Array, scale: float) -> Array:
    cdf = stats.norm.cdf((np.log(edges) - math.log(LAT_MEDIAN * scale)) / LAT_SIGMA)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.asarray(np.diff(cdf), dtype=np.float64)


def _hist_quantile(counts: Array, edges: Array, q: float) -> Array:
    """Prometheus-style histogram_quantile: linear interpolation inside the bucket."""
    total = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    rank = q * total
    idx = np.argmax(cum >= rank[:, None], axis=1)
    below = np.where(idx > 0, np.take_along_axis(cum, np.maximum(idx - 1, 0)[:, None], 1)[:, 0], 0)
    inside = np.take_along_axis(counts, idx[:, None], 1)[:, 0]
    lo, hi = edges[idx], edges[idx + 1]
    frac = np.where(inside > 0, (rank - below) / np.maximum(inside, 1), 0.0)
    return np.where(total > 0, lo + (hi - lo) * frac, 0.0)


def run_latency(cell: Cell, runs: int, looks: int, rng: np.random.Generator) -> list[Array]:
    """Simulate one latency cell; returns the first runs' cumulative moments per look."""
    window = int(WINDOW / LOOK)
    checkpoints = {round(c / LOOK) for c in CHECKPOINTS}
    times = {j: np.full(runs, np.inf) for j in JUDGES}
    edges, mids = _buckets()
    p0 = _bucket_probs(edges, 1.0)
    pc = _bucket_probs(edges, cell.effect)
    p1 = _bucket_probs(edges, cell.effect if cell.effect != 1.0 else LAT_SHIFT)
    oracle_w = np.log(np.maximum(p1, 1e-300) / np.maximum(p0, 1e-300))
    seq = SequentialMeans(runs)
    cum_c = np.zeros((runs, mids.size))
    cum_b = np.zeros((runs, mids.size))
    ring = np.zeros((window, runs, mids.size))
    oracle = np.zeros(runs)
    recorded: list[Array] = []
    lam_c = RATE * LOOK * cell.share * pc
    lam_b = RATE * LOOK * (1.0 - cell.share) * p0
    for look in range(1, looks + 1):
        now = look * LOOK
        hc = rng.poisson(lam_c, (runs, mids.size)).astype(np.float64)
        hb = rng.poisson(lam_b, (runs, mids.size)).astype(np.float64)
        cum_c += hc
        cum_b += hb
        # 1. p99 of the canary over the last 5 minutes
        ring[look % window] = hc
        p99 = _hist_quantile(ring.sum(axis=0), edges, 0.99)
        _first_alarm(times["threshold"], p99 > P99_LIMIT, now)
        # 2./3. one-sided Mann-Whitney U (canary slower), ties within a bucket
        n_c, n_b = cum_c.sum(axis=1), cum_b.sum(axis=1)
        below_b = np.cumsum(cum_b, axis=1) - cum_b
        u = (cum_c * (below_b + 0.5 * cum_b)).sum(axis=1)
        total = n_c + n_b
        ties = cum_c + cum_b
        tie_term = (ties**3 - ties).sum(axis=1) / np.maximum(total * (total - 1), 1.0)
        var = n_c * n_b / 12.0 * ((total + 1) - tie_term)
        z = np.where(var > 0, (u - n_c * n_b / 2.0) / np.sqrt(np.maximum(var, 1e-12)), 0.0)
        _first_alarm(times["fixed/look"], z > _Z, now)
        if look in checkpoints:
            _first_alarm(times["fixed/ckpt"], z > _Z, now)
        # 4. the sequential judge on mean latency (canary <= baseline)
        moments = (
            (n_c, n_b),
            (cum_c @ mids, cum_b @ mids),
            (cum_c @ (mids * mids), cum_b @ (mids * mids)),
        )
        recorded.append(np.array([[m[0][:3], m[1][:3]] for m in moments]))
        _first_alarm(times["sequential"], seq.update(*moments) >= _LOG_THRESHOLD, now)
        # 5. SPRT on the canary's histogram knowing both distributions
        oracle += hc @ oracle_w
        _first_alarm(times["oracle"], oracle >= _LOG_THRESHOLD, now)
    cell.times = times
    return [np.stack([r[:, :, i] for r in recorded]) for i in range(min(3, runs))]


def cross_check(kind: str, recorded: list[Array], looks: int) -> float:
    """Largest gap between the library's log e-value and the vectorised replica's over
    the first ``looks`` looks of the recorded runs (both are running maxima)."""
    worst = 0.0
    for run in recorded:
        counts_state: _judge.CountsState | None = None
        means_state: _judge.MeansState | None = None
        replica_counts = SequentialCounts(1)
        replica_means = SequentialMeans(1)
        previous = np.zeros(4)
        for look in range(min(looks, run.shape[0])):
            if kind == "errors":
                ce, ct, be, bt = (float(v) for v in run[look])
                counts_state, result = _judge.judge_counts(
                    counts_state, ce, ct, be, bt, alpha=ALPHA
                )
                inc = run[look] - previous
                previous = run[look]
                mine = replica_counts.update(*(np.array([v]) for v in inc))
            else:
                (nc, nb), (sc, sb), (qc, qb) = (tuple(float(v) for v in pair) for pair in run[look])
                means_state, result = _judge.judge_means(
                    means_state,
                    _judge.Moments(n=nc, total=sc, total_sq=qc),
                    _judge.Moments(n=nb, total=sb, total_sq=qb),
                    alpha=ALPHA,
                )
                mine = replica_means.update(
                    (np.array([nc]), np.array([nb])),
                    (np.array([sc]), np.array([sb])),
                    (np.array([qc]), np.array([qb])),
                )
            worst = max(worst, abs(math.log(result.e_value) - min(float(mine[0]), 700.0)))
    return worst


def _summary(times: Array, horizon: float) -> tuple[float, str, str]:
    detected = np.isfinite(times)
    rate = float(detected.mean())

    def fmt(q: float) -> str:
        with np.errstate(invalid="ignore"):  # inf - inf when the quantile is undetected
            value = float(np.quantile(np.where(detected, times, np.inf), q))
        if not math.isfinite(value) or value > horizon:
            return f">{horizon / 3600:.0f}h" if horizon >= 3600 else f">{horizon / 60:.0f}m"
        return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.2f}h"

    return rate, fmt(0.5), fmt(0.9)


def render(cells: list[Cell], *, runs: int, horizon: float, seconds: float) -> str:
    """Markdown: one table per canary share, a row per judge; false-alarm columns give
    the share of healthy runs with an alarm, detection columns the median / 90th
    percentile time to the first alarm and the share of runs detected at all."""
    lines = [
        f"{runs:,} runs per cell, {horizon / 3600:g} h at one look every {LOOK:g} s, "
        f"{RATE:g} requests/s in total, baseline error rate {BASE_ERROR:.1%}, "
        f"alpha = {ALPHA}; simulated in {seconds:.0f} s.",
    ]
    columns = [
        ("false alarms: errors", "errors healthy @"),
        ("false alarms: errors, AR(1)", "errors healthy AR(1) @"),
        ("false alarms: latency", "latency healthy @"),
        ("errors x1.5", "errors x1.5 @"),
        ("errors x2", "errors x2 @"),
        ("errors x5", "errors x5 @"),
        ("errors x2, AR(1)", "errors x2 AR(1) @"),
        ("latency +20 %", "latency +20% @"),
    ]
    for share in sorted({c.share for c in cells}):
        pct = f"{share * 100:g}%"
        by_name = {c.name: c for c in cells if c.share == share}
        lines += [
            "",
            f"**{pct} canary traffic** (detection: median / p90 time to detect, share detected)",
            "",
            "| judge | " + " | ".join(title for title, _ in columns) + " |",
            "| --- |" + " --- |" * len(columns),
        ]
        for judge in JUDGES:
            row = [judge]
            for title, prefix in columns:
                cell = by_name[prefix + pct]
                rate, med, p90 = _summary(cell.times[judge], horizon)
                if title.startswith("false alarms"):
                    row.append(f"{rate:.1%}")
                else:
                    row.append(f"{med} / {p90} ({rate:.0%})")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: few runs, 30 minutes")
    parser.add_argument("--runs", type=int, default=None, help="Simulated runs per cell")
    parser.add_argument("--seed", type=int, default=20261121, help="Base seed")
    args = parser.parse_args(argv)
    runs = args.runs or (100 if args.quick else 2000)
    horizon = 1800.0 if args.quick else HORIZON
    looks = int(horizon / LOOK)
    started = time.perf_counter()
    cells: list[Cell] = []
    for share in (0.01, 0.10):
        pct = f"{share * 100:g}%"
        cells += [
            Cell(name=f"errors healthy @{pct}", share=share, kind="errors", effect=1.0),
            Cell(name=f"errors x1.5 @{pct}", share=share, kind="errors", effect=1.5),
            Cell(name=f"errors x2 @{pct}", share=share, kind="errors", effect=2.0),
            Cell(name=f"errors x5 @{pct}", share=share, kind="errors", effect=5.0),
            Cell(
                name=f"errors healthy AR(1) @{pct}",
                share=share,
                kind="errors",
                effect=1.0,
                autocorrelated=True,
            ),
            Cell(
                name=f"errors x2 AR(1) @{pct}",
                share=share,
                kind="errors",
                effect=2.0,
                autocorrelated=True,
            ),
            Cell(name=f"latency healthy @{pct}", share=share, kind="latency", effect=1.0),
            Cell(name=f"latency +20% @{pct}", share=share, kind="latency", effect=LAT_SHIFT),
        ]
    simulate: dict[str, Callable[[Cell, int, int, np.random.Generator], list[Array]]] = {
        "errors": run_errors,
        "latency": run_latency,
    }
    for index, cell in enumerate(cells):
        rng = np.random.default_rng([args.seed, index])
        tick = time.perf_counter()
        recorded = simulate[cell.kind](cell, runs, looks, rng)
        if index in (2, 7):  # one error cell and one latency cell against the library
            gap = cross_check(cell.kind, recorded[:2], 120 if args.quick else 400)
            print(f"# library vs replica, {cell.name}: max |log e gap| {gap:.2e}", file=sys.stderr)
            if gap > 1e-6:
                raise SystemExit(f"the replica disagrees with gatekeeper._judge: {gap}")
        print(f"# {cell.name}: {time.perf_counter() - tick:.1f}s", file=sys.stderr)
    for cell in cells:
        for judge in JUDGES:
            rate, med, p90 = _summary(cell.times[judge], horizon)
            print(
                f"# {cell.name:26s} {judge:12s} alarms {rate:6.1%} {med:>7s} {p90:>7s}",
                file=sys.stderr,
            )
    print(render(cells, runs=runs, horizon=horizon, seconds=time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
