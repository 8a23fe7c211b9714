"""Criteria: PASS and FAIL with reasons in the criterion's units; any problem is
INCONCLUSIVE, never PASS."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper._criteria import drift, judge_relative, judge_stable, judge_threshold
from gatekeeper._model import (
    COMPARISONS,
    Criterion,
    Kind,
    Measurement,
    Metric,
    Outcome,
    Reference,
    compare,
)
from strategies import finite_values, measurement, problem_measurements, threshold_criterion


def _metric(unit: str = "", *, count: bool = False) -> Metric:
    return Metric(name="m", source="s", query="q", unit=unit, count=count)


def _relative(
    op: str = ">=",
    reference: Reference = Reference.PRERUN,
    *,
    factor: float = 1.0,
    offset: float = 0.0,
    unit: str = "",
) -> Criterion:
    return Criterion(
        text="m relative",
        kind=Kind.RELATIVE,
        metric="m",
        op=op,
        reference=reference,
        factor=factor,
        offset=offset,
        unit=unit,
    )


def _stable(tolerance: float) -> Criterion:
    return Criterion(text="m stable", kind=Kind.STABLE, metric="m", tolerance=tolerance, unit="%")


@pytest.mark.parametrize(
    ("criterion", "metric", "value", "outcome", "reason"),
    [
        (
            threshold_criterion("<", 0.005, unit="%"),
            _metric(),
            0.009,
            Outcome.FAIL,
            "0.9% is not < 0.5%",
        ),
        (threshold_criterion("<", 0.005, unit="%"), _metric(), 0.004, Outcome.PASS, "0.4% < 0.5%"),
        (
            threshold_criterion("<", 0.2, unit="ms"),
            _metric("s"),
            0.25,
            Outcome.FAIL,
            "250ms is not < 200ms",
        ),
        (
            threshold_criterion("<", 0.2, unit="ms"),
            _metric("s"),
            0.042,
            Outcome.PASS,
            "42ms < 200ms",
        ),
        (
            threshold_criterion(">", 99.95, unit="%"),
            _metric("percent"),
            99.9,
            Outcome.FAIL,
            "99.9% is not > 99.95%",
        ),
        (threshold_criterion("<", 200), _metric("ms"), 250, Outcome.FAIL, "250 ms is not < 200 ms"),
        (threshold_criterion("<", 500, unit="s"), _metric("ms"), 400, Outcome.PASS, "0.4s < 0.5s"),
        (threshold_criterion(">=", 1), _metric(), 1, Outcome.PASS, "1 >= 1"),
        (threshold_criterion("!=", 1), _metric(), 1, Outcome.FAIL, "1 is not != 1"),
        (threshold_criterion("==", 0, count=True), _metric(count=True), 0, Outcome.PASS, "0 == 0"),
    ],
)
def test_threshold_and_count(
    criterion: Criterion, metric: Metric, value: float, outcome: Outcome, reason: str
) -> None:
    """A number is judged against the bound; the reason shows both in the written unit."""
    verdict = judge_threshold(criterion, metric, measurement(value))
    assert (outcome, reason, value, criterion.bound) == (
        verdict.outcome,
        verdict.reason,
        verdict.observed,
        verdict.bound,
    )


def test_count_names_what_was_counted() -> None:
    """A failing count lists the firing alerts it counted."""
    verdict = judge_threshold(
        threshold_criterion("==", 0, count=True),
        _metric(count=True),
        measurement(2, labels=("HighErrorRate", "DiskFull")),
    )
    assert (Outcome.FAIL, "2 (HighErrorRate, DiskFull) is not == 0") == (
        verdict.outcome,
        verdict.reason,
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"value": None}, "no data"),
        ({"value": math.nan}, "value is NaN"),
        ({"value": math.inf}, "value is +Inf"),
        ({"value": -math.inf}, "value is -Inf"),
        ({"value": 0.0, "reason": "source error: HTTP 503"}, "source error: HTTP 503"),
        ({"value": None, "reason": "empty result"}, "empty result"),
        ({"value": 0.0, "warnings": ("partial", "slow")}, "source warned: partial; slow"),
        ({"value": None, "retries": 3}, "no data (after 3 retries)"),
    ],
)
def test_every_problem_is_inconclusive(changes: dict[str, object], reason: str) -> None:
    """No data, NaN, ±Inf, a source error, an empty result, warnings: INCONCLUSIVE with why."""
    value = changes.pop("value")
    assert value is None or isinstance(value, float)
    given_measurement = measurement(value, **changes)
    verdict = judge_threshold(threshold_criterion("<", 1), _metric(), given_measurement)
    assert (Outcome.INCONCLUSIVE, reason, None) == (
        verdict.outcome,
        verdict.reason,
        verdict.observed,
    )
    assert (given_measurement,) == verdict.measurements


@pytest.mark.parametrize(
    ("criterion", "value", "reference", "outcome", "reason"),
    [
        (_relative(factor=1.058), 10.6, 10.0, Outcome.PASS, "10.6 >= 10.58 (prerun 10 × 1.058)"),
        (
            _relative(factor=1.058),
            10.5,
            10.0,
            Outcome.FAIL,
            "10.5 is not >= 10.58 (prerun 10 × 1.058)",
        ),
        (
            _relative("<=", Reference.BASELINE, offset=0.001, unit="%"),
            0.004,
            0.002,
            Outcome.FAIL,
            "0.4% is not <= 0.3% (baseline 0.2% + 0.1%)",
        ),
        (
            _relative("<=", Reference.BASELINE, offset=-0.001, unit="%"),
            0.004,
            0.006,
            Outcome.PASS,
            "0.4% <= 0.5% (baseline 0.6% - 0.1%)",
        ),
    ],
)
def test_relative(
    criterion: Criterion, value: float, reference: float, outcome: Outcome, reason: str
) -> None:
    """canary OP reference × factor + offset; the reason shows how the bound was made."""
    verdict = judge_relative(criterion, _metric(), measurement(value), measurement(reference))
    assert (outcome, reason) == (verdict.outcome, verdict.reason)


@pytest.mark.parametrize(
    ("reference", "other", "reason"),
    [
        (Reference.PRERUN, None, "no pre-run value was recorded when the run started"),
        (Reference.BASELINE, None, "no baseline measurement"),
        (Reference.BASELINE, measurement(math.nan, variant="baseline"), "baseline: value is NaN"),
        (Reference.PRERUN, measurement(None), "prerun: no data"),
    ],
)
def test_relative_without_a_reference_is_inconclusive(
    reference: Reference, other: Measurement | None, reason: str
) -> None:
    """A missing or unusable baseline / pre-run value is INCONCLUSIVE, never PASS."""
    verdict = judge_relative(_relative(reference=reference), _metric(), measurement(1.0), other)
    assert (Outcome.INCONCLUSIVE, reason) == (verdict.outcome, verdict.reason)


def test_relative_canary_problem_comes_first() -> None:
    """A canary without data is INCONCLUSIVE labelled 'canary', whatever the reference."""
    verdict = judge_relative(_relative(), _metric(), measurement(None), measurement(1.0))
    assert (Outcome.INCONCLUSIVE, "canary: no data") == (verdict.outcome, verdict.reason)


@pytest.mark.parametrize(
    ("series", "outcome", "reason"),
    [
        ([1.0, 1.05, 0.98], Outcome.PASS, "drift 6.93069% <= 10% over 3 samples (0.98..1.05)"),
        ([1.0, 1.5], Outcome.FAIL, "drift 40% > 10% over 2 samples (1..1.5)"),
        ([-1.0, 1.0], Outcome.FAIL, "drift ∞ > 10% over 2 samples (-1..1)"),
        ([], Outcome.INCONCLUSIVE, "collecting samples: 0 of at least 2 in the window"),
        ([1.0], Outcome.INCONCLUSIVE, "collecting samples: 1 of at least 2 in the window"),
        ([1.0, math.nan, 1.0], Outcome.INCONCLUSIVE, "the window holds NaN"),
        ([1.0, math.inf], Outcome.INCONCLUSIVE, "the window holds +Inf"),
    ],
)
def test_stable(series: list[float], outcome: Outcome, reason: str) -> None:
    """Drift within the tolerance passes; too few or non-finite samples are INCONCLUSIVE."""
    verdict = judge_stable(_stable(0.1), _metric(), series, measurement(1.0))
    assert (outcome, reason) == (verdict.outcome, verdict.reason)


def test_stable_with_a_problem_measurement_is_inconclusive() -> None:
    """A steady window does not hide a failing current measurement."""
    verdict = judge_stable(_stable(0.1), _metric(), [1.0, 1.0], measurement(None, reason="down"))
    assert (Outcome.INCONCLUSIVE, "down") == (verdict.outcome, verdict.reason)


@given(st.lists(finite_values, min_size=1, max_size=20).map(lambda v: v[:1] * len(v)))
def test_drift_of_a_constant_series_is_zero(series: list[float]) -> None:
    """A series that does not move has no drift, zeros included."""
    assert 0.0 == drift(series)


@given(
    st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=2, max_size=20),
    st.floats(min_value=1e-3, max_value=1e3).flatmap(lambda k: st.sampled_from([k, -k])),
)
def test_drift_is_scale_invariant(series: list[float], scale: float) -> None:
    """Multiplying every value by k ≠ 0 (a unit change, a sign flip) keeps the drift."""
    assert drift(series) == pytest.approx(drift([v * scale for v in series]), rel=1e-9)


@given(st.lists(st.floats(min_value=0.5, max_value=1e6), min_size=1, max_size=10))
def test_drift_is_infinite_when_the_mean_is_zero(half: list[float]) -> None:
    """Values that differ around a zero mean drift without bound."""
    assert math.inf == drift([*half, *(-v for v in half)])


@settings(max_examples=150)
@given(
    problem_measurements(),
    st.sampled_from(COMPARISONS),
    finite_values,
    st.sampled_from(["threshold", "count", "canary", "reference", "stable"]),
    st.lists(finite_values, max_size=5),
)
def test_a_problem_never_passes(
    problem: Measurement, op: str, bound: float, where: str, series: list[float]
) -> None:
    """For any measurement with a problem, no judge returns PASS, wherever it appears."""
    good = measurement(bound)
    if where in ("threshold", "count"):
        criterion = threshold_criterion(op, bound, count=where == "count")
        verdict = judge_threshold(criterion, _metric(count=where == "count"), problem)
    elif where == "canary":
        verdict = judge_relative(_relative(op), _metric(), problem, good)
    elif where == "reference":
        verdict = judge_relative(_relative(op), _metric(), good, problem)
    else:
        verdict = judge_stable(_stable(1.0), _metric(), series, problem)
    assert Outcome.INCONCLUSIVE == verdict.outcome
    assert verdict.reason


def test_drift_near_the_float_limit() -> None:
    """Values near the float limit give a drift, not an OverflowError."""
    assert 0.4 == pytest.approx(drift([1e308, 1.5e308]), rel=1e-9)


def test_overflowing_relative_bound_is_inconclusive() -> None:
    """baseline × factor beyond the float range is no bound: INCONCLUSIVE, not PASS."""
    verdict = judge_relative(
        _relative("<", Reference.BASELINE, factor=10.0),
        _metric(),
        measurement(1.0),
        measurement(1e308),
    )
    assert (Outcome.INCONCLUSIVE, "the bound from baseline 1e+308 overflows") == (
        verdict.outcome,
        verdict.reason,
    )


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=8),
    st.floats(min_value=0, max_value=10),
)
def test_stable_judges_any_finite_window(series: list[float], tolerance: float) -> None:
    """Any finite window is judged without raising; PASS only for a drift within tolerance."""
    verdict = judge_stable(_stable(tolerance), _metric(), series, measurement(1.0))
    if verdict.outcome is Outcome.PASS:
        assert verdict.observed is not None and verdict.observed <= tolerance
    if len(series) < 2:
        assert Outcome.INCONCLUSIVE == verdict.outcome


@given(
    st.sampled_from(COMPARISONS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=0, max_value=1e300),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
)
def test_relative_passes_only_against_a_finite_bound(
    op: str, value: float, reference: float, factor: float, offset: float
) -> None:
    """For any finite numbers, a relative PASS means the comparison holds against a finite bound."""
    criterion = _relative(op, Reference.BASELINE, factor=factor, offset=offset)
    verdict = judge_relative(criterion, _metric(), measurement(value), measurement(reference))
    if verdict.outcome is Outcome.PASS:
        assert verdict.bound is not None and math.isfinite(verdict.bound)
        assert compare(value, op, verdict.bound)
