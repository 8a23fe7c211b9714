"""The judge's closed forms against scipy: distribution functions, Bayes factors and the
exact null expectation of the e-values (a martingale has mean 1 at every fixed time)."""

from __future__ import annotations

import math

import pytest
from scipy import integrate, special, stats

from gatekeeper import _judge


@pytest.mark.parametrize("x", [-45.0, -31.0, -12.0, -3.0, -0.5, 0.0, 0.7, 2.5, 8.0])
def test_log_normal_cdf_matches_scipy(x: float) -> None:
    """log Φ agrees with scipy's log_ndtr, including the far tail where Φ underflows."""
    assert float(special.log_ndtr(x)) == pytest.approx(_judge.log_normal_cdf(x), rel=1e-9)


def test_log_sum_exp_matches_scipy() -> None:
    """log-sum-exp is exact for huge and tiny terms and -inf for nothing."""
    values = [-1000.0, 3.0, 700.0, 699.5]
    assert float(special.logsumexp(values)) == pytest.approx(_judge.log_sum_exp(values))
    assert _judge.log_sum_exp([]) == -math.inf


@pytest.mark.parametrize(("events", "trials", "p"), [(0, 10, 0.1), (3, 50, 0.02), (40, 1000, 0.05)])
def test_beta_binomial_bayes_factor_matches_integration(events: int, trials: int, p: float) -> None:
    """The closed-form Beta(1/2, 1/2) Bayes factor equals the integral of the likelihood
    ratio over the prior, computed numerically."""

    def integrand(q: float) -> float:
        prior = float(stats.beta.pdf(q, 0.5, 0.5))
        return prior * float(
            stats.binom.pmf(events, trials, q) / stats.binom.pmf(events, trials, p)
        )

    numeric, _ = integrate.quad(integrand, 0.0, 1.0, points=[events / trials], limit=200)
    assert math.log(numeric) == pytest.approx(
        _judge.beta_binomial_log_bf(events, trials, p), abs=1e-6
    )


@pytest.mark.parametrize(("z", "t"), [(0.0, 10.0), (1.5, 200.0), (-2.0, 50.0), (3.0, 5000.0)])
@pytest.mark.parametrize("one_sided", [False, True])
def test_normal_mixture_matches_integration(z: float, t: float, one_sided: bool) -> None:
    """The Gaussian-mixture martingale in closed form equals ∫ exp(λS - λ²t/2) dF(λ)
    for a normal (or half-normal) mixing distribution F."""
    rho2 = _judge.rho_squared(500.0, 0.01)
    s = z * math.sqrt(t)
    rho = math.sqrt(rho2)

    def integrand(lam: float) -> float:
        density = stats.norm.pdf(lam, 0.0, rho) * (2.0 if one_sided else 1.0)
        return float(math.exp(lam * s - lam * lam * t / 2.0) * density)

    lower = 0.0 if one_sided else -20 * rho
    numeric, _ = integrate.quad(integrand, lower, 20 * rho, limit=200)
    closed = _judge.normal_mixture_log_e(z, t, rho2, one_sided=one_sided)
    assert math.log(numeric) == pytest.approx(closed, abs=1e-7)


@pytest.mark.parametrize(("events_total", "share", "factor"), [(5, 0.01, 1.0), (30, 0.1, 1.2)])
def test_counts_e_value_has_mean_one_at_the_null_boundary(
    events_total: int, share: float, factor: float
) -> None:
    """Given the total events, the canary's share is Binomial(X, θ0) at the boundary
    r = factor, and the mixture e-value's exact expectation under it is 1."""
    theta0 = factor * share / (factor * share + 1 - share)
    expectation = 0.0
    for canary in range(events_total + 1):
        loglik = _judge.counts_loglik_update(
            (0.0,) * (2 * _judge.GRID_HALF + 1),
            canary_events=canary,
            canary_exposure=share,
            baseline_events=events_total - canary,
            baseline_exposure=1 - share,
            factor=factor,
        )
        e_value = math.exp(_judge.mixture_log_e(loglik, _judge.GRID_HALF, upward=True))
        expectation += float(stats.binom.pmf(canary, events_total, theta0)) * e_value
    assert expectation == pytest.approx(1.0, rel=1e-9)


def test_bound_e_value_has_mean_at_most_one_under_the_bound() -> None:
    """Under a rate at the bound the harm e-value's exact expectation is 1 (every grid
    point keeps its weight), and below the bound it is smaller: a supermartingale."""
    trials, bound = 400, 0.01
    for p, expected in ((bound, 1.0), (bound / 2, None)):
        expectation = math.fsum(
            math.exp(
                float(stats.binom.logpmf(k, trials, p))
                + _judge.bound_log_e(k, trials, bound, above=True)
            )
            for k in range(trials + 1)
        )
        if expected is None:
            assert expectation < 1.0
        else:
            assert expectation == pytest.approx(expected, rel=1e-9)


def test_rate_interval_matches_the_bayes_factor_threshold() -> None:
    """The bound test's confidence sequence ends exactly where the beta-binomial Bayes
    factor reaches 1/alpha."""
    state, result = _judge.judge_bound(None, 12, 2000, bound=0.01, op="<", alpha=0.01)
    del state
    assert result.ci_low is not None
    assert result.ci_high is not None
    for edge in (result.ci_low, result.ci_high):
        assert _judge.beta_binomial_log_bf(12, 2000, edge) == pytest.approx(
            math.log(100.0), abs=1e-6
        )
