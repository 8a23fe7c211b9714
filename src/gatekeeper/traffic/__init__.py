"""Built-in traffic backends. Each module exposes ``create(options, context)``."""

from __future__ import annotations

import math

from ..exceptions import TrafficError

__all__ = ["check_share"]


def check_share(canary_percent: float, *, actual: float | None = None) -> None:
    """Refuse a canary share outside [0, 100] (or NaN) before any backend touches the
    balancer: the part of the ``set_split`` contract every backend shares."""
    if math.isnan(canary_percent) or not 0.0 <= canary_percent <= 100.0:
        raise TrafficError(
            f"canary share must be within [0, 100], got {canary_percent}",
            wanted=canary_percent,
            actual=actual,
        )
