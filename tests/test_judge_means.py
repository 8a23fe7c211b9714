"""Means of bounded values: Fan's supermartingale per arm, mixed over betting fractions,
combined by a union bound -- valid at every look with no normal approximation, and
refused (INCONCLUSIVE) for values without declared bounds."""

from __future__ import annotations

import json
import math
import random
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import _judge
from gatekeeper._model import Outcome


@pytest.mark.parametrize(("mean", "n"), [(0.1, 6), (0.5, 6), (0.9, 5)])
@pytest.mark.parametrize("above", [True, False])
def test_an_arms_e_value_has_mean_at_most_one_at_its_null(mean: float, n: int, above: bool) -> None:
    """Values 0 or 1 with the null's mean: the exact expectation over every sample of n
    values of the arm's e-value (mean above / below ``mean``) is at most 1."""
    expectation = 0.0
    for sample in product((0.0, 1.0), repeat=n):
        probability = math.prod(mean if x else 1 - mean for x in sample)
        log_e = _judge.arm_log_e(_judge.Moments.of(list(sample)), mean, 0.0, 1.0, above=above)
        expectation += probability * math.exp(log_e)
    assert expectation <= 1.0 + 1e-12


@given(
    values=st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=40),
    m1=st.floats(min_value=0.0, max_value=10.0),
    m2=st.floats(min_value=0.0, max_value=10.0),
)
@settings(max_examples=80, deadline=None)
def test_an_arms_evidence_is_monotone_in_the_null_mean(
    values: list[float], m1: float, m2: float
) -> None:
    """Evidence that the mean is above m falls as m rises (and below m grows): what
    makes the union of the two arms' tests and the interval searches valid."""
    low, high = sorted((m1, m2))
    arm = _judge.Moments.of(values)
    assert _judge.arm_log_e(arm, high, 0.0, 10.0, above=True) <= (
        _judge.arm_log_e(arm, low, 0.0, 10.0, above=True) + 1e-9
    )
    assert _judge.arm_log_e(arm, high, 0.0, 10.0, above=False) >= (
        _judge.arm_log_e(arm, low, 0.0, 10.0, above=False) - 1e-9
    )


def test_the_arm_interval_holds_the_sample_mean() -> None:
    """The confidence sequence of one arm contains its sample mean and narrows with n."""
    rng = random.Random(11)
    values = [min(rng.lognormvariate(0, 1.5), 100.0) for _ in range(20_000)]
    wide = _judge.arm_interval(_judge.Moments.of(values[:500]), 0.0, 100.0, 0.005)
    narrow = _judge.arm_interval(_judge.Moments.of(values), 0.0, 100.0, 0.005)
    mean = sum(values) / len(values)
    assert narrow[0] <= mean <= narrow[1]
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_healthy_skewed_revenue_clipped_to_its_bounds_does_not_cry_wolf() -> None:
    """Identical arms, lognormal sigma 1.5 clipped to [0, 100], 10 % canary, 25 looks,
    alpha = 5 %, both directions: false FAILs stay within alpha plus a binomial margin."""
    rng = random.Random(2026)
    alpha, runs, alarms = 0.05, 60, 0
    for run in range(runs):
        op = ">=" if run % 2 else "<="
        state: _judge.MeansState | None = None
        arms = [[], []]  # type: list[list[float]]
        for _look in range(25):
            arms[0] += [min(rng.lognormvariate(0, 1.5), 100.0) for _ in range(20)]
            arms[1] += [min(rng.lognormvariate(0, 1.5), 100.0) for _ in range(180)]
            state, result = _judge.judge_means(
                state,
                _judge.Moments.of(arms[0]),
                _judge.Moments.of(arms[1]),
                alpha=alpha,
                op=op,
                bounds=(0.0, 100.0),
            )
            if result.outcome is Outcome.FAIL:
                alarms += 1
                break
    assert alarms / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_a_bounded_means_state_round_trips_through_json() -> None:
    """The journal keeps the bounds with the state."""
    state, _ = _judge.judge_means(
        None,
        _judge.Moments.of([1.0, 2.0, 3.0]),
        _judge.Moments.of([1.0, 2.0, 2.5]),
        alpha=0.01,
        bounds=(0.0, 10.0),
    )
    assert state == _judge.state_from_dict(json.loads(json.dumps(state.to_dict())))
