"""Bursts that hit one arm: a declared ``bursts = {size, lasting}`` tempers the counts
test by the long-run variance it implies at the arms' rates, and the dispersion the data
show is measured per block length and reported when it exceeds what the test assumes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

import gatekeeper
from gatekeeper import _judge
from gatekeeper._model import Outcome

TAU = 997.0  # lag-1 correlation 0.995 per 5 s, as in benchmarks/detection_sim.py
BURSTS = _judge.Bursts(size=0.3, lasting_s=TAU)


def _factors(rng: np.random.Generator, looks: int, runs: int, sd: float = 0.3) -> np.ndarray:
    """Each arm's rate factor per 5-s look: exp of a stationary AR(1), mean 1."""
    phi = math.exp(-5.0 / TAU)
    z = rng.normal(0.0, sd, (runs, 2))
    out = np.empty((looks, runs, 2))
    for look in range(looks):
        z = phi * z + rng.normal(0.0, sd * math.sqrt(1 - phi * phi), (runs, 2))
        out[look] = np.exp(z - sd * sd / 2)
    return out


@pytest.mark.parametrize("size", [0.1, 0.3, 1.0, 2.0])
def test_the_strength_is_the_integrated_covariance_of_a_lognormal_factor(size: float) -> None:
    """K(s) = ∫ (exp(s² e^{-u}) - 1) du over u >= 0: the covariance of exp(Z_t - s²/2),
    Z an Ornstein-Uhlenbeck process of variance s², integrated per unit of time."""
    exact, _ = integrate.quad(lambda u: math.expm1(size * size * math.exp(-u)), 0, math.inf)
    assert _judge.Bursts(size=size, lasting_s=1.0).strength == pytest.approx(exact, rel=1e-9)


def test_the_inflation_is_the_variance_of_the_canarys_share_the_bursts_add() -> None:
    """Simulated per-arm bursts (30 %, ~17 min) at 10 % of 200 requests/s with 0.2 %
    errors: the Pearson dispersion of the canary's events over 1 h and over 4 h is what
    ``inflation`` predicts for those horizons (sampling error ~3 %), ballistic at 1 h and
    near the long-run limit (about 14) at 4 h."""
    rng = np.random.default_rng(11)
    runs, share, rate, error = 3000, 0.10, 200.0, 0.002
    factors = _factors(rng, 2880, runs)
    lam_c, lam_b = rate * share * error, rate * (1 - share) * error  # events per second
    for looks in (720, 2880):
        horizon = 5.0 * looks
        x = rng.poisson(lam_c * 5.0 * factors[:looks, :, 0].sum(axis=0))
        y = rng.poisson(lam_b * 5.0 * factors[:looks, :, 1].sum(axis=0))
        theta = lam_c / (lam_c + lam_b)
        seen = np.mean((x - (x + y) * theta) ** 2) / np.mean((x + y) * theta * (1 - theta))
        predicted = BURSTS.inflation(lam_c, lam_b, horizon)
        assert seen == pytest.approx(predicted, rel=0.1), (looks, seen, predicted)
    assert BURSTS.inflation(lam_c, lam_b, None) == pytest.approx(
        1 + 4 * TAU * BURSTS.strength * lam_c * lam_b / (lam_c + lam_b)
    )
    assert 13 < BURSTS.inflation(lam_c, lam_b, None) < 16


def _phase(seed: int, bursts: _judge.Bursts | None, *, looks: int, alpha: float) -> bool:
    """One healthy phase at 10 % with per-arm bursts, a look every 5 s: did it FAIL?"""
    rng = np.random.default_rng(seed)
    factors = _factors(rng, looks, 1)[:, 0, :]
    ce = ct = be = bt = 0.0
    state: _judge.CountsState | None = None
    for look in range(looks):
        nc, nb = rng.poisson(100.0), rng.poisson(900.0)
        ce += rng.binomial(nc, 0.002 * factors[look, 0])
        be += rng.binomial(nb, 0.002 * factors[look, 1])
        ct, bt = ct + nc, bt + nb
        state, result = _judge.judge_counts(
            state, ce, ct, be, bt, alpha=alpha, elapsed_s=5.0 * (look + 1), bursts=bursts
        )
        if result.outcome is Outcome.FAIL:
            return True
    return False


def test_declared_bursts_keep_alpha_where_the_binomial_test_cries_wolf() -> None:
    """60 healthy 1-hour phases at alpha = 5 %: undeclared, the bursts fail a quarter of
    them; declared, no more than alpha allows (+2 standard errors)."""
    runs, alpha = 60, 0.05
    undeclared = sum(_phase(seed, None, looks=720, alpha=alpha) for seed in range(runs))
    declared = sum(_phase(seed, BURSTS, looks=720, alpha=alpha) for seed in range(runs))
    assert undeclared >= 0.15 * runs
    assert declared <= runs * (alpha + 2 * math.sqrt(alpha * (1 - alpha) / runs))


def _bursty_looks(
    seed: int, looks: int, *, sd: float
) -> tuple[_judge.CountsState | None, _judge.JudgeResult]:
    rng = np.random.default_rng(seed)
    factors = _factors(rng, looks, 1, sd=max(sd, 1e-9))[:, 0, :] if sd else np.ones((looks, 2))
    ce = ct = be = bt = 0.0
    state: _judge.CountsState | None = None
    result = None
    for look in range(looks):
        nc, nb = rng.poisson(100.0), rng.poisson(900.0)
        ce += rng.binomial(nc, min(1.0, 0.01 * factors[look, 0]))
        be += rng.binomial(nb, min(1.0, 0.01 * factors[look, 1]))
        ct, bt = ct + nc, bt + nb
        state, result = _judge.judge_counts(
            state, ce, ct, be, bt, alpha=1e-9, elapsed_s=5.0 * (look + 1)
        )
    assert result is not None
    return state, result


def test_a_verdict_says_when_the_data_are_burstier_than_the_test_assumes() -> None:
    """Per-arm bursts, undeclared, 3 h: the verdict names the block length where the
    canary's share varies most beyond a binomial and what to declare. (alpha is tiny
    so that the phase runs on and the diagnosis is what is tested.)"""
    _, result = _bursty_looks(5, 2160, sd=0.5)
    assert result.burstier is not None
    assert result.burstier.seconds >= 320
    assert result.burstier.seen > 1.25 * result.burstier.assumed
    assert "declare `dispersion` or `bursts` for error rate" in result.explanation
    assert result.as_evidence()["burstier"]["seconds"] == result.burstier.seconds


def test_binomial_data_raise_no_burst_warning() -> None:
    """The same phases without bursts: no verdict says the data are burstier, and the
    dispersion seen from look to look is about 1."""
    for seed in range(8):
        _, result = _bursty_looks(seed, 2160, sd=0.0)
        assert result.burstier is None, result.explanation
        assert result.dispersion_seen is not None
        assert 0.8 < result.dispersion_seen < 1.2


def test_bursts_need_the_time_and_belong_to_the_state() -> None:
    with pytest.raises(ValueError, match="elapsed_s"):
        _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01, bursts=BURSTS)
    state, _ = _judge.judge_counts(None, 1, 100, 2, 1000, alpha=0.01, elapsed_s=5, bursts=BURSTS)
    with pytest.raises(ValueError, match="different criterion"):
        _judge.judge_counts(state, 2, 200, 4, 2000, alpha=0.01, elapsed_s=10)
    with pytest.raises(ValueError, match="size"):
        _judge.Bursts(size=0.0, lasting_s=60)
    with pytest.raises(ValueError, match="last"):
        _judge.Bursts(size=0.3, lasting_s=0)


def test_a_counts_state_with_bursts_and_blocks_round_trips_through_the_journal() -> None:
    """What a resumed run reads back is the state it wrote, blocks and bursts included;
    a state journaled before the blocks were measured still loads."""
    state, _ = _bursty_looks(3, 300, sd=0.3)
    assert state is not None
    state, _ = _judge.judge_counts(
        None, 1, 100, 2, 1000, alpha=0.01, elapsed_s=5.0, bursts=BURSTS, dispersion=1.5
    )
    for current in (state, _bursty_looks(3, 300, sd=0.3)[0]):
        assert current is not None
        back = _judge.state_from_dict(json.loads(json.dumps(current.to_dict())))
        assert back == current
    old = state.to_dict()
    del old["seen"]
    old.update(pearson=3.0, pearson_looks=2)
    loaded = _judge.state_from_dict(old)
    assert isinstance(loaded, _judge.CountsState)
    assert loaded.bursts == BURSTS


def test_the_blocks_measure_nothing_without_the_time() -> None:
    """Without ``elapsed_s`` only the per-look scale counts: block lengths need time."""
    state: _judge.CountsState | None = None
    for look in range(1, 50):
        state, _ = _judge.judge_counts(
            state, 1.0 * look, 100.0 * look, 9.0 * look, 900.0 * look, alpha=0.01
        )
    assert state is not None
    assert state.seen[0].blocks == 49
    assert all(scale.blocks == 0 for scale in state.seen[1:])


ENGINE_PLAN = """\
[plan]
name = "bursty"
[sources.rec]
type = "replay"
[metrics.error_rate]
source = "rec"
numerator = "errors"
denominator = "requests"
bursts = { size = "30%", lasting = "15m" }
[traffic]
type = "memory"
[[phases]]
name = "ramp"
traffic = 10
checkpoints = ["30m", "1h"]
gate = [{ criterion = "error_rate canary <= baseline", fail_only = true }]
"""


def test_declared_bursts_reach_the_judge_through_a_run(tmp_path: Path) -> None:
    """A rehearsal of a plan whose metric declares bursts: every verdict tempers by what
    they imply at the recorded rates (about 3 here: 0.06 baseline errors a second at
    10 %), says so in its reason, and measures the dispersion the counts show."""
    rows = ["at,metric,value,variant"]
    for step in range(13):  # cumulative counts every 5 minutes
        at = f"{5 * step}m"
        for variant, errors, requests in (("canary", 2, 1000), ("baseline", 18, 9000)):
            rows.append(f"{at},error_rate.numerator,{errors * step},{variant}")
            rows.append(f"{at},error_rate.denominator,{requests * step},{variant}")
    recording = tmp_path / "bursty.csv"
    recording.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = gatekeeper.rehearse(gatekeeper.plan_from_text(ENGINE_PLAN), recording)
    verdicts = [c.result.verdicts[0] for c in result.phases[0].checkpoints]
    assert [v.outcome for v in verdicts] == [Outcome.INCONCLUSIVE, Outcome.PASS]
    lam_b = 18 / 300
    expected = BURSTS_15M.inflation(lam_b / 9, lam_b, None)
    for verdict in verdicts:
        assert verdict.evidence["dispersion"] == pytest.approx(expected)
        assert 2.5 < expected < 3.5
        assert "bursts 30% lasting 15m" in verdict.reason


BURSTS_15M = _judge.Bursts(size=0.3, lasting_s=900.0)


def test_after_a_step_up_the_tempering_follows_the_share_in_force() -> None:
    """A phase at 1 % for an hour, then 10 %: the look after the step tempers by what
    bursts add to a 10 % canary's rates, not to the hour's average share (which would
    temper by about half as much, and let bursts through)."""
    state: _judge.CountsState | None = None
    hour = 3600.0
    state, _ = _judge.judge_counts(
        state,
        7.2,
        None,
        712.8,
        None,
        alpha=0.01,
        split=[(1.0, hour)],
        elapsed_s=hour,
        bursts=BURSTS,
    )
    state, result = _judge.judge_counts(
        state,
        7.2 + 0.4,
        None,
        712.8 + 3.6,
        None,
        alpha=0.01,
        split=[(10.0, 20.0)],
        elapsed_s=hour + 20.0,
        bursts=BURSTS,
    )
    # the baseline's 0.2 errors per share-second, one share-second a second in all
    per_exposure = (712.8 + 3.6) / (0.99 * hour + 0.9 * 20.0)
    assert per_exposure == pytest.approx(0.2)
    expected = BURSTS.inflation(per_exposure * 0.1, per_exposure * 0.9, None)
    average = BURSTS.inflation(per_exposure * 0.0105, per_exposure * 0.9895, None)
    assert result.dispersion is not None
    assert result.dispersion == pytest.approx(expected)
    assert result.dispersion > 1.8 * average
