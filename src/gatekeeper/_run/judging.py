"""Judging: one function per gate, one evaluator per criterion kind.

Sources only measure; every verdict is made here (Argo's ``evaluate.go``). The
sequential tests of ``compare`` criteria carry their state across a phase's
checkpoints; :func:`judge_gate` returns the new states for the caller to journal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from .._criteria import judge_relative, judge_stable, judge_threshold
from .._model import (
    Criterion,
    GateResult,
    Kind,
    Measurement,
    Metric,
    Outcome,
    Phase,
    Plan,
    Reference,
    Verdict,
)
from .measure import Key

__all__ = [
    "Looked",
    "collecting",
    "compare_verdict",
    "judge_gate",
    "relative_verdict",
    "share_over",
    "short_reason",
    "summarize",
]


@attrs.frozen(kw_only=True)
class Looked:
    """The outcome of judging a gate once."""

    result: GateResult
    # criterion index -> the sequential test's state after this look
    judges: Mapping[int, Any]


def judge_gate(
    plan: Plan,
    phase: Phase,
    checkpoint: str,
    measured: Mapping[Key, Measurement],
    *,
    at: datetime,
    started_at: datetime,
    attempt: int,
    last: bool,
    share: float | None,
    prerun: Mapping[str, Measurement],
    history: Mapping[str, list[tuple[datetime, float]]],
    judges: Mapping[int, Any],
    budget: Any = None,
    shares: Sequence[tuple[float, float]] = (),
    looks: Mapping[int, float] | None = None,
) -> Looked:
    """Every criterion of the phase's gate, judged on the measurements taken."""
    since_start = at - started_at
    verdicts: list[Verdict] = []
    states: dict[int, Any] = {}
    for index, criterion in enumerate(phase.gate.criteria):
        metric = plan.metrics[criterion.metric]
        canary = measured[(metric.name, "canary", False)]
        if criterion.kind in (Kind.THRESHOLD, Kind.COUNT):
            verdicts.append(judge_threshold(criterion, metric, canary))
        elif criterion.kind is Kind.RELATIVE:
            verdicts.append(relative_verdict(criterion, metric, measured, prerun))
        elif criterion.kind is Kind.STABLE:
            verdicts.append(_stable(criterion, metric, measured, history, at, since_start, canary))
        else:
            baseline = measured.get((metric.name, "baseline", False))
            verdict, state = compare_verdict(
                phase,
                index,
                metric,
                canary,
                baseline,
                prior=judges.get(index),
                elapsed_s=since_start.total_seconds(),
                last=last,
                share=_split(shares, (looks or {}).get(index, 0.0), since_start, share),
                budget=budget,
            )
            if state is not None:
                states[index] = state
            verdicts.append(verdict)
    result = GateResult(
        phase=phase.name, checkpoint=checkpoint, at=at, verdicts=tuple(verdicts), attempt=attempt
    )
    return Looked(result=result, judges=states)


def relative_verdict(
    criterion: Criterion,
    metric: Metric,
    measured: Mapping[Key, Measurement],
    prerun: Mapping[str, Measurement],
) -> Verdict:
    """``metric OP baseline * f`` or ``OP prerun * f``, on the reference it names."""
    reference = (
        measured.get((metric.name, "baseline", False))
        if criterion.reference is Reference.BASELINE
        else prerun.get(metric.name)
    )
    return judge_relative(criterion, metric, measured[(metric.name, "canary", False)], reference)


def _stable(
    criterion: Criterion,
    metric: Metric,
    measured: Mapping[Key, Measurement],
    history: Mapping[str, list[tuple[datetime, float]]],
    at: datetime,
    since_start: timedelta,
    canary: Measurement,
) -> Verdict:
    ranged = measured.get((metric.name, "canary", True))
    if ranged is not None:
        return judge_stable(criterion, metric, [v for _, v in ranged.series], ranged)
    window = criterion.window or since_start
    values = [v for t, v in history.get(metric.name, []) if t >= at - window]
    if canary.value is not None and canary.problem is None:
        values.append(canary.value)
    return judge_stable(criterion, metric, values, canary)


def compare_verdict(
    phase: Phase,
    index: int,
    metric: Metric,
    canary: Measurement,
    baseline: Measurement | None,
    *,
    prior: Any,
    elapsed_s: float,
    last: bool,
    share: Any,
    budget: Any,
) -> tuple[Verdict, Any]:
    """The anytime-valid judge (``_judge``); returns the verdict and its new state."""
    from .. import _judge as judge  # noqa: PLC0415 - only plans with compare need it

    criterion = phase.gate.criteria[index]
    measurements = (canary,) if baseline is None else (canary, baseline)

    def inconclusive(reason: str) -> tuple[Verdict, Any]:
        verdict = Verdict(
            criterion=criterion,
            outcome=Outcome.INCONCLUSIVE,
            reason=reason,
            measurements=measurements,
        )
        return verdict, None

    common: dict[str, Any] = {
        "final": last,
        "fail_only": criterion.fail_only,
        "elapsed_s": elapsed_s,
        "name": metric.name,
        **_alpha(judge, budget, phase, index),
    }
    assert criterion.op is not None
    new: Any
    try:
        if criterion.reference is None:
            assert criterion.bound is not None
            if canary.numerator is None or canary.denominator is None:
                return inconclusive(
                    canary.problem
                    or "a statistical bound needs counts: give the metric a numerator and "
                    "a denominator"
                )
            new, result = judge.judge_bound(
                prior,
                canary.numerator,
                canary.denominator,
                bound=_as_ratio(criterion.bound, metric),
                op=criterion.op,
                **common,
            )
        elif baseline is None:
            return inconclusive("no baseline measurement")
        elif canary.moments is not None and baseline.moments is not None:
            new, result = judge.judge_means(
                prior,
                _moments(judge, canary.moments),
                _moments(judge, baseline.moments),
                factor=criterion.factor,
                offset=criterion.offset,
                op=criterion.op,
                bounds=metric.bounds,
                **common,
            )
        else:
            counts = [_counts(canary), _counts(baseline)]
            if counts[0] is None or counts[1] is None:
                problem = canary.problem or (baseline.problem and f"baseline: {baseline.problem}")
                return inconclusive(
                    problem or "compare needs counts (numerator/denominator or a count metric)"
                )
            (c_events, c_trials), (b_events, b_trials) = counts[0], counts[1]
            new, result = judge.judge_counts(
                prior,
                c_events,
                c_trials,
                b_events,
                b_trials,
                factor=criterion.factor,
                op=criterion.op,
                split=share,
                dispersion=metric.dispersion,
                bursts=_bursts(judge, metric),
                **common,
            )
    except ValueError as exc:  # counts that cannot be (negative, more events than trials)
        return inconclusive(f"unusable counts: {exc}")
    verdict = Verdict(
        criterion=criterion,
        outcome=result.outcome,
        reason=result.explanation,
        observed=result.estimate,
        bound=criterion.bound,
        measurements=measurements,
        evidence={**result.as_evidence(), "collecting": result.collecting},
    )
    return verdict, new


def summarize(result: GateResult) -> str:
    """One line: the criteria that decided the gate's outcome."""
    outcome = result.outcome
    if outcome is Outcome.PASS:
        count = len(result.verdicts)
        return "the criterion passed" if count == 1 else f"all {count} criteria passed"
    deciding = [v for v in result.verdicts if v.outcome is outcome]
    # The statistical evidence (e-values, sample sizes) stays in the verdict; the
    # one-line summary keeps what a person needs to act on.
    return "; ".join(f"{v.criterion.label}: {short_reason(v)}" for v in deciding)


_EVIDENCE = re.compile(r", e(?:\(pass\))?=")


def short_reason(verdict: Verdict) -> str:
    """A verdict's reason without the statistical evidence that follows what was seen
    (``, e=…`` or ``, e(pass)=…``) nor a "collecting evidence" the decision says
    itself: the part a decision's one line repeats."""
    if verdict.criterion.kind is not Kind.COMPARE:
        return verdict.reason
    return _EVIDENCE.split(verdict.reason, maxsplit=1)[0].removeprefix("collecting evidence: ")


def collecting(result: GateResult) -> bool:
    """True when the gate is inconclusive only because sequential tests are still
    collecting evidence (no missing data, no errors)."""
    pending = [v for v in result.verdicts if v.outcome is Outcome.INCONCLUSIVE]
    return bool(pending) and all(v.evidence.get("collecting") is True for v in pending)


def _alpha(judge: Any, budget: Any, phase: Phase, index: int) -> dict[str, float]:
    """The criterion's level from the rollout's budget (and what is spent through this
    phase), or the gate's own split when judged outside a rollout."""
    if budget is None:
        return {"alpha": judge.criterion_alpha(phase.gate, index)}
    return {
        "alpha": budget.alpha(phase.name, index),
        "alpha_spent": budget.spent_through(phase.name),
        "alpha_budget": budget.total,
    }


def share_over(state: Any, index: int, since_start: timedelta) -> Any:
    """The shares in force over a phase's compare criterion ``index`` since its last
    look (``state`` a ``PhaseState``)."""
    share = state.traffic if state.traffic is not None else state.phase.traffic
    return _split(state.shares, state.looks.get(index, 0.0), since_start, share)


def _split(
    shares: Sequence[tuple[float, float]], since: float, until: timedelta, share: float | None
) -> Any:
    """The shares in force over (since, until] as ``[(percent, seconds), ...]``; the
    single share when the phase's shares are unknown (judge only, a one-off check)."""
    if not shares:
        return share
    from .._judge import split_segments  # noqa: PLC0415

    end = until.total_seconds()
    return split_segments(shares, since=min(since, end), until=end) or share


def _as_ratio(bound: float, metric: Metric) -> float:
    """A bound in the metric's unit as a rate in (0, 1) (``percent`` metrics are x100)."""
    return bound / 100.0 if metric.unit == "percent" else bound


def _bursts(judge: Any, metric: Metric) -> Any:
    if metric.bursts is None:
        return None
    size, lasting = metric.bursts
    return judge.Bursts(size=size, lasting_s=lasting.total_seconds())


def _moments(judge: Any, moments: tuple[float, float, float]) -> Any:
    n, total, total_sq = moments
    return judge.Moments(n=n, total=total, total_sq=total_sq)


def _counts(m: Measurement) -> tuple[float, float | None] | None:
    """(events, trials) of a measurement: a ratio's two counts, or a bare count."""
    if m.numerator is not None and m.denominator is not None:
        return m.numerator, m.denominator
    if m.problem is None and m.value is not None:
        return m.value, None
    return None
