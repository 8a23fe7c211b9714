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
