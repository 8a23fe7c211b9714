"""What a compare criterion needs from its metric, checked when a plan is loaded."""

from __future__ import annotations

from .._model import Metric
from .._units import format_duration


def compare_metric_problem(metric: Metric) -> str | None:
    """Why ``metric`` cannot feed a compare criterion, or ``None``.

    The statistical judge turns cumulative counts into per-look increments. A metric with
    its own ``window`` gives counts over a sliding window: their differences are not the
    events of the interval (they drop what slides out), so a healthy canary looks like a
    counter that goes backwards, or like harm. Such a plan is refused, not converted.
    """
    if metric.window is not None:
        return (
            f"metric {metric.name!r} has window = {format_duration(metric.window)!r}: a "
            "compare criterion needs counts cumulative since the phase started; remove "
            "the window (the engine queries each look over the time since the phase "
            "started)"
        )
    return None


def compare_data_problem(metric: Metric, *, against_baseline: bool) -> str | None:
    """Why ``metric`` gives no data a statistical criterion can judge, or ``None``.

    The judge compares rates (a numerator and a denominator), bare event counts
    (``count``) or the means of values clipped to declared ``bounds`` (a source giving
    each arm's n, sum and sum of squares); a statistical bound (``canary < 0.5%``) needs
    a rate. Anything else -- a p99 in seconds, a mean of unbounded values -- would be
    judged on an assumption no data can check, so the plan is refused when loaded rather
    than INCONCLUSIVE at every look of the run.
    """
    if metric.is_ratio:
        return None
    if not against_baseline:
        return (
            f"a statistical bound needs the counts behind the rate: give metric "
            f"{metric.name!r} a numerator and a denominator"
        )
    if metric.count or metric.bounds is not None:
        return None
    return (
        f"metric {metric.name!r} gives no data the statistical judge can compare: give it a "
        "numerator and a denominator (a rate, e.g. errors over requests; a latency as the "
        "requests slower than a bucket bound over all requests), count = true (bare "
        "events), or bounds = [low, high] (the mean of values clipped to them); a mean of "
        "unbounded values cannot be judged with error control"
    )
