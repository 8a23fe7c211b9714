"""The statistical judge: anytime-valid canary-versus-baseline tests.

A gate is looked at every few seconds for hours. A fixed-sample test re-run at every
look rejects a healthy canary sooner or later; the tests here are *e-processes*:
non-negative processes whose expectation is at most 1 at every stopping time while the
criterion holds, so by Ville's inequality the chance they *ever* reach ``1/alpha`` is at
most ``alpha``, however often they are looked at and whenever the run stops.

Three tests, one entry point each, each called once per look with *cumulative* data
since the phase started and the state returned by the previous look (``None`` at the
first look of a phase)::

    state, result = judge_counts(state, canary_events, canary_trials,
                                 baseline_events, baseline_trials,
                                 alpha=a, factor=1.2, op="<=")
    state, result = judge_bound(state, events, trials, bound=0.005, op="<", alpha=a)
    state, result = judge_means(state, Moments(...), Moments(...),
                                factor=1.058, op=">=", alpha=a)

* :func:`judge_counts` -- events (errors, crashes) of canary and baseline, given the
  requests of each arm or else the traffic split. Conditional on the total number of
  events, each event is the canary's with probability ``r*pi / (r*pi + 1 - pi)``
  (``r`` the rate ratio, ``pi`` the canary's share of exposure): Lindon & Malek's
  multinomial counting-process test. The e-value is a mixture over ``r`` on the harmful
  side of ``factor`` of likelihood ratios against ``r = factor``.
* :func:`judge_bound` -- a rate against an absolute bound (``error_rate < 0.5%``,
  ``availability > 99.95%``): a mixture of Bernoulli likelihood ratios against the bound.
* :func:`judge_means` -- means and relative lift from sufficient statistics (n, sum,
  sum of squares) per arm: an asymptotic normal-mixture confidence sequence
  (Waudby-Smith et al. 2021; Howard et al. 2021).

Every test keeps two e-processes: one for *harm* (the criterion is violated: FAIL at
``e >= 1/alpha``) and one for *safety* (the criterion holds with room: PASS at
``e >= 1/alpha``). Neither yet is INCONCLUSIVE ("collecting evidence: n=..."), never
PASS -- unless the criterion is ``fail_only`` and this is the phase's last look
(``final=True``): then "no evidence of harm over the whole horizon" is a PASS, the
documented trade-off for bounds no realistic sample can prove (a 1-hour canary at one
probe per second cannot show availability > 99.95 %). A FAIL (or PASS) once reached
stays: the decision uses the running maximum of each e-process (the sequential p-value
is ``1 / max e``). Harm wins if both ever cross.

States are frozen ``attrs`` objects, :meth:`to_dict` gives a JSON-able dict for the run
journal and :func:`state_from_dict` reads it back. :func:`criterion_alpha` splits a
gate's alpha across its compare criteria (Bonferroni). Pure Python, ``math`` only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._model import Gate, Kind, Outcome

__all__ = [
    "BoundState",
    "CountsState",
    "JudgeResult",
    "MeansState",
    "Moments",
    "criterion_alpha",
    "judge_bound",
    "judge_counts",
    "judge_means",
    "split_alpha",
    "state_from_dict",
]

#: Grid of the rate ratio (counts) or the rate (bound) relative to the null's boundary:
#: ``exp(k * GRID_STEP)`` for ``k = -GRID_HALF .. GRID_HALF`` (factor 1.1 steps,, 1/64 to 64 times).
GRID_STEP = math.log(1.1)
GRID_HALF = 44
#: Prior scale (natural log units) of the mixture over the effect: most mass on effects
#: between 1.1 and 5 times, the ones worth catching early.
PRIOR_SCALE = 1.0
#: Mixture scale of the means test, in standard deviations per observation, tuned to
#: be tightest around this many effective observations (Howard et al., eq. 3.5).
MEANS_TARGET_N = 500.0
MIN_MEANS_SAMPLES = 30
_MAX_LOG_E = 700.0
_TIMES, _DASH, _ALPHA = "\u00d7", "\u2013", "\u03b1"  # x, -, alpha as people read them


def _upper_ops(op: str) -> bool:
    """``True`` when the criterion caps the canary (``<``, ``<=``): harm is "too high"."""
    if op in ("<", "<="):
        return True
    if op in (">", ">="):
        return False
    raise ValueError(f"a statistical criterion needs <, <=, > or >=, got {op!r}")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def split_alpha(alpha: float, n_tests: int) -> float:
    """Bonferroni: each of ``n_tests`` criteria gets ``alpha / n_tests``, so the chance
    that *any* of them falsely fails over the whole phase stays at most ``alpha``."""
    _check_alpha(alpha)
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests!r}")
    return alpha / n_tests


def criterion_alpha(gate: Gate, index: int) -> float:
    """The level of the gate's ``index``-th criterion: its own ``alpha`` when the plan
    gives one, else the gate's alpha split evenly over all the gate's compare
    criteria (so the gate keeps its alpha unless the plan overrides a criterion's)."""
    criterion = gate.criteria[index]
    if criterion.alpha is not None:
        return criterion.alpha
    compares = [c for c in gate.criteria if c.kind is Kind.COMPARE]
    return split_alpha(gate.alpha, max(1, len(compares)))


# --------------------------------------------------------------------------- math


def log_sum_exp(values: Sequence[float]) -> float:
    """``log(sum(exp(v)))`` without overflow; ``-inf`` for an empty sequence."""
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def normal_cdf(x: float) -> float:
    """Φ(x), the standard normal distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def log_normal_cdf(x: float) -> float:
    """log Φ(x), accurate in the far left tail (where Φ underflows)."""
    if x > -30.0:
        return math.log(normal_cdf(x))
    # Mills ratio asymptotics: Φ(x) ~ φ(x)/|x| (1 - 1/x² + 3/x⁴)
    x2 = x * x
    return (
        -0.5 * x2
        - math.log(-x)
        - 0.5 * math.log(2.0 * math.pi)
        + math.log1p(-1.0 / x2 + 3.0 / (x2 * x2))
    )


def _side_log_weights(positive: bool) -> list[tuple[int, float]]:
    """(k, log prior weight) of the grid points on one side of the null, summing to 1:
    a half-normal of scale ``PRIOR_SCALE`` on the log effect."""
    ks = range(1, GRID_HALF + 1) if positive else range(-1, -GRID_HALF - 1, -1)
    raw = [(k, -((k * GRID_STEP) ** 2) / (2.0 * PRIOR_SCALE**2)) for k in ks]
    norm = log_sum_exp([w for _, w in raw])
    return [(k, w - norm) for k, w in raw]


_UP_WEIGHTS = _side_log_weights(positive=True)
_DOWN_WEIGHTS = _side_log_weights(positive=False)
# offsets for the two-sided point-null mixtures of the confidence sequence
_TWO_SIDED = [(k, w - math.log(2.0)) for k, w in _UP_WEIGHTS + _DOWN_WEIGHTS]


def _grid_ratio(k: int) -> float:
    return math.exp(k * GRID_STEP)


def mixture_log_e(loglik: Sequence[float], center: int, *, upward: bool) -> float:
    """log of the one-sided mixture e-value against the grid point ``center`` (an index
    into ``loglik``), mixing the points above (``upward``) or below it."""
    weights = _UP_WEIGHTS if upward else _DOWN_WEIGHTS
    base = loglik[center]
    terms = [w + loglik[center + k] - base for k, w in weights if 0 <= center + k < len(loglik)]
    return log_sum_exp(terms)


def _confidence_indices(loglik: Sequence[float], log_threshold: float) -> tuple[int, int]:
    """The first and last grid index not rejected by the two-sided point-null mixture
    at level alpha (``log_threshold = log(1/alpha)``): the confidence sequence on the grid.
    Returns ``(-1, -1)`` when every point is rejected (cannot happen with a proper prior
    unless the data contradict every grid point)."""
    kept = []
    for j in range(len(loglik)):
        base = loglik[j]
        if base == -math.inf:
            continue
        terms = [w + loglik[j + k] - base for k, w in _TWO_SIDED if 0 <= j + k < len(loglik)]
        if log_sum_exp(terms) < log_threshold:
            kept.append(j)
    if not kept:
        return (-1, -1)
    return (kept[0], kept[-1])


def _e(log_e: float) -> float:
    return math.exp(min(log_e, _MAX_LOG_E))


# --------------------------------------------------------------------------- result


@attrs.frozen(kw_only=True)
class JudgeResult:
    """One look's verdict of a statistical test, with the evidence behind it.

    ``e_value`` is the running maximum of the harm e-process (the sequential p-value is
    ``p_value = min(1, 1/e_value)``); ``e_value_pass`` the same for the evidence that the
    criterion holds. ``ci_low``/``ci_high`` bound the effect (``effect`` names it: the
    rate ratio canary/baseline, the rate, or the ratio of means) with the
    ``1 - alpha`` confidence sequence at this look (``None`` when unbounded).
    ``collecting`` is ``True`` for an INCONCLUSIVE that only means "not enough evidence
    yet" -- the next look may decide -- as opposed to unusable data.
    """

    outcome: Outcome
    test: str
    explanation: str
    alpha: float
    e_value: float = 1.0
    e_value_pass: float = 1.0
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    effect: str = ""
    n_canary: float = 0.0
    n_baseline: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None
    collecting: bool = False

    @property
    def p_value(self) -> float:
        """The anytime-valid p-value of harm: ``1 / max e`` so far."""
        return min(1.0, 1.0 / self.e_value) if self.e_value > 0 else 1.0

    def as_evidence(self) -> dict[str, Any]:
        """JSON-able evidence for ``Verdict.evidence``."""
        return {
            "test": self.test,
            "alpha": self.alpha,
            "e_value": self.e_value,
            "e_value_pass": self.e_value_pass,
            "p_value": self.p_value,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "effect": self.effect,
            "n_canary": self.n_canary,
            "n_baseline": self.n_baseline,
            "looks": self.looks,
            "decided_after_s": self.decided_after_s,
            "collecting": self.collecting,
        }


def _decide(
    *,
    max_harm: float,
    max_safe: float,
    alpha: float,
    final: bool,
    fail_only: bool,
) -> tuple[Outcome, str, bool]:
    """(outcome, verdict word for the explanation, collecting)."""
    threshold = 1.0 / alpha
    if max_harm >= threshold:
        return Outcome.FAIL, "FAIL", False
    if max_safe >= threshold and not fail_only:
        return Outcome.PASS, "PASS", False
    if fail_only and final:
        return Outcome.PASS, "PASS (fail-only: no evidence of harm by the end of the phase)", False
    return Outcome.INCONCLUSIVE, "INCONCLUSIVE", True


def _fmt_e(value: float) -> str:
    if value >= 1e6:
        return f"{value:.1e}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _fmt_pct(value: float) -> str:
    return f"{value * 100:.3g}%"


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return "∞"
    return f"{_TIMES}{value:.3g}" if value < 10 else f"{_TIMES}{value:.0f}"


def _fmt_level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:.4g}%"


def _invalid(test: str, alpha: float, reason: str, looks: int) -> JudgeResult:
    return JudgeResult(
        outcome=Outcome.INCONCLUSIVE, test=test, explanation=reason, alpha=alpha, looks=looks
    )


def _finite_nonneg(*values: float | None) -> bool:
    return all(v is None or (math.isfinite(v) and v >= 0) for v in values)


# --------------------------------------------------------------------------- counts


@attrs.frozen(kw_only=True)
class CountsState:
    """What the counts test carries from one look of a phase to the next.

    ``loglik[i]`` is the conditional log-likelihood so far of the rate ratio
    ``factor * exp((i - GRID_HALF) * GRID_STEP)``; the last cumulative counts turn the
    next look's cumulative counts into increments.
    """

    factor: float
    op: str
    canary_events: float = 0.0
    canary_trials: float = 0.0
    baseline_events: float = 0.0
    baseline_trials: float = 0.0
    loglik: tuple[float, ...] = (0.0,) * (2 * GRID_HALF + 1)
    max_log_e_harm: float = 0.0
    max_log_e_safe: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None

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
) -> tuple[float, ...]:
    """Add one look's increments to the conditional log-likelihood of each grid ratio.

    Given this look's events, each is the canary's with probability
    ``theta(r) = r*pi / (r*pi + 1 - pi)``, ``pi`` the canary's share of this look's
    exposure: the binomial log-likelihood of the canary's share of the events.
    """
    out = list(loglik)
    if canary_events + baseline_events <= 0 or canary_exposure <= 0 or baseline_exposure <= 0:
        return tuple(out)
    share = canary_exposure / (canary_exposure + baseline_exposure)
    log_share, log_rest = math.log(share), math.log1p(-share)
    for i in range(len(out)):
        ratio = factor * _grid_ratio(i - GRID_HALF)
        log_denominator = math.log(ratio * share + 1.0 - share)
        out[i] += canary_events * (math.log(ratio) + log_share - log_denominator)
        out[i] += baseline_events * (log_rest - log_denominator)
    return tuple(out)


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
    split: float | None = None,
    final: bool = False,
    fail_only: bool = False,
    elapsed_s: float | None = None,
    name: str = "error rate",
) -> tuple[CountsState, JudgeResult]:
    """One look of "canary rate OP baseline rate * factor" on event counts.

    Counts are cumulative since the phase started. Give both arms' trials (requests)
    for rates; for bare event counts (crashes) give ``None`` trials and ``split``, the
    canary's share of traffic in percent: the exposure then accrues by the split.
    ``op`` ``<=``/``<`` guards against a canary that is worse by more than ``factor``
    (e.g. 1.2 for a 20 % tolerance); ``>=``/``>`` against one that is lower.
    """
    _check_alpha(alpha)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be positive, got {factor!r}")
    upper = _upper_ops(op)
    if state is None:
        state = CountsState(factor=factor, op=op)
    elif state.factor != factor or state.op != op:
        raise ValueError("this state belongs to a different criterion (factor or op differ)")
    looks = state.looks + 1
    rates = canary_trials is not None and baseline_trials is not None
    if not _finite_nonneg(canary_events, canary_trials, baseline_events, baseline_trials):
        return state, _invalid("counts", alpha, "counts are missing, negative or NaN", looks)
    if not rates:
        if split is None or not 0.0 < split < 100.0:
            return state, _invalid(
                "counts", alpha, "no trials and no canary share strictly between 0 and 100 %", looks
            )
        # exposure in arbitrary units: a look's share of traffic
        canary_trials = state.canary_trials + split / 100.0
        baseline_trials = state.baseline_trials + 1.0 - split / 100.0
    assert canary_trials is not None
    assert baseline_trials is not None
    if rates and (canary_events > canary_trials or baseline_events > baseline_trials):
        return state, _invalid("counts", alpha, "more events than trials", looks)
    d_ce = canary_events - state.canary_events
    d_ct = canary_trials - state.canary_trials
    d_be = baseline_events - state.baseline_events
    d_bt = baseline_trials - state.baseline_trials
    if min(d_ce, d_ct, d_be, d_bt) < 0:
        return state, _invalid(
            "counts", alpha, "cumulative counts went backwards (counter reset?)", looks
        )
    if (d_ce > 0 and d_ct == 0) or (d_be > 0 and d_bt == 0):
        return state, _invalid("counts", alpha, "events without exposure in this look", looks)
    loglik = counts_loglik_update(
        state.loglik,
        canary_events=d_ce,
        canary_exposure=d_ct,
        baseline_events=d_be,
        baseline_exposure=d_bt,
        factor=factor,
    )
    center = GRID_HALF
    log_harm = mixture_log_e(loglik, center, upward=upper)
    log_safe = mixture_log_e(loglik, center, upward=not upper)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = _decide(
        max_harm=_e(max_harm), max_safe=_e(max_safe), alpha=alpha, final=final, fail_only=fail_only
    )
    decided = state.decided_after_s
    if decided is None and outcome is not Outcome.INCONCLUSIVE and not (fail_only and final):
        decided = elapsed_s
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
    )
    low_i, high_i = _confidence_indices(loglik, math.log(1.0 / alpha))
    ci_low = None if low_i <= 0 else factor * _grid_ratio(low_i - GRID_HALF)
    ci_high = (
        None
        if high_i < 0 or high_i >= len(loglik) - 1
        else factor * _grid_ratio(high_i - GRID_HALF)
    )
    if low_i == 0:
        ci_low = 0.0
    canary_rate = canary_events / canary_trials if canary_trials > 0 else math.nan
    baseline_rate = baseline_events / baseline_trials if baseline_trials > 0 else math.nan
    estimate = canary_rate / baseline_rate if baseline_rate > 0 else None
    if rates:
        rates_text = f"canary {name} {_fmt_pct(canary_rate)} vs baseline {_fmt_pct(baseline_rate)}"
        n_text = f"n={_fmt_n(canary_trials)} canary / {_fmt_n(baseline_trials)} baseline"
        n_canary, n_baseline = canary_trials, baseline_trials
    else:
        rates_text = f"canary {_fmt_n(canary_events)} vs baseline {_fmt_n(baseline_events)} events"
        n_text = f"events={_fmt_n(canary_events + baseline_events)}"
        n_canary, n_baseline = canary_events, baseline_events
    interval = f"{_fmt_level(alpha)} CS {_fmt_ratio(ci_low)}{_DASH}{_fmt_ratio(ci_high)}"
    ratio_text = "" if estimate is None else f"{_fmt_ratio(estimate)}, "
    bound_text = f"bound {op} {_fmt_ratio(factor)}"
    evidence = _evidence_text(_e(max_harm), _e(max_safe), alpha)
    explanation = _explain(
        f"{rates_text} ({ratio_text}{interval}; {bound_text})",
        evidence,
        n_text,
        word,
        collecting=collecting,
        fail_only=fail_only,
        waiting_head=f"{rates_text} ({ratio_text}{interval})",
    )
    return new_state, JudgeResult(
        outcome=outcome,
        test="counts",
        explanation=explanation,
        alpha=alpha,
        e_value=_e(max_harm),
        e_value_pass=_e(max_safe),
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        effect="rate ratio canary/baseline",
        n_canary=n_canary,
        n_baseline=n_baseline,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
    )


def _explain(
    head: str,
    evidence: str,
    n_text: str,
    word: str,
    *,
    collecting: bool,
    fail_only: bool,
    waiting_head: str | None = None,
) -> str:
    """The verdict's one line, the same shape for every test: what was seen, the
    evidence, and either the decision or that evidence is still being collected."""
    if not collecting:
        return f"{head}, {evidence} after {n_text}: {word}"
    text = f"collecting evidence: {n_text}; {waiting_head or head}, {evidence}"
    if fail_only:
        text += "; fail-only: PASS at the phase's last checkpoint unless harm shows"
    return text


def _evidence_text(e_harm: float, e_safe: float, alpha: float) -> str:
    threshold = 1.0 / alpha
    if e_harm >= threshold:
        return f"e={_fmt_e(e_harm)} ≥ 1/{_ALPHA}={_fmt_e(threshold)}"
    if e_safe >= threshold:
        return f"e(pass)={_fmt_e(e_safe)} ≥ 1/{_ALPHA}={_fmt_e(threshold)}"
    return f"e={_fmt_e(e_harm)}, e(pass)={_fmt_e(e_safe)} < 1/{_ALPHA}={_fmt_e(threshold)}"


# --------------------------------------------------------------------------- bound


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


def bound_log_e(events: float, trials: float, bound: float, *, above: bool) -> float:
    """log of the mixture e-value that the event rate is above (``above``) or below the
    ``bound``: half-normal prior on ``log(p / bound)`` over the grid (points past 0 or 1
    dropped, which only makes it conservative); ``below`` also puts the weight of the
    farthest grid point on ``p = 0``, the only alternative zero events can support."""
    terms = []
    weights = _UP_WEIGHTS if above else _DOWN_WEIGHTS
    for k, w in weights:
        p = bound * _grid_ratio(k)
        if not 0.0 < p < 1.0:
            continue
        terms.append(w + _bernoulli_log_lr(events, trials, p, bound))
    if not above:
        terms.append(weights[-1][1] + _bernoulli_log_lr(events, trials, 0.0, bound))
    return log_sum_exp(terms)


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


def _rate_interval(events: float, trials: float, alpha: float) -> tuple[float, float]:
    """The ``1 - alpha`` confidence sequence on the rate (beta-binomial mixture), by
    bisection on each side of the estimate (the Bayes factor grows monotonically away
    from it)."""
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
        return inside

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
) -> tuple[BoundState, JudgeResult]:
    """One look of "events/trials OP bound" (``error_rate < 0.005`` with error counts;
    ``availability > 0.9995`` with success counts), counts cumulative since the phase
    started. FAIL needs evidence the bound is violated, PASS evidence it holds; with
    ``fail_only`` the phase's last look (``final``) passes without evidence of harm."""
    _check_alpha(alpha)
    if not 0.0 < bound < 1.0:
        raise ValueError(f"a rate bound must be in (0, 1), got {bound!r}")
    upper = _upper_ops(op)
    if state is None:
        state = BoundState(bound=bound, op=op)
    elif state.bound != bound or state.op != op:
        raise ValueError("this state belongs to a different criterion (bound or op differ)")
    looks = state.looks + 1
    if not _finite_nonneg(events, trials):
        return state, _invalid("bound", alpha, "counts are missing, negative or NaN", looks)
    if events > trials:
        return state, _invalid("bound", alpha, "more events than trials", looks)
    if events < state.events or trials < state.trials:
        return state, _invalid(
            "bound", alpha, "cumulative counts went backwards (counter reset?)", looks
        )
    # work with "bad" events so that harm is always "rate above the bound"
    bad, limit = (events, bound) if upper else (trials - events, 1.0 - bound)
    log_harm = bound_log_e(bad, trials, limit, above=True)
    log_safe = bound_log_e(bad, trials, limit, above=False)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = _decide(
        max_harm=_e(max_harm), max_safe=_e(max_safe), alpha=alpha, final=final, fail_only=fail_only
    )
    decided = state.decided_after_s
    if decided is None and outcome is not Outcome.INCONCLUSIVE and not (fail_only and final):
        decided = elapsed_s
    new_state = attrs.evolve(
        state,
        events=events,
        trials=trials,
        max_log_e_harm=max_harm,
        max_log_e_safe=max_safe,
        looks=looks,
        decided_after_s=decided,
    )
    low, high = _rate_interval(bad, trials, alpha)
    if not upper:
        low, high = 1.0 - high, 1.0 - low
    estimate = events / trials if trials > 0 else None
    shown = "no data" if estimate is None else _fmt_pct(estimate)
    interval = f"{_fmt_level(alpha)} CS {_fmt_pct(low)}{_DASH}{_fmt_pct(high)}"
    evidence = _evidence_text(_e(max_harm), _e(max_safe), alpha)
    n_text = f"n={_fmt_n(trials)}"
    head = f"{name} {shown} ({interval}; bound {op} {bound * 100:.6g}%)"
    explanation = _explain(head, evidence, n_text, word, collecting=collecting, fail_only=fail_only)
    return new_state, JudgeResult(
        outcome=outcome,
        test="bound",
        explanation=explanation,
        alpha=alpha,
        e_value=_e(max_harm),
        e_value_pass=_e(max_safe),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        effect="rate",
        n_canary=trials,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
    )


# --------------------------------------------------------------------------- means


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
        is 0; the ``+Inf`` bucket's observations at the last finite bound, which
        understates a heavy tail -- the means test then errs towards "no difference").
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
    max_log_e_harm: float = 0.0
    max_log_e_safe: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :func:`state_from_dict` reads it back."""
        out = attrs.asdict(self)
        out["test"] = "means"
        return out


def _rho_squared(target_n: float, alpha: float) -> float:
    """Mixture variance that makes the normal-mixture boundary tightest at ``target_n``
    (Howard et al. 2021, eq. 3.5)."""
    log_inv = -2.0 * math.log(alpha)
    return (log_inv + math.log(log_inv + 1.0)) / target_n


def normal_mixture_log_e(z: float, t: float, rho2: float, *, one_sided: bool) -> float:
    """log of the Gaussian-mixture martingale at standardised sum ``S = z * sqrt(t)``
    after ``t`` observations: ``∫ exp(λS - λ²t/2) dN(λ; 0, ρ²)`` in closed form;
    ``one_sided`` mixes over a half-normal on λ > 0 (evidence that the drift is positive)."""
    s = z * math.sqrt(t)
    grow = 1.0 + rho2 * t
    base = rho2 * s * s / (2.0 * grow) - 0.5 * math.log(grow)
    if not one_sided:
        return base
    return math.log(2.0) + base + log_normal_cdf(math.sqrt(rho2) * s / math.sqrt(grow))


def _means_z(
    canary: Moments, baseline: Moments, factor: float, offset: float
) -> tuple[float, float]:
    """(z, effective n) of ``mean_c - factor * mean_b - offset``."""
    variance = canary.variance / canary.n + factor * factor * baseline.variance / baseline.n
    difference = canary.mean - factor * baseline.mean - offset
    if variance <= 0:
        return (math.copysign(math.inf, difference) if difference else 0.0, math.inf)
    reference = max(canary.variance, baseline.variance * factor * factor)
    return (difference / math.sqrt(variance), reference / variance)


def judge_means(
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
    target_n: float = MEANS_TARGET_N,
    min_samples: int = MIN_MEANS_SAMPLES,
    name: str = "mean",
) -> tuple[MeansState, JudgeResult]:
    """One look of "mean canary OP mean baseline * factor + offset" (``revenue >=
    baseline * 1.058``, ``latency <= baseline * 1.2``), with cumulative moments.

    Asymptotic: the statistic ``mean_c - factor mean_b - offset`` over its estimated
    standard error behaves like a Brownian motion in information time, and the
    Gaussian-mixture martingale of that motion is the e-process; below ``min_samples``
    per arm the CLT is not trusted and the verdict is "collecting evidence".
    """
    _check_alpha(alpha)
    upper = _upper_ops(op)
    if state is None:
        state = MeansState(factor=factor, offset=offset, op=op)
    elif (state.factor, state.offset, state.op) != (factor, offset, op):
        raise ValueError("this state belongs to a different criterion (factor, offset or op)")
    looks = state.looks + 1
    for arm in (canary, baseline):
        if not all(math.isfinite(v) for v in (arm.n, arm.total, arm.total_sq)) or arm.n < 0:
            return state, _invalid("means", alpha, "moments are missing, negative or NaN", looks)
    n_text = f"n={_fmt_n(canary.n)} canary / {_fmt_n(baseline.n)} baseline"
    if min(canary.n, baseline.n) < max(2, min_samples):
        result = JudgeResult(
            outcome=Outcome.INCONCLUSIVE,
            test="means",
            explanation=f"collecting evidence: {n_text} (need {min_samples} per arm)",
            alpha=alpha,
            e_value=_e(state.max_log_e_harm),
            e_value_pass=_e(state.max_log_e_safe),
            n_canary=canary.n,
            n_baseline=baseline.n,
            looks=looks,
            collecting=True,
        )
        return attrs.evolve(state, looks=looks), result
    rho2 = _rho_squared(target_n, alpha)
    z, t = _means_z(canary, baseline, factor, offset)
    if math.isinf(t):  # no variance at all: the data are constants
        log_harm = _MAX_LOG_E if (z > 0) == upper and z != 0 else 0.0
        log_safe = _MAX_LOG_E if (z < 0) == upper and z != 0 else 0.0
    else:
        harm_z = z if upper else -z
        log_harm = normal_mixture_log_e(harm_z, t, rho2, one_sided=True)
        log_safe = normal_mixture_log_e(-harm_z, t, rho2, one_sided=True)
    max_harm = max(state.max_log_e_harm, log_harm)
    max_safe = max(state.max_log_e_safe, log_safe)
    outcome, word, collecting = _decide(
        max_harm=_e(max_harm), max_safe=_e(max_safe), alpha=alpha, final=final, fail_only=fail_only
    )
    decided = state.decided_after_s
    if decided is None and outcome is not Outcome.INCONCLUSIVE and not (fail_only and final):
        decided = elapsed_s
    new_state = attrs.evolve(
        state,
        max_log_e_harm=max_harm,
        max_log_e_safe=max_safe,
        looks=looks,
        decided_after_s=decided,
    )
    ratio_form = offset == 0.0 and baseline.mean > 0
    if ratio_form:
        estimate: float | None = canary.mean / baseline.mean
        low, high = _ratio_interval(canary, baseline, alpha, rho2)
        shown = f"{_TIMES}{estimate:.3g}"
        interval = f"{_fmt_level(alpha)} CS {_TIMES}{low:.3g}{_DASH}{_TIMES}{high:.3g}"
        bound_text = f"bound {op} {_TIMES}{factor:.4g}"
        effect = "ratio of means canary/baseline"
    else:
        estimate = canary.mean - baseline.mean
        low, high = _difference_interval(canary, baseline, alpha, rho2)
        shown = f"Δ{estimate:+.4g}"
        interval = f"{_fmt_level(alpha)} CS {low:+.4g}{_DASH}{high:+.4g}"
        bound_text = f"bound {op} baseline {_TIMES} {factor:.4g} {offset:+.4g}"
        effect = "difference of means canary-baseline"
    head = (
        f"canary {name} {canary.mean:.4g} vs baseline {baseline.mean:.4g} "
        f"({shown}, {interval}; {bound_text})"
    )
    evidence = _evidence_text(_e(max_harm), _e(max_safe), alpha)
    explanation = _explain(head, evidence, n_text, word, collecting=collecting, fail_only=fail_only)
    return new_state, JudgeResult(
        outcome=outcome,
        test="means",
        explanation=explanation,
        alpha=alpha,
        e_value=_e(max_harm),
        e_value_pass=_e(max_safe),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        effect=effect,
        n_canary=canary.n,
        n_baseline=baseline.n,
        looks=looks,
        decided_after_s=decided,
        collecting=collecting,
    )


def _two_sided_rejects(
    canary: Moments, baseline: Moments, factor: float, offset: float, alpha: float, rho2: float
) -> bool:
    z, t = _means_z(canary, baseline, factor, offset)
    if math.isinf(t):
        return z != 0
    return normal_mixture_log_e(z, t, rho2, one_sided=False) >= math.log(1.0 / alpha)


def _difference_interval(
    canary: Moments, baseline: Moments, alpha: float, rho2: float
) -> tuple[float, float]:
    """The confidence sequence on ``mean_c - mean_b`` (closed form)."""
    variance = canary.variance / canary.n + baseline.variance / baseline.n
    center = canary.mean - baseline.mean
    if variance <= 0:
        return (center, center)
    reference = max(canary.variance, baseline.variance)
    t = reference / variance
    grow = 1.0 + rho2 * t
    # |S| < sqrt(2 grow / rho2 * log(sqrt(grow)/alpha)), S = z sqrt(t)
    half_s = math.sqrt(2.0 * grow / rho2 * (0.5 * math.log(grow) + math.log(1.0 / alpha)))
    half = half_s / math.sqrt(t) * math.sqrt(variance)
    return (center - half, center + half)


def _ratio_interval(
    canary: Moments, baseline: Moments, alpha: float, rho2: float
) -> tuple[float, float]:
    """The confidence sequence on ``mean_c / mean_b``: the factors whose two-sided test
    does not reject, by bisection outwards from the estimate (Fieller-style inversion)."""
    estimate = canary.mean / baseline.mean

    def rejects(factor: float) -> bool:
        return _two_sided_rejects(canary, baseline, factor, 0.0, alpha, rho2)

    def search(inside: float, outside: float) -> float:
        if not rejects(outside):
            return outside
        for _ in range(60):
            middle = 0.5 * (inside + outside)
            if rejects(middle):
                outside = middle
            else:
                inside = middle
        return inside

    low = search(estimate, 0.0) if estimate > 0 else estimate
    high = search(estimate, max(estimate, 1e-9) * 1e3)
    return (low, high)


# --------------------------------------------------------------------------- journal


def state_from_dict(data: Mapping[str, Any]) -> CountsState | BoundState | MeansState:
    """Read back a state written by ``to_dict`` (the run journal stores them)."""
    raw = dict(data)
    test = raw.pop("test", None)
    if test == "counts":
        raw["loglik"] = tuple(float(v) for v in raw["loglik"])
        if len(raw["loglik"]) != 2 * GRID_HALF + 1:
            raise ValueError("a counts state from a different grid")
        return CountsState(**raw)
    if test == "bound":
        return BoundState(**raw)
    if test == "means":
        return MeansState(**raw)
    raise ValueError(f"unknown judge state {test!r}")
