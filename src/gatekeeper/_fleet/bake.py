"""A bake's evidence: how many requests a target served since its bake began.

Read from the fleet's ``requests`` metric for the canary: a ratio's denominator,
or a plain metric's value, over the window from the bake's start to now, with the
target's args. Missing data is ``None`` (never enough).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from .._model import Measurement, Plan, Query
from .._protocols import MetricSource

__all__ = ["requests_served"]


async def requests_served(
    plan: Plan,
    sources: Mapping[str, MetricSource] | None,
    metric_name: str,
    since: datetime,
    now: datetime,
) -> float | None:
    """The canary's requests in ``[since, now]`` as the metric's source tells them."""
    from .._run.calls import call  # noqa: PLC0415

    if sources is None:
        return None
    metric = plan.metrics[metric_name]
    source = sources[metric.source]
    by_name = bool(getattr(source, "by_metric_name", False))
    text = metric.denominator if metric.is_ratio else (metric.query or metric.name)
    args = {**plan.args, **metric.args, "variant": plan.variants.get("canary", "canary")}
    query = Query(
        metric=metric.name,
        text=metric.name if by_name else str(text),
        at=now,
        window=max(now - since, timedelta(0)),
        variant="canary",
        phase="bake",
        args=args,
        options=metric.options,
    )
    try:
        measured = await call(source.query, query)
    except Exception:  # noqa: BLE001 - a broken source is "no evidence", never enough
        return None
    if not isinstance(measured, Measurement) or (measured.problem is not None and not by_name):
        return None
    if metric.is_ratio:
        return measured.denominator if by_name else measured.value
    return measured.value
