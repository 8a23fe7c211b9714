"""A complete gatekeeper plugin: the ``env`` metric source.

Reads a metric's value from an environment variable (the metric's query names it),
which is handy for CI smoke gates fed by an earlier job:

    [sources.ci]
    type = "env"
    prefix = "GATE_"          # optional: the query "ERRORS" reads GATE_ERRORS

    [metrics.smoke_failures]
    source = "ci"
    query = "SMOKE_FAILURES"
    count = true
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gatekeeper
from gatekeeper import ConfigError, Measurement, PluginContext, Query, SourceRegistry


class EnvSource:
    """Answers each query from ``context.env`` (never ``os.environ`` directly, so the
    engine and tests decide what the plugin sees)."""

    def __init__(self, name: str, env: Mapping[str, str], prefix: str) -> None:
        self.name = name
        self._env = env
        self._prefix = prefix

    def query(self, query: Query) -> Measurement:
        variable = self._prefix + query.render()
        raw = self._env.get(variable)
        value: float | None = None
        reason: str | None = None
        if raw is None:
            reason = f"{variable} is not set"
        else:
            try:
                value = float(raw)
            except ValueError:
                reason = f"{variable} is not a number"
            else:
                if not math.isfinite(value):
                    value, reason = None, f"{variable} is not finite"
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=value,
            reason=reason,
            query=variable,
            source=self.name,
        )


def create(name: str, options: Mapping[str, Any], context: PluginContext) -> EnvSource:
    """The factory: validates options, does no I/O (``gatekeeper validate`` calls it)."""
    prefix = options.get("prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"expected a string, got {prefix!r}", key="prefix")
    unknown = sorted(set(options) - {"prefix"})
    if unknown:
        raise ConfigError("unknown option (known: prefix)", key=unknown[0])
    return EnvSource(name, context.env, prefix)


@gatekeeper.hookimpl
def gatekeeper_add_sources(sources: SourceRegistry) -> None:
    sources.add("env", create, owner="gatekeeper-env")
