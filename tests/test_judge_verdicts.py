"""The judge's verdicts: what FAILs, what PASSes, what keeps collecting evidence, and the
one-line explanation that says why."""

from __future__ import annotations

import json
import math
import random

import pytest

from gatekeeper import _judge
from gatekeeper._model import Criterion, Gate, Kind, Outcome, Reference


def _feed(
    looks: int,
    *,
    canary_rate: float,
    baseline_rate: float,
    per_look: int = 2000,
    share: float = 0.1,
    factor: float = 1.0,
    seed: int = 1,
) -> tuple[_judge.CountsState, _judge.JudgeResult]:
    """Binomial errors for both arms, cumulative counts fed look by look."""
    rng = random.Random(seed)
    state: _judge.CountsState | None = None
    ce = ct = be = bt = 0
    result = None
    for look in range(looks):
        nc = int(per_look * share)
        nb = per_look - nc
        ct += nc
        bt += nb
        ce += sum(rng.random() < canary_rate for _ in range(nc))
        be += sum(rng.random() < baseline_rate for _ in range(nb))
        state, result = _judge.judge_counts(
            state, ce, ct, be, bt, alpha=0.01, factor=factor, elapsed_s=5.0 * (look + 1)
        )
    assert state is not None
    assert result is not None
    return state, result


def test_a_clearly_worse_canary_fails_with_its_evidence() -> None:
    """A canary at 5 times the baseline's error rate fails, and the verdict says by how
    much, with an interval that excludes 1, the e-value and the sample size."""
    _, result = _feed(60, canary_rate=0.02, baseline_rate=0.004)
    assert result.outcome is Outcome.FAIL
    assert result.e_value >= 100
    assert result.p_value <= 0.01
    assert result.ci_low is not None
    assert result.ci_low > 1.0
    assert result.estimate is not None
    assert result.estimate > 2.0
    assert result.decided_after_s is not None
    assert result.decided_after_s <= 300.0
    assert result.explanation.startswith("canary error rate ")
    assert "e=" in result.explanation
    assert "≥ 1/α=100" in result.explanation
    assert result.explanation.endswith(": FAIL")
    json.dumps(result.as_evidence())


def test_little_data_is_collecting_evidence_never_pass() -> None:
    """A healthy canary after a few looks is INCONCLUSIVE ("collecting evidence: n=...")."""
    _, result = _feed(3, canary_rate=0.002, baseline_rate=0.002)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.collecting
    assert result.explanation.startswith("collecting evidence: n=600 canary / 5,400 baseline")


def test_a_healthy_canary_within_tolerance_passes_with_enough_data() -> None:
    """With a 50 % tolerance and plenty of data, a canary no worse than the baseline
    earns a PASS: evidence that its rate is below baseline × 1.5."""
    _, result = _feed(150, canary_rate=0.01, baseline_rate=0.01, share=0.5, factor=1.5)
    assert result.outcome is Outcome.PASS
    assert result.e_value_pass >= 100
    assert result.ci_high is not None
    assert result.ci_high < 1.5
    assert result.explanation.endswith(": PASS")


def test_a_fail_stays_a_fail_when_later_data_look_better() -> None:
    """The decision uses the running maximum: once the evidence crossed 1/alpha the
    verdict stays FAIL even if the canary then recovers."""
    state, result = _feed(40, canary_rate=0.03, baseline_rate=0.003)
    assert result.outcome is Outcome.FAIL
    ce, ct, be, bt = (
        state.canary_events,
        state.canary_trials,
        state.baseline_events,
        state.baseline_trials,
    )
    state, later = _judge.judge_counts(state, ce, ct + 50_000, be + 5, bt + 50_000, alpha=0.01)
    assert later.outcome is Outcome.FAIL
    assert later.decided_after_s == result.decided_after_s


def test_fail_only_passes_at_the_horizon_without_evidence_of_harm() -> None:
    """fail-only: no harm yet is INCONCLUSIVE before the last look and PASS at it."""
    counts = (2, 1000, 20, 9000)
    _, middle = _judge.judge_counts(None, *counts, alpha=0.01, fail_only=True)
    _, last = _judge.judge_counts(None, *counts, alpha=0.01, fail_only=True, final=True)
    assert middle.outcome is Outcome.INCONCLUSIVE
    assert "fail-only" in middle.explanation
    assert last.outcome is Outcome.PASS
    assert "no evidence of harm" in last.explanation
    assert last.decided_after_s is None


def test_fail_only_still_fails_on_harm() -> None:
    """fail-only never turns evidence of harm into a PASS, even at the last look."""
    _, result = _judge.judge_counts(
        None, 60, 1000, 40, 9000, alpha=0.01, fail_only=True, final=True
    )
    assert result.outcome is Outcome.FAIL


def test_a_lower_is_worse_criterion_fails_on_a_lower_canary() -> None:
    """With ``>=`` (conversions: canary >= baseline) a canary converting at half the
    baseline's rate fails, and one converting more does not."""
    _, low = _judge.judge_counts(None, 100, 10_000, 1800, 90_000, alpha=0.01, op=">=")
    _, high = _judge.judge_counts(None, 250, 10_000, 1800, 90_000, alpha=0.01, op=">=")
    assert low.outcome is Outcome.FAIL
    assert high.outcome is not Outcome.FAIL


def test_bare_event_counts_use_the_traffic_split() -> None:
    """Crashes without request counts are judged against the split: 30 canary crashes
    against 30 baseline ones at 10 % canary traffic is harm."""
    _, result = _judge.judge_counts(None, 30, None, 30, None, alpha=0.01, split=10.0)
    assert result.outcome is Outcome.FAIL
    assert "events" in result.explanation
    _, missing = _judge.judge_counts(None, 30, None, 30, None, alpha=0.01)
    assert missing.outcome is Outcome.INCONCLUSIVE
    assert not missing.collecting


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ((math.nan, 100, 1, 1000), "missing"),
        ((5, 4, 1, 1000), "more events than trials"),
    ],
)
def test_unusable_counts_are_inconclusive_and_keep_the_state(
    counts: tuple[float, float, float, float], reason: str
) -> None:
    """NaN or impossible counts are INCONCLUSIVE with a reason, and the state is handed
    back unchanged so the next good look continues the test."""
    state, _ = _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01)
    after, result = _judge.judge_counts(state, *counts, alpha=0.01)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert reason in result.explanation
    assert after == state


def test_counts_that_go_backwards_stay_inconclusive_for_the_phase() -> None:
    """Cumulative counts that shrink are not cumulative (a sliding window): the look and
    every later one of the phase are INCONCLUSIVE, so no increment is ever made of them."""
    state, _ = _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01)
    state, result = _judge.judge_counts(state, 1, 50, 1, 1000, alpha=0.01)
    assert Outcome.INCONCLUSIVE == result.outcome
    assert "went backwards" in result.explanation
    assert "sliding window" in result.explanation
    state, later = _judge.judge_counts(state, 900, 2000, 2, 20_000, alpha=0.01)
    assert Outcome.INCONCLUSIVE == later.outcome
    assert not later.collecting
    assert "went backwards" in later.explanation


def test_a_state_refuses_a_different_criterion() -> None:
    """Feeding a state to a criterion with another tolerance is a programming error."""
    state, _ = _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01, factor=1.2)
    with pytest.raises(ValueError, match="different criterion"):
        _judge.judge_counts(state, 1, 100, 2, 1000, alpha=0.01, factor=1.0)


def test_bound_fails_on_an_error_rate_above_the_bound() -> None:
    """error_rate < 0.5 %: 2 % errors out of 5,000 requests is FAIL."""
    _, result = _judge.judge_bound(None, 100, 5000, bound=0.005, op="<", alpha=0.01)
    assert result.outcome is Outcome.FAIL
    assert result.ci_low is not None
    assert result.ci_low > 0.005


def test_bound_passes_an_error_rate_well_below_the_bound() -> None:
    """error_rate < 0.5 %: 0.1 % errors out of 20,000 requests is evidence the bound holds."""
    _, result = _judge.judge_bound(None, 20, 20_000, bound=0.005, op="<", alpha=0.01)
    assert result.outcome is Outcome.PASS
    assert result.ci_high is not None
    assert result.ci_high < 0.005


def test_one_hour_of_probes_cannot_prove_three_and_a_half_nines() -> None:
    """availability > 99.95 %: 3,600 successful probes are not evidence enough (the
    verdict keeps collecting), and a fail-only criterion passes at the horizon."""
    _, result = _judge.judge_bound(None, 3600, 3600, bound=0.9995, op=">", alpha=0.01)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.collecting
    _, final = _judge.judge_bound(
        None, 3600, 3600, bound=0.9995, op=">", alpha=0.01, fail_only=True, final=True
    )
    assert final.outcome is Outcome.PASS


def test_availability_below_the_bound_fails() -> None:
    """availability > 99.95 %: 20 failed probes out of 3,600 is FAIL."""
    _, result = _judge.judge_bound(None, 3580, 3600, bound=0.9995, op=">", alpha=0.01)
    assert result.outcome is Outcome.FAIL
    assert "bound > 99.95%" in result.explanation


def _clipped(values: list[float], hi: float) -> _judge.Moments:
    return _judge.Moments.of([min(v, hi) for v in values])


def test_means_pass_a_lift_above_the_required_one() -> None:
    """revenue >= baseline * 1.058 on values clipped to [0, 40]: a 30 % lift on plenty
    of users is a PASS whose interval on the ratio lies above 1.058."""
    rng = random.Random(3)
    canary = _clipped([rng.gauss(13.0, 3.0) for _ in range(6000)], 40.0)
    baseline = _clipped([rng.gauss(10.0, 3.0) for _ in range(30_000)], 40.0)
    _, result = _judge.judge_means(
        None, canary, baseline, alpha=0.01, factor=1.058, op=">=", bounds=(0.0, 40.0)
    )
    assert Outcome.PASS == result.outcome
    assert result.ci_low is not None
    assert result.ci_low > 1.058


def test_means_fail_a_slower_canary() -> None:
    """mean latency canary <= baseline on values clipped to [0, 10]: 50 % slower on
    skewed data is FAIL."""
    rng = random.Random(4)
    canary = _clipped([rng.lognormvariate(0, 0.6) * 1.5 for _ in range(4000)], 10.0)
    baseline = _clipped([rng.lognormvariate(0, 0.6) for _ in range(20_000)], 10.0)
    _, result = _judge.judge_means(
        None, canary, baseline, alpha=0.01, name="latency", bounds=(0.0, 10.0)
    )
    assert Outcome.FAIL == result.outcome
    assert result.explanation.startswith("canary latency ")


def test_means_without_bounds_are_refused_with_the_reason() -> None:
    """A mean of values with no declared bounds is INCONCLUSIVE (not collecting: more
    data will not help), saying what the metric needs."""
    rng = random.Random(5)
    values = [rng.lognormvariate(0, 1.5) for _ in range(5000)]
    _, result = _judge.judge_means(
        None, _judge.Moments.of(values), _judge.Moments.of(values[:100]), alpha=0.01
    )
    assert Outcome.INCONCLUSIVE == result.outcome
    assert not result.collecting
    assert "declare the metric's bounds" in result.explanation


def test_means_outside_their_bounds_are_refused() -> None:
    """Moments that no values inside the declared bounds can give are INCONCLUSIVE."""
    canary = _judge.Moments.of([1.0, 2.0, 50.0])
    baseline = _judge.Moments.of([1.0, 2.0, 3.0])
    _, result = _judge.judge_means(None, canary, baseline, alpha=0.01, bounds=(0.0, 10.0))
    assert Outcome.INCONCLUSIVE == result.outcome
    assert "outside the declared bounds" in result.explanation


def test_means_with_too_few_samples_are_collecting() -> None:
    """Below the minimum sample per arm the verdict is collecting evidence."""
    _, result = _judge.judge_means(
        None,
        _judge.Moments.of([5.0]),
        _judge.Moments.of([1.0] * 50),
        alpha=0.01,
        bounds=(0.0, 10.0),
    )
    assert Outcome.INCONCLUSIVE == result.outcome
    assert result.explanation.startswith("collecting evidence: n=1 canary")


def test_means_with_an_offset_report_the_difference() -> None:
    """With an additive offset the interval is on the difference of the means."""
    rng = random.Random(7)
    canary = _clipped([rng.gauss(110.0, 10.0) for _ in range(6000)], 200.0)
    baseline = _clipped([rng.gauss(100.0, 10.0) for _ in range(6000)], 200.0)
    _, result = _judge.judge_means(
        None, canary, baseline, alpha=0.01, offset=2.0, op="<=", bounds=(0.0, 200.0)
    )
    assert Outcome.FAIL == result.outcome
    assert result.effect.startswith("difference")
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low < 10.0 < result.ci_high


def _criterion(text: str, alpha: float | None = None) -> Criterion:
    return Criterion(
        text=text,
        kind=Kind.COMPARE,
        metric="error_rate",
        op="<=",
        reference=Reference.BASELINE,
        alpha=alpha,
    )


def test_gate_alpha_is_split_over_its_compare_criteria() -> None:
    """Bonferroni: two compare criteria of a gate at 0.01 get 0.005 each; a threshold
    criterion takes no share; a criterion's own alpha wins."""
    threshold = Criterion(text="p99 < 200ms", kind=Kind.THRESHOLD, metric="p99", op="<", bound=0.2)
    gate = Gate(
        criteria=(_criterion("a"), threshold, _criterion("b"), _criterion("c", alpha=0.001)),
        alpha=0.01,
    )
    assert _judge.criterion_alpha(gate, 0) == pytest.approx(0.01 / 3)
    assert _judge.criterion_alpha(gate, 3) == 0.001
    assert _judge.split_alpha(0.01, 2) == 0.005
    with pytest.raises(ValueError, match="n_tests"):
        _judge.split_alpha(0.01, 0)


def test_moments_from_a_prometheus_histogram() -> None:
    """Cumulative (le, count) buckets become moments at the bucket midpoints; the +Inf
    bucket counts at the last finite bound; non-cumulative counts are refused."""
    moments = _judge.Moments.from_histogram([(0.1, 2), (0.3, 5), (math.inf, 6)])
    assert moments.n == 6
    assert moments.total == pytest.approx(2 * 0.05 + 3 * 0.2 + 0.3)
    assert moments.total_sq == pytest.approx(2 * 0.05**2 + 3 * 0.2**2 + 0.3**2)
    with pytest.raises(ValueError, match="cumulative"):
        _judge.Moments.from_histogram([(0.1, 5), (math.inf, 3)])
