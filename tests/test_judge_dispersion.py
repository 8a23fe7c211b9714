"""Overdispersed counts: a declared ``dispersion`` tempers every look's likelihood, so
bursts that hit one arm (negative binomial counts) do not cry wolf; the data's own
dispersion is reported so a plan author can declare it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gatekeeper import _judge
from gatekeeper._model import Outcome

_GRID = (0.0,) * (2 * _judge.GRID_HALF + 1)


def test_dispersion_divides_each_looks_log_likelihood() -> None:
    """Tempering: the log-likelihood with dispersion 3 is a third of the plain one."""
    plain = _judge.counts_loglik_update(
        _GRID,
        canary_events=7,
        canary_exposure=0.1,
        baseline_events=20,
        baseline_exposure=0.9,
        factor=1.0,
    )
    tempered = _judge.counts_loglik_update(
        _GRID,
        canary_events=7,
        canary_exposure=0.1,
        baseline_events=20,
        baseline_exposure=0.9,
        factor=1.0,
        dispersion=3.0,
    )
    assert pytest.approx([v / 3 for v in plain]) == list(tempered)


def test_a_dispersion_below_one_or_changed_mid_phase_is_refused() -> None:
    """Dispersion is at least 1, and a phase keeps the one it started with."""
    with pytest.raises(ValueError, match="at least 1"):
        _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01, dispersion=0.5)
    state, _ = _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01, dispersion=2.0)
    with pytest.raises(ValueError, match="different criterion"):
        _judge.judge_counts(state, 1, 100, 2, 1000, alpha=0.01)


def _simulate(
    *, k: float | None, dispersion: float, runs: int, looks: int, alpha: float, seed: int
) -> tuple[float, float]:
    """Healthy canary at 10 %, ~2 errors per look; per-look counts negative binomial with
    shape ``k`` in each arm (``None``: Poisson). Returns (false alarm share, mean
    dispersion seen)."""
    rng = np.random.default_rng(seed)
    mean_c, mean_b = 0.2, 1.8
    alarms = 0
    seen = []
    for _ in range(runs):
        state: _judge.CountsState | None = None
        ce = be = 0.0
        for look in range(1, looks + 1):
            if k is None:
                ce += rng.poisson(mean_c)
                be += rng.poisson(mean_b)
            else:
                ce += rng.poisson(mean_c * rng.gamma(k, 1 / k))
                be += rng.poisson(mean_b * rng.gamma(k, 1 / k))
            state, result = _judge.judge_counts(
                state, ce, 100.0 * look, be, 900.0 * look, alpha=alpha, dispersion=dispersion
            )
            if result.outcome is Outcome.FAIL:
                alarms += 1
                break
        assert result.dispersion_seen is not None
        seen.append(result.dispersion_seen)
    return alarms / runs, float(np.mean(seen))


def test_declared_dispersion_keeps_alpha_on_negative_binomial_bursts() -> None:
    """Negative binomial k = 1 in both arms at 10 %: alpha = 5 % is kept with the
    dispersion declared (2), and the data show a dispersion well above 1."""
    alarms, seen = _simulate(k=1.0, dispersion=2.0, runs=200, looks=150, alpha=0.05, seed=3)
    assert alarms <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)
    assert seen > 1.3


def test_poisson_counts_show_a_dispersion_near_one() -> None:
    """Binomial-conditional data: the reported dispersion is about 1."""
    _, seen = _simulate(k=None, dispersion=1.0, runs=40, looks=150, alpha=0.05, seed=4)
    assert 0.8 < seen < 1.2


@pytest.mark.parametrize(
    ("declared", "says"),
    [
        ({"dispersion": 3.0}, "dispersion 3"),
        (
            {"bursts": _judge.Bursts(size=0.3, lasting_s=997.0)},
            "bursts 30% lasting 16m37s",
        ),
    ],
)
def test_a_real_regression_still_fails_with_bursts_declared(
    declared: dict[str, Any], says: str
) -> None:
    """A canary at 5 times the baseline's rate fails with a declared dispersion of 3, or
    with per-arm bursts declared (tempering by about 14 here), and says what it
    tempered by."""
    state: _judge.CountsState | None = None
    result = None
    for look in range(1, 400):
        state, result = _judge.judge_counts(
            state,
            1.0 * look,
            100.0 * look,
            1.8 * look,
            900.0 * look,
            alpha=0.01,
            elapsed_s=5.0 * look,
            **declared,
        )
        if result.outcome is Outcome.FAIL:
            break
    assert result is not None
    assert Outcome.FAIL == result.outcome
    assert result.dispersion is not None and result.dispersion >= 3
    assert says in result.explanation
