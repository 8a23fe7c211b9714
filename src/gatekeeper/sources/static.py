"""``static``: fixed values from the plan, for examples and for trying a gate out.

::

    [sources.fixed]
    type = "static"
    values = { error_rate = 0.002, revenue_per_user = { canary = 10.7, baseline = 10.0 } }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._redact import shown
from ..exceptions import ConfigError

__all__ = ["StaticSource", "create"]


class StaticSource:
    """Answers every query from a fixed table: ``values[metric]`` or
    ``values[metric][variant]``. A missing entry is "no data", never a value."""

    def __init__(self, name: str, values: Mapping[str, float | Mapping[str, float]]) -> None:
        self.name = name
        self._values = dict(values)

    async def query(self, query: Query) -> Measurement:
        key = query.render() or query.metric
        entry = self._values.get(key)
        value: float | None = None
        if isinstance(entry, Mapping):
            raw = entry.get(query.variant)
            value = None if raw is None else float(raw)
        elif entry is not None:
            value = float(entry)
        reason = None if value is not None else f"no static value for {key!r} ({query.variant})"
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=value,
            query=key,
            source=self.name,
            reason=reason,
        )


def create(name: str, options: Mapping[str, Any], context: PluginContext) -> StaticSource:
    opts = Options(options)
    values = opts.table("values")
    opts.done()
    for key, value in values.items():
        items = value.items() if isinstance(value, Mapping) else [("", value)]
        for variant, number in items:
            if isinstance(number, bool) or not isinstance(number, int | float):
                where = f"values.{key}" + (f".{variant}" if variant else "")
                raise ConfigError(f"expected a number, got {shown(number)}", key=where)
            if variant and variant not in ("canary", "baseline"):
                raise ConfigError("expected canary or baseline", key=f"values.{key}.{variant}")
    return StaticSource(name, values)
