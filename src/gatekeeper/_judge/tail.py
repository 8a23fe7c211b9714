"""Latency from histogram buckets, distribution-free: the share of requests slower than
a bound, compared between canary and baseline with the exact counts test.

Whatever the latency distribution (lognormal, a Lomax tail, a mixture), each request is
slower than the bound or not; with identical arms the canary's share of the slow
requests follows the share of requests exactly, so the counts test keeps its α. A
slower canary has more slow requests: a +20 % shift of a lognormal (σ = 0.6) takes the
share above the baseline's p90 from 10 % to 16 %, ×1.6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .counts import CountsState, judge_counts
from .dispersion import Bursts
from .verdict import JudgeResult

#: ``(upper_bound, cumulative_count)`` pairs as Prometheus gives a histogram, sorted by
#: bound, the last one ``+Inf``.
Buckets = Sequence[tuple[float, float]]


def tail_counts(buckets: Buckets, above: float) -> tuple[float, float]:
    """(requests slower than ``above``, all requests) from cumulative buckets; ``above``
    must be one of the finite bucket bounds (relative tolerance 1e-9), since the
    buckets cannot say how many requests inside a bucket are above a point in it."""
    if not buckets or not math.isinf(buckets[-1][0]):
        raise ValueError("a histogram needs its +Inf bucket (the count of all requests)")
    total = float(buckets[-1][1])
    previous = -math.inf
    for _, cumulative in buckets:
        if cumulative < previous:
            raise ValueError("histogram counts must be cumulative (non-decreasing)")
        previous = cumulative
    for bound, cumulative in buckets:
        if math.isfinite(bound) and math.isclose(bound, above, rel_tol=1e-9):
            return total - float(cumulative), total
    edges = ", ".join(f"{b:g}" for b, _ in buckets if math.isfinite(b))
    raise ValueError(f"{above:g} is not a bucket bound of the histogram (bounds: {edges})")


def tail_edge(buckets: Buckets, quantile: float) -> float:
    """The smallest finite bucket bound at or above the histogram's ``quantile``: a
    bound to fix (from the baseline's first look, say) for :func:`judge_tail`."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    total = float(buckets[-1][1]) if buckets else 0.0
    for bound, cumulative in buckets:
        if math.isfinite(bound) and cumulative >= quantile * total and total > 0:
            return float(bound)
    finite = [b for b, _ in buckets if math.isfinite(b)]
    if not finite:
        raise ValueError("a histogram without finite buckets")
    return float(finite[-1])


def judge_tail(
    state: CountsState | None,
    canary: Buckets,
    baseline: Buckets,
    *,
    above: float,
    alpha: float,
    factor: float = 1.0,
    op: str = "<=",
    final: bool = False,
    fail_only: bool = False,
    elapsed_s: float | None = None,
    name: str = "latency",
    unit: str = "s",
    dispersion: float = 1.0,
    bursts: Bursts | None = None,
    alpha_spent: float | None = None,
    alpha_budget: float | None = None,
) -> tuple[CountsState, JudgeResult]:
    """One look of "the share of canary requests slower than ``above`` OP the baseline's
    share * factor", from both arms' cumulative histograms (cumulative since the phase
    started). The state is a counts state; ``above`` must stay the same all phase."""
    c_slow, c_total = tail_counts(canary, above)
    b_slow, b_total = tail_counts(baseline, above)
    return judge_counts(
        state,
        c_slow,
        c_total,
        b_slow,
        b_total,
        alpha=alpha,
        factor=factor,
        op=op,
        final=final,
        fail_only=fail_only,
        elapsed_s=elapsed_s,
        name=f"{name} share slower than {above:g}{unit}",
        dispersion=dispersion,
        bursts=bursts,
        alpha_spent=alpha_spent,
        alpha_budget=alpha_budget,
    )
