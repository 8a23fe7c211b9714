"""Evaluation of each criterion kind: measurements in, a :class:`Verdict` out.

The rule that runs through all of them: a measurement with a problem (no data,
NaN, ±Inf, a source error, a warning) makes the criterion INCONCLUSIVE with that
problem as the reason. Only a number that satisfies the bound is a PASS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._model import (
    Criterion,
    Kind,
    Measurement,
    Metric,
    Outcome,
    Reference,
    Verdict,
    compare,
)
from ._units import METRIC_UNITS, format_number, format_quantity


def show(value: float, metric: Metric, unit: str) -> str:
    """A value in the metric's unit, shown in the unit the criterion was written in."""
    if not unit or not math.isfinite(value):
        return format_number(value) + (" ms" if metric.unit == "ms" and not unit else "")
    _, scale = METRIC_UNITS[metric.unit]
    return format_quantity(value / scale, unit)


def _inconclusive(criterion: Criterion, reason: str, *measurements: Measurement) -> Verdict:
    return Verdict(
        criterion=criterion,
        outcome=Outcome.INCONCLUSIVE,
        reason=reason,
        measurements=tuple(measurements),
    )


def _problem(measurement: Measurement, what: str = "") -> str | None:
    problem = measurement.problem
    if problem is None:
        return None
    label = f"{what}: " if what else ""
    retries = f" (after {measurement.retries} retries)" if measurement.retries else ""
    return f"{label}{problem}{retries}"


def judge_threshold(criterion: Criterion, metric: Metric, measurement: Measurement) -> Verdict:
    """``metric OP bound`` (threshold) and ``count OP n`` (count) on one measurement."""
    assert criterion.op is not None and criterion.bound is not None
    problem = _problem(measurement)
    if problem is not None:
        return _inconclusive(criterion, problem, measurement)
    assert measurement.value is not None
    observed = measurement.value
    ok = compare(observed, criterion.op, criterion.bound)
    shown = show(observed, metric, criterion.unit)
    bound = show(criterion.bound, metric, criterion.unit)
    if criterion.kind is Kind.COUNT:
        shown = format_number(observed)
        if measurement.labels:
            shown += " (" + ", ".join(measurement.labels) + ")"
    reason = f"{shown} {criterion.op} {bound}" if ok else f"{shown} is not {criterion.op} {bound}"
    return Verdict(
        criterion=criterion,
        outcome=Outcome.PASS if ok else Outcome.FAIL,
        reason=reason,
        observed=observed,
        bound=criterion.bound,
        measurements=(measurement,),
    )


def judge_relative(
    criterion: Criterion,
    metric: Metric,
    measurement: Measurement,
    reference: Measurement | None,
) -> Verdict:
    """``metric OP baseline * f + c`` or ``metric OP prerun * f + c``."""
    assert criterion.op is not None and criterion.reference is not None
    name = criterion.reference.value
    measurements = (measurement,) if reference is None else (measurement, reference)
    problem = _problem(measurement, "canary")
    if problem is not None:
        return _inconclusive(criterion, problem, *measurements)
    if reference is None:
        missing = (
            "no pre-run value was recorded when the run started"
            if criterion.reference is Reference.PRERUN
            else "no baseline measurement"
        )
        return _inconclusive(criterion, missing, *measurements)
    problem = _problem(reference, name)
    if problem is not None:
        return _inconclusive(criterion, problem, *measurements)
    assert measurement.value is not None and reference.value is not None
    bound = reference.value * criterion.factor + criterion.offset
    if not math.isfinite(bound):  # an overflowing bound would let anything pass "<"
        return _inconclusive(
            criterion,
            f"the bound from {name} {format_number(reference.value)} overflows",
            *measurements,
        )
    observed = measurement.value
    ok = compare(observed, criterion.op, bound)
    unit = criterion.unit
    detail = (
        f"{show(observed, metric, unit)} {'' if ok else 'is not '}{criterion.op} "
        f"{show(bound, metric, unit)} ({name} {show(reference.value, metric, unit)}"
        + (f" × {criterion.factor:g}" if criterion.factor != 1.0 else "")
        + (
            f" {'+' if criterion.offset >= 0 else '-'} {show(abs(criterion.offset), metric, unit)}"
            if criterion.offset
            else ""
        )
        + ")"
    )
    return Verdict(
        criterion=criterion,
        outcome=Outcome.PASS if ok else Outcome.FAIL,
        reason=detail,
        observed=observed,
        bound=bound,
        measurements=measurements,
    )


def drift(values: Sequence[float]) -> float:
    """How far a series moves relative to its mean: (max − min) / |mean|.

    0 for a constant series (zeros included); ``inf`` when the mean is 0 but the
    values differ.
    """
    low, high = min(values), max(values)
    if high == low:
        return 0.0
    # Divide before summing: fsum of values near the float limit overflows (and raises).
    mean = math.fsum(v / len(values) for v in values)
    if mean == 0:
        return math.inf
    return (high - low) / abs(mean)


def judge_stable(
    criterion: Criterion, metric: Metric, series: Sequence[float], measurement: Measurement
) -> Verdict:
    """``metric stable within X%``: the drift over the window is at most X %."""
    assert criterion.tolerance is not None
    problem = _problem(measurement)
    if problem is not None:
        return _inconclusive(criterion, problem, measurement)
    bad = [v for v in series if not math.isfinite(v)]
    if bad:
        return _inconclusive(criterion, f"the window holds {format_number(bad[0])}", measurement)
    if len(series) < 2:
        return _inconclusive(
            criterion, f"collecting samples: {len(series)} of at least 2 in the window", measurement
        )
    moved = drift(series)
    ok = moved <= criterion.tolerance
    shown = "∞" if math.isinf(moved) else format_quantity(moved, "%")
    reason = (
        f"drift {shown} {'<=' if ok else '>'} {format_quantity(criterion.tolerance, '%')} over "
        f"{len(series)} samples ({show(min(series), metric, '')}..{show(max(series), metric, '')})"
    )
    return Verdict(
        criterion=criterion,
        outcome=Outcome.PASS if ok else Outcome.FAIL,
        reason=reason,
        observed=moved,
        bound=criterion.tolerance,
        measurements=(measurement,),
    )
