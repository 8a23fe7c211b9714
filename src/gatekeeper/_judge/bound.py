"""A rate against an absolute bound (``error_rate < 0.5%``, ``availability > 99.95%``):
a mixture of Bernoulli likelihood ratios against the bound, and Robbins' beta-binomial
confidence sequence for the interval."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .mixture import DOWN_WEIGHTS, UP_WEIGHTS, bounded_e, grid_ratio, log_sum_exp
from .verdict import (
    DASH,
    Budget,
    JudgeResult,
    check_alpha,
    decide,
    decided_at,
    evidence_text,
    explain,
    finite_nonneg,
    fmt_level,
    fmt_n,
    fmt_pct,
    fmt_pct_out,
    invalid,
    upper_ops,
)


@attrs.frozen(kw_only=True)
class BoundState:
    """What the bound test carries between looks: the cumulative counts (sufficient,
    since the trials are exchangeable) and the running maxima of both e-processes."""

    bound: float
    op: str
    events: float = 0.0
    trials: float = 0.0
    max_log_e_harm: float = 0.0
    max_log_e_safe: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None
    broken: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`state_from_dict` reads it back."""
        out = attrs.asdict(self)
        out["test"] = "bound"
        return out


def _bernoulli_log_lr(events: float, trials: float, p: float, p0: float) -> float:
    """log of the likelihood ratio p : p0 for ``events`` out of ``trials``."""
    misses = trials - events
    out = 0.0
    if events:
        out += -math.inf if p == 0.0 else events * (math.log(p) - math.log(p0))
    if misses:
        out += -math.inf if p == 1.0 else misses * (math.log1p(-p) - math.log1p(-p0))
    return out


def bound_prior(bound: float, *, above: bool) -> list[tuple[float, float]]:
    """(rate, log prior weight) of the mixture's alternatives: ``bound * 1.1^k`` with the
    half-normal weights on ``k``; grid points past 1 are dropped (mass < 1: conservative),
    and below the bound the farthest point's weight moves to ``p = 0``, the only
    alternative zero events can support (mass exactly 1)."""
    weights = UP_WEIGHTS if above else DOWN_WEIGHTS
    out = [(bound * grid_ratio(k), w) for k, w in weights]
    if not above:
        out[-1] = (0.0, out[-1][1])
    return [(p, w) for p, w in out if 0.0 <= p < 1.0]


def bound_log_e(events: float, trials: float, bound: float, *, above: bool) -> float:
    """log of the mixture e-value that the event rate is above (``above``) or below the
    ``bound``: half-normal prior on ``log(p / bound)`` over the grid (see
    :func:`bound_prior`); the prior's total mass is at most 1."""
    return log_sum_exp(
        [
            w + _bernoulli_log_lr(events, trials, p, bound)
            for p, w in bound_prior(bound, above=above)
        ]
    )


def beta_binomial_log_bf(events: float, trials: float, p: float) -> float:
    """log of the Bayes factor of a Beta(1/2, 1/2) mixture against the point rate ``p``:
    ``B(x + 1/2, n - x + 1/2) / B(1/2, 1/2) / (p^x (1 - p)^(n - x))`` -- a martingale
    under ``p`` (Robbins), so the rates where it stays below ``1/alpha`` form a
    confidence sequence."""
    misses = trials - events
    log_mixture = (
        math.lgamma(events + 0.5)
        + math.lgamma(misses + 0.5)
        - math.lgamma(trials + 1.0)
        - 2.0 * math.lgamma(0.5)
        + math.lgamma(1.0)
    )
    log_point = _bernoulli_log_lr(events, trials, p, 0.5) + trials * math.log(0.5)
    return log_mixture - log_point


def rate_interval(events: float, trials: float, alpha: float) -> tuple[float, float]:
    """The ``1 - alpha`` confidence sequence on the rate (beta-binomial mixture), by
    bisection on each side of the estimate (the Bayes factor grows monotonically away
    from it); each end is the bisection's *outer* point, so rounding never cuts it."""
    log_threshold = math.log(1.0 / alpha)
    if trials <= 0:
        return (0.0, 1.0)
    estimate = events / trials

    def search(inside: float, outside: float) -> float:
        if beta_binomial_log_bf(events, trials, outside) < log_threshold:
            return outside
        for _ in range(100):
            middle = 0.5 * (inside + outside)
            if beta_binomial_log_bf(events, trials, middle) >= log_threshold:
                outside = middle
            else:
                inside = middle
        return outside

    return (search(estimate, 0.0), search(estimate, 1.0))


def judge_bound(
    state: BoundState | None,
    events: float,
    trials: float,
    *,
    bound: float,
    op: str,
    alpha: float,
    final: bool = False,
    fail_only: bool = False,
    elapsed_s: float | None = None,
    name: str = "rate",
    alpha_spent: float | None = None,
    alpha_budget: float | None = None,
) -> tuple[BoundState, JudgeResult]:
    """One look of "events/trials OP bound" (``error_rate < 0.005`` with error counts;
    ``availability > 0.9995`` with success counts), counts cumulative since the phase
    started. FAIL needs evidence the bound is violated, PASS evidence it holds; with
    ``fail_only`` the phase's last look (``final``) passes without evidence of harm --
    never without trials."""
    check_alpha(alpha)
    if not 0.0 < bound < 1.0:
        raise ValueError(f"a rate bound must be in (0, 1), got {bound!r}")
    upper = upper_ops(op)
    budget = Budget(spent=alpha_spent, total=alpha_budget)
    if state is None:
        state = BoundState(bound=bound, op=op)
    elif state.bound != bound or state.op != op:
        raise ValueError("this state belongs to a different criterion (bound or op differ)")
    looks = state.looks + 1
    if state.broken is not None:
        return attrs.evolve(state, looks=looks), invalid(
            "bound", alpha, state.broken, looks, budget
        )
    if not finite_nonneg(events, trials):
        return state, invalid("bound", alpha, "counts are missing, negative or NaN", looks, budget)
    if events > trials:
        return state, invalid("bound", alpha, "more events than trials", looks, budget)
    if events < state.events or trials < state.trials:
        reason = (
            "cumulative counts went backwards (a counter reset, or counts over a sliding "
            "window rather than since the phase started): this criterion stays "
            "INCONCLUSIVE for the rest of the phase"
        )
        return attrs.evolve(state, looks=looks, broken=reason), invalid(
            "bound", alpha, reason, looks, budget
        )
    # work with "bad" events so that harm is always "rate above the bound"
    bad, limit = (events, bound) if upper else (trials - events, 1.0 - bound)
    log_harm = bound_log_e(bad, trials, limit, above=True)
    log_safe = bound_log_e(bad, trials, limit, above=False)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = decide(
        max_harm=bounded_e(max_harm),
        max_safe=bounded_e(max_safe),
        alpha=alpha,
        final=final,
        fail_only=fail_only,
        has_data=trials > 0,
    )
    decided = decided_at(
        state.decided_after_s, outcome, elapsed_s, fail_only=fail_only, final=final
    )
    new_state = attrs.evolve(
        state,
        events=events,
        trials=trials,
        max_log_e_harm=max_harm,
        max_log_e_safe=max_safe,
        looks=looks,
        decided_after_s=decided,
    )
    low, high = rate_interval(bad, trials, alpha)
    if not upper:
        low, high = 1.0 - high, 1.0 - low
    estimate = events / trials if trials > 0 else None
    shown = "no data" if estimate is None else fmt_pct(estimate)
    interval = (
        f"{fmt_level(alpha)} CS {fmt_pct_out(low, up=False)}{DASH}{fmt_pct_out(high, up=True)}"
    )
    evidence = evidence_text(bounded_e(max_harm), bounded_e(max_safe), alpha)
    n_text = f"n={fmt_n(trials)}"
    head = f"{name} {shown} ({interval}; bound {op} {bound * 100:.6g}%)"
    explanation = explain(
        head, evidence, n_text, word, collecting=collecting, fail_only=fail_only, budget=budget
    )
    return new_state, JudgeResult(
        outcome=outcome,
        test="bound",
        explanation=explanation,
        alpha=alpha,
        e_value=bounded_e(max_harm),
        e_value_pass=bounded_e(max_safe),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        effect="rate",
        n_canary=trials,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
        alpha_spent=alpha_spent,
        alpha_budget=alpha_budget,
    )
