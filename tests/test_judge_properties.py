"""Properties of the judge's e-processes: non-negative, monotone in the evidence, a
supermartingale with identical arms, and few false alarms in an A/A simulation."""

from __future__ import annotations

import json
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import _judge
from gatekeeper._model import Outcome

_GRID = (0.0,) * (2 * _judge.GRID_HALF + 1)

counts = st.integers(min_value=0, max_value=400)
shares = st.floats(min_value=0.005, max_value=0.5)
factors = st.sampled_from([1.0, 1.2, 2.0])


def _harm_log_e(canary: int, baseline: int, share: float, factor: float) -> float:
    loglik = _judge.counts_loglik_update(
        _GRID,
        canary_events=canary,
        canary_exposure=share,
        baseline_events=baseline,
        baseline_exposure=1 - share,
        factor=factor,
    )
    return _judge.mixture_log_e(loglik, _judge.GRID_HALF, upward=True)


@given(canary=counts, baseline=counts, share=shares, factor=factors)
def test_counts_e_values_are_finite_and_non_negative(
    canary: int, baseline: int, share: float, factor: float
) -> None:
    """Whatever the counts, the e-value is a number >= 0 (its log is not NaN)."""
    log_e = _harm_log_e(canary, baseline, share, factor)
    assert not math.isnan(log_e)
    assert math.exp(min(log_e, 700.0)) >= 0.0


@given(canary=counts, baseline=counts, share=shares, factor=factors)
def test_counts_e_value_grows_with_canary_errors(
    canary: int, baseline: int, share: float, factor: float
) -> None:
    """One more canary error (the rest unchanged) never lowers the evidence of harm;
    one more baseline error never raises it."""
    here = _harm_log_e(canary, baseline, share, factor)
    assert _harm_log_e(canary + 1, baseline, share, factor) >= here - 1e-9
    assert _harm_log_e(canary, baseline + 1, share, factor) <= here + 1e-9


@given(
    events=st.integers(min_value=0, max_value=200),
    trials=st.integers(min_value=200, max_value=20_000),
    bound=st.sampled_from([0.001, 0.005, 0.05]),
)
def test_bound_e_value_grows_with_events(events: int, trials: int, bound: float) -> None:
    """More events out of the same trials: more evidence the bound is exceeded, less
    that it holds."""
    assert _judge.bound_log_e(events + 1, trials, bound, above=True) >= _judge.bound_log_e(
        events, trials, bound, above=True
    )
    assert _judge.bound_log_e(events + 1, trials, bound, above=False) <= _judge.bound_log_e(
        events, trials, bound, above=False
    )


@given(
    looks=st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 500), st.integers(0, 20), st.integers(1, 5000)),
        min_size=1,
        max_size=6,
    ),
    factor=factors,
)
@settings(max_examples=40, deadline=None)
def test_counts_state_round_trips_through_json(
    looks: list[tuple[int, int, int, int]], factor: float
) -> None:
    """After any sequence of looks the state survives JSON and continues identically."""
    state: _judge.CountsState | None = None
    totals = [0, 0, 0, 0]
    for increments in looks:
        totals = [a + b for a, b in zip(totals, increments, strict=True)]
        ce, ct, be, bt = totals
        state, _ = _judge.judge_counts(
            state, min(ce, ct), ct, min(be, bt), bt, alpha=0.01, factor=factor
        )
    assert state is not None
    restored = _judge.state_from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    assert isinstance(restored, _judge.CountsState)
    ce, ct, be, bt = totals
    _, direct = _judge.judge_counts(state, ct, ct + 10, be, bt + 10, alpha=0.01, factor=factor)
    _, resumed = _judge.judge_counts(restored, ct, ct + 10, be, bt + 10, alpha=0.01, factor=factor)
    assert direct == resumed


@given(
    canary=st.tuples(st.integers(30, 500), st.floats(-100, 100), st.floats(0.1, 50)),
    baseline=st.tuples(st.integers(30, 500), st.floats(-100, 100), st.floats(0.1, 50)),
)
@settings(max_examples=40, deadline=None)
def test_means_and_bound_states_round_trip(
    canary: tuple[int, float, float], baseline: tuple[int, float, float]
) -> None:
    """Means and bound states read back equal from their dict form."""

    def moments(arm: tuple[int, float, float]) -> _judge.Moments:
        n, mean, sd = arm
        return _judge.Moments(n=n, total=n * mean, total_sq=(n - 1) * sd * sd + n * mean * mean)

    means, result = _judge.judge_means(
        None, moments(canary), moments(baseline), alpha=0.01, offset=1.0, op=">="
    )
    assert result.e_value >= 1.0
    assert _judge.state_from_dict(json.loads(json.dumps(means.to_dict()))) == means
    bound, _ = _judge.judge_bound(None, 3, 1000, bound=0.9995, op=">", alpha=0.01)
    assert _judge.state_from_dict(json.loads(json.dumps(bound.to_dict()))) == bound


def test_identical_arms_give_a_supermartingale_in_simulation() -> None:
    """With identical arms the e-value after 30 looks averages at most 1 (plus the
    simulation's noise) over 2,000 runs."""
    rng = random.Random(6)
    share, total = 0.1, 0.0
    runs = 2000
    for _ in range(runs):
        loglik = _GRID
        for _look in range(30):
            events = rng.randint(0, 3)
            canary = sum(rng.random() < share for _ in range(events))
            loglik = _judge.counts_loglik_update(
                loglik,
                canary_events=canary,
                canary_exposure=share,
                baseline_events=events - canary,
                baseline_exposure=1 - share,
                factor=1.0,
            )
        total += math.exp(_judge.mixture_log_e(loglik, _judge.GRID_HALF, upward=True))
    assert total / runs <= 1.15


def test_a_a_false_alarm_rate_stays_under_alpha() -> None:
    """300 simulated healthy canaries watched at 120 looks each: the counts judge at
    alpha = 0.05 alarms in at most alpha plus three binomial standard errors of them."""
    rng = random.Random(2026)
    alpha, runs, alarms = 0.05, 300, 0
    for _ in range(runs):
        loglik = _GRID
        for _look in range(120):
            events = rng.randint(0, 4)
            canary = sum(rng.random() < 0.1 for _ in range(events))
            loglik = _judge.counts_loglik_update(
                loglik,
                canary_events=canary,
                canary_exposure=0.1,
                baseline_events=events - canary,
                baseline_exposure=0.9,
                factor=1.0,
            )
            if _judge.mixture_log_e(loglik, _judge.GRID_HALF, upward=True) >= math.log(1 / alpha):
                alarms += 1
                break
    margin = 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert alarms / runs <= alpha + margin


def test_a_a_means_false_alarm_rate_stays_under_alpha() -> None:
    """300 healthy canaries with skewed (exponential) data looked at 40 times: the
    asymptotic means judge at alpha = 0.05 alarms at most alpha plus a binomial margin."""
    rng = random.Random(58)
    alpha, runs, alarms = 0.05, 300, 0
    for _ in range(runs):
        state: _judge.MeansState | None = None
        arms = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        for _look in range(40):
            for arm, size in ((arms[0], 10), (arms[1], 90)):
                for _ in range(size):
                    value = rng.expovariate(1.0)
                    arm[0] += 1
                    arm[1] += value
                    arm[2] += value * value
            canary = _judge.Moments(n=arms[0][0], total=arms[0][1], total_sq=arms[0][2])
            baseline = _judge.Moments(n=arms[1][0], total=arms[1][1], total_sq=arms[1][2])
            state, result = _judge.judge_means(state, canary, baseline, alpha=alpha)
            if result.outcome is Outcome.FAIL:
                alarms += 1
                break
    margin = 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert alarms / runs <= alpha + margin
