"""Counts: canary events against baseline events (Lindon & Malek's conditional test).

Given a look's events, each is the canary's with probability ``r*pi / (r*pi + 1 - pi)``
(``r`` the rate ratio, ``pi`` the canary's share of that look's exposure), so the
unknown common rate cancels. The e-value is a mixture over ``r`` on the harmful side of
``factor`` of likelihood ratios against ``r = factor``. With declared bursts
(``dispersion``, ``bursts``: see :mod:`.dispersion`) every look's log-likelihood is
divided by the variance inflation they imply (a tempered, quasi-likelihood ratio), which
keeps the e-process's expectation at 1 when the canary's share of the events varies that
much more than a binomial.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import attrs

from .dispersion import Bursts, ScaleSums, excess, fresh_scales
from .mixture import (
    GRID_HALF,
    GRID_STEP,
    PRIOR_SCALE,
    bounded_e,
    grid_ratio,
    log_sum_exp,
    mixture_log_e,
)
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
    fmt_ratio,
    invalid,
    upper_ops,
)

#: The share in force over one interval between looks: a percent, or the segments
#: ``(percent, seconds)`` when it changed within the interval (a stepped phase).
Split = float | Sequence[tuple[float, float]]

_GRID_SIZE = 2 * GRID_HALF + 1
#: A fixed normal prior over the whole grid (the null's boundary included) for the
#: confidence sequence: its likelihood ratio against any ratio is a martingale there.
_CS_RAW = [
    -(((j - GRID_HALF) * GRID_STEP) ** 2) / (2.0 * PRIOR_SCALE**2) for j in range(_GRID_SIZE)
]
_CS_WEIGHTS: tuple[float, ...] = tuple(w - log_sum_exp(_CS_RAW) for w in _CS_RAW)


@attrs.frozen(kw_only=True)
class CountsState:
    """What the counts test carries from one look of a phase to the next.

    ``loglik[i]`` is the (tempered) conditional log-likelihood so far of the rate ratio
    ``factor * exp((i - GRID_HALF) * GRID_STEP)``; the last cumulative counts turn the
    next look's cumulative counts into increments. ``broken`` is set for good when the
    counts went backwards: counts that are not cumulative (a metric ``window``) cannot be
    turned into increments, and no later look of the phase is judged on them.
    ``seen`` measures the dispersion the data show, at several block lengths.
    """

    factor: float
    op: str
    dispersion: float = 1.0
    bursts: Bursts | None = None
    canary_events: float = 0.0
    canary_trials: float = 0.0
    baseline_events: float = 0.0
    baseline_trials: float = 0.0
    loglik: tuple[float, ...] = (0.0,) * _GRID_SIZE
    max_log_e_harm: float = 0.0
    max_log_e_safe: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None
    broken: str | None = None
    seen: tuple[ScaleSums, ...] = attrs.field(factory=fresh_scales)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`state_from_dict` reads it back."""
        out = attrs.asdict(self)
        out["loglik"] = list(self.loglik)
        out["test"] = "counts"
        return out


def counts_loglik_update(
    loglik: Sequence[float],
    *,
    canary_events: float,
    canary_exposure: float,
    baseline_events: float,
    baseline_exposure: float,
    factor: float,
    dispersion: float = 1.0,
) -> tuple[float, ...]:
    """Add one look's increments to the conditional log-likelihood of each grid ratio.

    Given this look's events, each is the canary's with probability
    ``theta(r) = r*pi / (r*pi + 1 - pi)``, ``pi`` the canary's share of this look's
    exposure: the binomial log-likelihood of the canary's share of the events, divided
    by ``dispersion``.
    """
    if canary_events + baseline_events <= 0 or canary_exposure <= 0 or baseline_exposure <= 0:
        return tuple(loglik)
    share = canary_exposure / (canary_exposure + baseline_exposure)
    log_share, log_rest, rest = math.log(share), math.log1p(-share), 1.0 - share
    temper = 1.0 / dispersion
    ce, be, log = canary_events, baseline_events, math.log
    ratios, log_ratios = _grid(factor)
    # a look runs through here every few seconds for hours: one pass, no calls but log
    return tuple(
        v + temper * (ce * (lr + log_share - ld) + be * (log_rest - ld))
        for v, lr, ld in zip(
            loglik, log_ratios, [log(r * share + rest) for r in ratios], strict=True
        )
    )


@functools.lru_cache(maxsize=64)
def _grid(factor: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The grid's ratios ``factor * 1.1^k`` and their logs."""
    ratios = tuple(factor * grid_ratio(k - GRID_HALF) for k in range(_GRID_SIZE))
    return ratios, tuple(math.log(r) for r in ratios)


def confidence_ratios(
    loglik: Sequence[float], factor: float, alpha: float
) -> tuple[float | None, float | None]:
    """The ``1 - alpha`` confidence sequence on the rate ratio, rounded *outwards* to the
    grid: the ratios ``r`` whose likelihood is at least ``alpha`` times the fixed-prior
    mixture's. The log-likelihood is concave in ``log r``, so the set is an interval
    whose ends lie between the last rejected and the first kept grid point; the
    neighbouring (rejected) grid points are reported. ``None`` for an unbounded end."""
    log_mixture = log_sum_exp([w + v for w, v in zip(_CS_WEIGHTS, loglik, strict=True)])
    cut = log_mixture - math.log(1.0 / alpha)
    kept = [j for j, v in enumerate(loglik) if v >= cut]
    if kept:
        low_i, high_i = kept[0] - 1, kept[-1] + 1
    else:  # the peak lies between grid points: the interval is inside its neighbours
        best = max(range(len(loglik)), key=lambda j: loglik[j])
        low_i, high_i = best - 1, best + 1
    low = 0.0 if low_i < 0 else factor * grid_ratio(low_i - GRID_HALF)
    high = None if high_i >= len(loglik) else factor * grid_ratio(high_i - GRID_HALF)
    return low, high


def split_segments(
    changes: Sequence[tuple[float, float]], since: float, until: float
) -> list[tuple[float, float]]:
    """The ``split`` of the interval ``(since, until]`` (seconds on any one clock) from the
    confirmed traffic changes ``[(at, percent), ...]`` sorted by time, each share in force
    from its ``at`` on: ``[(percent, seconds), ...]``, the form :func:`judge_counts`
    takes. The share before the first change is the first change's (the engine passes
    the phase's first confirmed split at its start)."""
    if until < since:
        raise ValueError(f"an interval must not end before it starts: {since!r}..{until!r}")
    if not changes:
        raise ValueError("no traffic share is known for this interval")
    out: list[tuple[float, float]] = []
    for index, (at, percent) in enumerate(changes):
        start = since if index == 0 else max(since, at)
        end = until if index + 1 == len(changes) else min(until, changes[index + 1][0])
        if end > start:
            out.append((percent, end - start))
    return out


def _exposures(split: Split | None) -> tuple[float, float] | str:
    """(canary, baseline) exposure of one interval from the share in force over it."""
    if split is None:
        return "no trials and no canary share given"
    segments = [(float(split), 1.0)] if isinstance(split, int | float) else list(split)
    if not segments:
        return "no canary share given for this interval"
    canary = baseline = 0.0
    for percent, seconds in segments:
        if not (finite_nonneg(percent, seconds) and percent <= 100.0):
            return f"a canary share must be 0-100 % over a non-negative time, got {percent!r}"
        canary += percent / 100.0 * seconds
        baseline += (1.0 - percent / 100.0) * seconds
    return canary, baseline


def _mode_ratio(loglik: Sequence[float], factor: float) -> float:
    """The ratio the looks so far estimate: the posterior mode under the confidence
    sequence's prior (the null's boundary at the first look, and never a far grid end
    after a few looks without events)."""
    scores = [v + w for v, w in zip(loglik, _CS_WEIGHTS, strict=True)]
    return _grid(factor)[0][scores.index(max(scores))]


def _rates(
    baseline_events: float,
    canary_exposure: float,
    baseline_exposure: float,
    *,
    share: float,
    factor: float,
    elapsed_s: float | None,
) -> tuple[float, float]:
    """(canary, baseline) events per second now: the baseline's events per unit of
    exposure and the exposure per second so far, split by ``share``, the canary's share
    in force now (a phase that stepped from 1 % to 10 % has the 10 % canary's rates, not
    the average's). The canary's is at the null's boundary (``factor`` times the
    baseline's per unit of exposure): what bursts inflate when the canary is healthy --
    and no more when it is not, so harm does not hide behind a larger inflation."""
    if not elapsed_s or elapsed_s <= 0.0 or baseline_exposure <= 0.0:
        return 0.0, 0.0
    per_exposure = baseline_events / baseline_exposure
    per_second = (canary_exposure + baseline_exposure) / elapsed_s
    return (
        factor * per_exposure * share * per_second,
        per_exposure * (1.0 - share) * per_second,
    )


def _share_now(split: Split | None, canary_exposure: float, baseline_exposure: float) -> float:
    """The canary's share of the exposure in force over this interval (from ``split``),
    else over the phase so far."""
    interval = _exposures(split) if split is not None else None
    if isinstance(interval, tuple) and sum(interval) > 0.0:
        return interval[0] / sum(interval)
    total = canary_exposure + baseline_exposure
    return canary_exposure / total if total > 0.0 else 0.0


def judge_counts(  # noqa: PLR0915 - one look reads top to bottom: check, update, decide, explain
    state: CountsState | None,
    canary_events: float,
    canary_trials: float | None,
    baseline_events: float,
    baseline_trials: float | None,
    *,
    alpha: float,
    factor: float = 1.0,
    op: str = "<=",
    split: Split | None = None,
    final: bool = False,
    fail_only: bool = False,
    elapsed_s: float | None = None,
    name: str = "error rate",
    dispersion: float = 1.0,
    bursts: Bursts | None = None,
    alpha_spent: float | None = None,
    alpha_budget: float | None = None,
) -> tuple[CountsState, JudgeResult]:
    """One look of "canary rate OP baseline rate * factor" on event counts.

    Counts are cumulative since the phase started. Give both arms' trials (requests)
    for rates; for bare event counts (crashes) give ``None`` trials and ``split``: the
    canary's share in percent *in force over the interval since the previous look* (since
    the phase started at the first look), or ``[(percent, seconds), ...]`` when the share
    changed within it -- a stepped phase passes each step's share for its own time.

    ``op`` ``<=``/``<`` guards against a canary that is worse by more than ``factor``
    (e.g. 1.2 for a 20 % tolerance); ``>=``/``>`` against one that is lower.
    ``dispersion`` (>= 1) is the variance inflation of each look's split the plan allows
    for, ``bursts`` each arm's own wandering (it needs ``elapsed_s``: the inflation
    follows the event rates); ``alpha_spent``/``alpha_budget`` are reported.
    """
    check_alpha(alpha)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be positive, got {factor!r}")
    if not (math.isfinite(dispersion) and dispersion >= 1.0):
        raise ValueError(f"dispersion must be at least 1, got {dispersion!r}")
    upper = upper_ops(op)
    budget = Budget(spent=alpha_spent, total=alpha_budget)
    if bursts is not None and elapsed_s is None:
        raise ValueError("bursts need elapsed_s: their inflation follows the event rates")
    if state is None:
        state = CountsState(factor=factor, op=op, dispersion=dispersion, bursts=bursts)
    elif (state.factor, state.op, state.dispersion, state.bursts) != (
        factor,
        op,
        dispersion,
        bursts,
    ):
        raise ValueError(
            "this state belongs to a different criterion (factor, op, dispersion or bursts differ)"
        )
    looks = state.looks + 1
    if state.broken is not None:
        return attrs.evolve(state, looks=looks), invalid(
            "counts", alpha, state.broken, looks, budget
        )
    rates = canary_trials is not None and baseline_trials is not None
    if not finite_nonneg(canary_events, canary_trials, baseline_events, baseline_trials):
        return state, invalid("counts", alpha, "counts are missing, negative or NaN", looks, budget)
    if not rates:
        exposure = _exposures(split)
        if isinstance(exposure, str):
            return state, invalid("counts", alpha, exposure, looks, budget)
        # exposure in share-seconds (share-looks for a bare percent)
        canary_trials = state.canary_trials + exposure[0]
        baseline_trials = state.baseline_trials + exposure[1]
    assert canary_trials is not None
    assert baseline_trials is not None
    if rates and (canary_events > canary_trials or baseline_events > baseline_trials):
        return state, invalid("counts", alpha, "more events than trials", looks, budget)
    d_ce = canary_events - state.canary_events
    d_ct = canary_trials - state.canary_trials
    d_be = baseline_events - state.baseline_events
    d_bt = baseline_trials - state.baseline_trials
    if min(d_ce, d_ct, d_be, d_bt) < 0:
        reason = (
            "cumulative counts went backwards (a counter reset, or counts over a sliding "
            "window rather than since the phase started): this criterion stays "
            "INCONCLUSIVE for the rest of the phase"
        )
        return attrs.evolve(state, looks=looks, broken=reason), invalid(
            "counts", alpha, reason, looks, budget
        )
    if (d_ce > 0 and d_ct == 0) or (d_be > 0 and d_bt == 0):
        return state, invalid(
            "counts", alpha, "events without exposure in this look", looks, budget
        )
    canary_per_s, baseline_per_s = _rates(
        baseline_events,
        canary_trials,
        baseline_trials,
        share=_share_now(split, canary_trials, baseline_trials),
        factor=factor,
        elapsed_s=elapsed_s,
    )
    temper = dispersion
    if bursts is not None:
        temper = max(temper, bursts.inflation(canary_per_s, baseline_per_s, None))
    ratio = _mode_ratio(state.loglik, factor)  # from the earlier looks: predictable
    cumulative = (canary_events, baseline_events, canary_trials, baseline_trials)
    seen = tuple(scale.at(cumulative, elapsed_s, ratio) for scale in state.seen)
    loglik = counts_loglik_update(
        state.loglik,
        canary_events=d_ce,
        canary_exposure=d_ct,
        baseline_events=d_be,
        baseline_exposure=d_bt,
        factor=factor,
        dispersion=temper,
    )
    center = GRID_HALF
    log_harm = mixture_log_e(loglik, center, upward=upper)
    log_safe = mixture_log_e(loglik, center, upward=not upper)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = decide(
        max_harm=bounded_e(max_harm),
        max_safe=bounded_e(max_safe),
        alpha=alpha,
        final=final,
        fail_only=fail_only,
        has_data=canary_trials > 0 and baseline_trials > 0,
    )
    decided = decided_at(
        state.decided_after_s, outcome, elapsed_s, fail_only=fail_only, final=final
    )
    new_state = attrs.evolve(
        state,
        canary_events=canary_events,
        canary_trials=canary_trials,
        baseline_events=baseline_events,
        baseline_trials=baseline_trials,
        loglik=loglik,
        max_log_e_harm=max_harm,
        max_log_e_safe=max_safe,
        looks=looks,
        decided_after_s=decided,
        seen=seen,
    )
    burstier = excess(
        seen,
        dispersion=dispersion,
        bursts=bursts,
        canary_rate=canary_per_s,
        baseline_rate=baseline_per_s,
    )
    ci_low, ci_high = confidence_ratios(loglik, factor, alpha)
    canary_rate = canary_events / canary_trials if canary_trials > 0 else math.nan
    baseline_rate = baseline_events / baseline_trials if baseline_trials > 0 else math.nan
    estimate = canary_rate / baseline_rate if baseline_rate > 0 else None
    if rates:
        rates_text = f"canary {name} {fmt_pct(canary_rate)} vs baseline {fmt_pct(baseline_rate)}"
        n_text = f"n={fmt_n(canary_trials)} canary / {fmt_n(baseline_trials)} baseline"
        n_canary, n_baseline = canary_trials, baseline_trials
    else:
        rates_text = f"canary {fmt_n(canary_events)} vs baseline {fmt_n(baseline_events)} events"
        n_text = f"events={fmt_n(canary_events + baseline_events)}"
        n_canary, n_baseline = canary_events, baseline_events
    interval = (
        f"{fmt_level(alpha)} CS {fmt_ratio(ci_low, up=False)}{DASH}{fmt_ratio(ci_high, up=True)}"
    )
    ratio_text = "" if estimate is None else f"{fmt_ratio(estimate)}, "
    bound_text = f"bound {op} {fmt_ratio(factor)}"
    tempered = ""  # said while collecting too: it is why evidence comes slower
    if temper != 1.0:
        tempered = f"dispersion {temper:.3g}"
        if bursts is not None:
            tempered += f" ({bursts.text()})"
        bound_text += f", {tempered}"
        tempered = f"; {tempered}"
    evidence = evidence_text(bounded_e(max_harm), bounded_e(max_safe), alpha)
    explanation = explain(
        f"{rates_text} ({ratio_text}{interval}; {bound_text})",
        evidence,
        n_text,
        word,
        collecting=collecting,
        fail_only=fail_only,
        waiting_head=f"{rates_text} ({ratio_text}{interval}{tempered})",
        budget=budget,
    )
    if burstier is not None:
        explanation += f"; {burstier.text(name)}"
    per_look = seen[0].estimate()
    return new_state, JudgeResult(
        outcome=outcome,
        test="counts",
        explanation=explanation,
        alpha=alpha,
        e_value=bounded_e(max_harm),
        e_value_pass=bounded_e(max_safe),
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        effect="rate ratio canary/baseline",
        n_canary=n_canary,
        n_baseline=n_baseline,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
        alpha_spent=alpha_spent,
        alpha_budget=alpha_budget,
        dispersion=temper,
        dispersion_seen=None if per_look is None else per_look[0],
        burstier=burstier,
    )
