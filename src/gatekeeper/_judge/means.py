"""Means and relative lift of *bounded* values, from sufficient statistics.

The mean of unbounded, skewed values (revenue, raw latency) cannot be tested with error
control from any sample: a rare huge value moves it arbitrarily, and the asymptotic
normal test this judge used before falsely failed 24 % of healthy lognormal canaries.
So a mean is judged only when the metric declares bounds ``[lo, hi]`` its values are
clipped to; without them the verdict is INCONCLUSIVE with that reason.

Within bounds the test is nonasymptotic. For one arm and a point ``m`` in ``[lo, hi]``,
``xi = (X - m) / (hi - lo)`` is at least -1, and Fan et al.'s inequality
``exp(l*xi - psi(l)*xi**2) <= 1 + l*xi`` (``psi(l) = -log(1-l) - l``, ``0 <= l < 1``)
makes ``exp(l*sum(xi) - psi(l)*sum(xi**2))`` a supermartingale while the arm's mean is at
most ``m`` -- computable from ``n``, the sum and the sum of squares alone, and adaptive
to the variance. A fixed mixture over ``l`` in ``(0, 1/2]`` is the arm's e-process
(``l <= 1/2`` makes it monotone in ``m``). Canary and baseline are combined by a union
bound: "canary mean > factor * baseline mean + offset" is shown when some ``m`` has the
canary's mean above ``m`` *and* the baseline's below ``(m - offset) / factor``, each at
``alpha / 2`` -- the reported e-value is the smaller of the two, halved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from .._model import Outcome
from .mixture import bounded_e
from .verdict import (
    DASH,
    TIMES,
    Budget,
    JudgeResult,
    check_alpha,
    decide,
    decided_at,
    evidence_text,
    explain,
    fmt_level,
    fmt_n,
    invalid,
    round_out,
    upper_ops,
)

MIN_MEANS_SAMPLES = 2
#: The betting fractions mixed over: 1/2, 1/2^1.5, ... (40 of them, uniform weights).
LAMBDAS: tuple[float, ...] = tuple(0.5 * 2.0 ** (-k / 2.0) for k in range(40))
_LOG_W = -math.log(len(LAMBDAS))
_PSI: tuple[float, ...] = tuple(-math.log1p(-lam) - lam for lam in LAMBDAS)
#: Bisection steps over ``[lo, hi]``: 2^-40 of the range, far below any printed digit
#: (each step costs two arms' mixtures; a look runs about 330 of them).
BISECTIONS = 40
_LAMBDA_PSI = tuple(zip(LAMBDAS, _PSI, strict=True))
UNBOUNDED_REASON = (
    "a mean of values without declared bounds cannot be judged with error control (one "
    "large value moves it arbitrarily): declare the metric's bounds and clip its values "
    "to them, or judge latency by the share of requests slower than a bound "
    "(judge_tail on histogram buckets)"
)


@attrs.frozen(kw_only=True)
class Moments:
    """Sufficient statistics of one arm: count, sum and sum of squares."""

    n: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Moments:
        return cls(
            n=float(len(values)),
            total=math.fsum(values),
            total_sq=math.fsum(v * v for v in values),
        )

    @classmethod
    def from_histogram(cls, buckets: Sequence[tuple[float, float]]) -> Moments:
        """Approximate moments from a cumulative histogram, as Prometheus gives one:
        ``(upper_bound, cumulative_count)`` pairs sorted by bound, the last one ``+Inf``.

        Each observation counts at its bucket's midpoint (the first bucket's lower edge
        is 0; the ``+Inf`` bucket's observations at the last finite bound, i.e. clipped
        there). Latency is better judged by :func:`judge_tail` on the buckets themselves.
        """
        n = total = total_sq = 0.0
        lower = 0.0
        below = 0.0
        for upper, cumulative in buckets:
            count = cumulative - below
            if count < 0:
                raise ValueError("histogram counts must be cumulative (non-decreasing)")
            value = lower if math.isinf(upper) else (lower + upper) / 2.0
            n += count
            total += count * value
            total_sq += count * value * value
            below = cumulative
            if not math.isinf(upper):
                lower = upper
        return cls(n=n, total=total, total_sq=total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (``n - 1`` denominator); NaN below two observations."""
        if self.n < 2:
            return math.nan
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "total": self.total, "total_sq": self.total_sq}


@attrs.frozen(kw_only=True)
class MeansState:
    """What the means test carries between looks: the running maxima of both
    e-processes (the statistics themselves are cumulative and passed in each look)."""

    factor: float
    offset: float
    op: str
    bounds: tuple[float, float] | None = None
    max_log_e_harm: float = 0.0
    max_log_e_safe: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None
    n_canary: float = 0.0
    n_baseline: float = 0.0
    broken: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`state_from_dict` reads it back."""
        out = attrs.asdict(self)
        out["bounds"] = None if self.bounds is None else list(self.bounds)
        out["test"] = "means"
        return out


def arm_log_e(arm: Moments, m: float, lo: float, hi: float, *, above: bool) -> float:
    """log e-value that the arm's mean is above ``m`` (``above``) or below it, for values
    in ``[lo, hi]``: the mixture over the betting fractions of Fan's supermartingale.
    Decreasing in ``m`` when ``above``, increasing otherwise."""
    if m < lo:
        return math.inf if above else -math.inf
    if m > hi:
        return -math.inf if above else math.inf
    if arm.n <= 0:
        return 0.0
    span = hi - lo
    drift = (arm.total - arm.n * m) / span
    if not above:
        drift = -drift
    spread = max(0.0, arm.total_sq - 2.0 * m * arm.total + arm.n * m * m) / (span * span)
    terms = [_LOG_W + lam * drift - psi * spread for lam, psi in _LAMBDA_PSI]
    top = max(terms)
    exp = math.exp
    return top + math.log(math.fsum([exp(t - top) for t in terms]))


def evidence_apart(
    canary: Moments,
    baseline: Moments,
    lo: float,
    hi: float,
    factor: float,
    offset: float,
    *,
    above: bool,
) -> float:
    """log of ``sup_m min(E_canary(m), E_baseline((m - offset) / factor))``: evidence
    that the canary's mean is above (``above``) or below ``factor * baseline + offset``."""

    def pair(m: float) -> tuple[float, float]:
        return (
            arm_log_e(canary, m, lo, hi, above=above),
            arm_log_e(baseline, (m - offset) / factor, lo, hi, above=not above),
        )

    left = max(lo, factor * lo + offset)
    right = min(hi, factor * hi + offset)
    if left > right:
        return -math.inf
    # above: the canary's evidence falls with m, the baseline's rises (mirror otherwise)
    a, b = pair(left)
    if (a <= b) if above else (a >= b):
        return min(a, b)
    a, b = pair(right)
    if (a >= b) if above else (a <= b):
        return min(a, b)
    inside, outside = left, right
    for _ in range(BISECTIONS):
        middle = 0.5 * (inside + outside)
        a, b = pair(middle)
        if (a > b) == above:
            inside = middle
        else:
            outside = middle
    return max(min(pair(inside)), min(pair(outside)))


def arm_interval(arm: Moments, lo: float, hi: float, alpha: float) -> tuple[float, float]:
    """The arm's ``1 - alpha`` confidence sequence on its mean, ends rounded outwards."""
    threshold = math.log(1.0 / alpha)

    def search(*, above: bool) -> float:
        # above: the lower end, the largest m whose "mean above m" evidence crosses
        inside, outside = (hi, lo) if above else (lo, hi)
        if arm_log_e(arm, outside, lo, hi, above=above) < threshold:
            return outside
        if arm_log_e(arm, inside, lo, hi, above=above) >= threshold:
            return inside
        for _ in range(BISECTIONS):
            middle = 0.5 * (inside + outside)
            if arm_log_e(arm, middle, lo, hi, above=above) >= threshold:
                outside = middle
            else:
                inside = middle
        return outside

    return search(above=True), search(above=False)


def _moments_problem(arm: Moments, lo: float, hi: float) -> str | None:
    values = (arm.n, arm.total, arm.total_sq)
    if not all(math.isfinite(v) for v in values) or arm.n < 0:
        return "moments are missing, negative or NaN"
    # every value in [lo, hi] makes sum((X - lo) * (hi - X)) >= 0
    slack = (lo + hi) * arm.total - arm.total_sq - arm.n * lo * hi
    tolerance = 1e-9 * max(1.0, arm.n) * max(1.0, lo * lo, hi * hi)
    if (
        arm.total < arm.n * lo - tolerance
        or arm.total > arm.n * hi + tolerance
        or slack < -tolerance
    ):
        return f"values outside the declared bounds [{lo:g}, {hi:g}] (clip them at the source)"
    return None


def judge_means(  # noqa: PLR0915 - one look reads top to bottom: check, update, decide, explain
    state: MeansState | None,
    canary: Moments,
    baseline: Moments,
    *,
    alpha: float,
    factor: float = 1.0,
    offset: float = 0.0,
    op: str = "<=",
    final: bool = False,
    fail_only: bool = False,
    elapsed_s: float | None = None,
    target_n: float = 0.0,
    min_samples: int = MIN_MEANS_SAMPLES,
    name: str = "mean",
    bounds: tuple[float, float] | None = None,
    alpha_spent: float | None = None,
    alpha_budget: float | None = None,
) -> tuple[MeansState, JudgeResult]:
    """One look of "mean canary OP mean baseline * factor + offset" (``revenue >=
    baseline * 1.058``) with cumulative moments of values clipped to ``bounds``.

    Without ``bounds`` the verdict is INCONCLUSIVE (:data:`UNBOUNDED_REASON`).
    ``target_n`` is accepted for old callers and ignored.
    """
    del target_n
    check_alpha(alpha)
    upper = upper_ops(op)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be positive, got {factor!r}")
    if bounds is not None:
        bounds = (float(bounds[0]), float(bounds[1]))
        if not (math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]):
            raise ValueError(f"bounds must be finite with lo < hi, got {bounds!r}")
    budget = Budget(spent=alpha_spent, total=alpha_budget)
    if state is None:
        state = MeansState(factor=factor, offset=offset, op=op, bounds=bounds)
    elif (state.factor, state.offset, state.op, state.bounds) != (factor, offset, op, bounds):
        raise ValueError("this state belongs to a different criterion (factor, offset, op, bounds)")
    looks = state.looks + 1
    if bounds is None:
        return attrs.evolve(state, looks=looks), invalid(
            "means", alpha, UNBOUNDED_REASON, looks, budget
        )
    if state.broken is not None:
        return attrs.evolve(state, looks=looks), invalid(
            "means", alpha, state.broken, looks, budget
        )
    lo, hi = bounds
    for arm in (canary, baseline):
        problem = _moments_problem(arm, lo, hi)
        if problem is not None:
            return state, invalid("means", alpha, problem, looks, budget)
    if canary.n < state.n_canary or baseline.n < state.n_baseline:
        reason = (
            "cumulative counts went backwards (moments over a sliding window rather than "
            "since the phase started?): this criterion stays INCONCLUSIVE for the phase"
        )
        return attrs.evolve(state, looks=looks, broken=reason), invalid(
            "means", alpha, reason, looks, budget
        )
    n_text = f"n={fmt_n(canary.n)} canary / {fmt_n(baseline.n)} baseline"
    if min(canary.n, baseline.n) < max(1, min_samples):
        result = JudgeResult(
            outcome=Outcome.INCONCLUSIVE,
            test="means",
            explanation=f"collecting evidence: {n_text} (need {min_samples} per arm)",
            alpha=alpha,
            e_value=bounded_e(state.max_log_e_harm),
            e_value_pass=bounded_e(state.max_log_e_safe),
            n_canary=canary.n,
            n_baseline=baseline.n,
            looks=looks,
            collecting=True,
            alpha_spent=alpha_spent,
            alpha_budget=alpha_budget,
        )
        return attrs.evolve(state, looks=looks), result
    half = math.log(2.0)
    log_above = evidence_apart(canary, baseline, lo, hi, factor, offset, above=True) - half
    log_below = evidence_apart(canary, baseline, lo, hi, factor, offset, above=False) - half
    log_harm, log_safe = (log_above, log_below) if upper else (log_below, log_above)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = decide(
        max_harm=bounded_e(max_harm),
        max_safe=bounded_e(max_safe),
        alpha=alpha,
        final=final,
        fail_only=fail_only,
        has_data=canary.n > 0 and baseline.n > 0,
    )
    decided = decided_at(
        state.decided_after_s, outcome, elapsed_s, fail_only=fail_only, final=final
    )
    new_state = attrs.evolve(
        state,
        max_log_e_harm=max_harm,
        max_log_e_safe=max_safe,
        looks=looks,
        decided_after_s=decided,
        n_canary=canary.n,
        n_baseline=baseline.n,
    )
    c_low, c_high = arm_interval(canary, lo, hi, alpha / 2.0)
    b_low, b_high = arm_interval(baseline, lo, hi, alpha / 2.0)
    if offset == 0.0 and b_low > 0 and baseline.mean > 0:
        estimate: float | None = canary.mean / baseline.mean
        low, high = round_out(c_low / b_high, up=False), round_out(c_high / b_low, up=True)
        shown = f"{TIMES}{estimate:.3g}"
        interval = f"{fmt_level(alpha)} CS {TIMES}{low:.3g}{DASH}{TIMES}{high:.3g}"
        bound_text = f"bound {op} {TIMES}{factor:.4g}"
        effect = "ratio of means canary/baseline"
    else:
        estimate = canary.mean - baseline.mean
        low, high = round_out(c_low - b_high, up=False), round_out(c_high - b_low, up=True)
        shown = f"Δ{estimate:+.4g}"
        interval = f"{fmt_level(alpha)} CS {low:+.4g}{DASH}{high:+.4g}"
        bound_text = f"bound {op} baseline {TIMES} {factor:.4g} {offset:+.4g}"
        effect = "difference of means canary-baseline"
    head = (
        f"canary {name} {canary.mean:.4g} vs baseline {baseline.mean:.4g} "
        f"({shown}, {interval}; {bound_text}; values in [{lo:g}, {hi:g}])"
    )
    evidence = evidence_text(bounded_e(max_harm), bounded_e(max_safe), alpha)
    explanation = explain(
        head, evidence, n_text, word, collecting=collecting, fail_only=fail_only, budget=budget
    )
    return new_state, JudgeResult(
        outcome=outcome,
        test="means",
        explanation=explanation,
        alpha=alpha,
        e_value=bounded_e(max_harm),
        e_value_pass=bounded_e(max_safe),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        effect=effect,
        n_canary=canary.n,
        n_baseline=baseline.n,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
        alpha_spent=alpha_spent,
        alpha_budget=alpha_budget,
    )
