"""Building a plan's parts: sources, the traffic backend, approvers, the store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._approval import Approver, ChainApprover, EnvApprover, FileApprover
from .._model import Plan
from .._planfile import plan_error
from .._plugins import Plugins
from .._protocols import MetricSource, PluginContext, Store, TrafficBackend
from ..exceptions import ConfigError
from ..sources.base import MetricValidator

__all__ = [
    "build_sources",
    "build_traffic",
    "default_approver",
    "open_run_store",
    "plugin_context",
]


def default_approver(env: Mapping[str, str]) -> Approver:
    """Approvals for CI: ``GATEKEEPER_APPROVE`` / ``GATEKEEPER_REJECT``, and the JSON
    file named by ``GATEKEEPER_APPROVAL_FILE`` (the journal is always asked first)."""
    approvers: list[Approver] = [EnvApprover(env)]
    if env.get("GATEKEEPER_APPROVAL_FILE"):
        approvers.append(FileApprover(Path(env["GATEKEEPER_APPROVAL_FILE"])))
    return ChainApprover(*approvers)


def plugin_context(plan: Plan, env: Mapping[str, str] | None = None) -> PluginContext:
    base = Path(plan.path).resolve().parent if plan.path else Path.cwd()
    return PluginContext(
        base_dir=base, env=dict(os.environ) if env is None else env, plan_name=plan.name
    )


def _config_error(plan: Plan, key: tuple[str, ...], exc: ConfigError) -> Exception:
    sub = tuple(exc.key.split(".")) if exc.key else ()
    return plan_error(plan, (*key, *sub), exc.message)


def build_sources(plan: Plan, plugins: Plugins, context: PluginContext) -> dict[str, MetricSource]:
    """Every source of the plan, built by its factory; errors name the plan line."""
    built: dict[str, MetricSource] = {}
    for name, config in plan.sources.items():
        key = ("sources", name)
        if config.type not in plugins.sources:
            raise plan_error(plan, (*key, "type"), plugins.sources.unknown(config.type))
        try:
            built[name] = plugins.sources.get(config.type)(name, config.options, context)
        except ConfigError as exc:
            raise _config_error(plan, key, exc) from None
    # A source may check its metrics' own options now, not at the ramp's third hour.
    for name, metric in plan.metrics.items():
        source = built[metric.source]
        if not isinstance(source, MetricValidator):
            continue
        try:
            source.validate_metric(metric.query or "", metric.options)
        except ConfigError as exc:
            raise _config_error(plan, ("metrics", name), exc) from None
    return built


def build_traffic(plan: Plan, plugins: Plugins, context: PluginContext) -> TrafficBackend:
    """The plan's traffic backend, built by its factory."""
    config = plan.traffic
    if config.type not in plugins.backends:
        raise plan_error(plan, ("traffic", "type"), plugins.backends.unknown(config.type))
    try:
        return plugins.backends.get(config.type)(config.options, context)
    except ConfigError as exc:
        raise _config_error(plan, ("traffic",), exc) from None


def open_run_store(plan: Plan, store: Store | str | Path | None) -> tuple[Store, bool]:
    """The journal a run writes to, and whether the caller opened it (and closes it).

    A :class:`Store` is used as given; a path or URL is opened; ``None`` is the
    plan's own durable journal (``$GATEKEEPER_STORE``, else SQLite next to the plan
    file), as the command line does, so a library run is visible to ``status`` and
    a later phase finds the one before it.
    """
    from .._status import open_plan_store  # noqa: PLC0415 - sqlite3 only when needed

    if store is None:
        return open_plan_store(plan), True
    if isinstance(store, str | Path):
        return open_plan_store(plan, str(store)), True
    return store, False


def run_redactor(plan: Plan, env: Mapping[str, str], store: object) -> Any:
    """The plan's secrets (and a store URL's password), as one redactor."""
    from .._redact import Redactor, secrets_of  # noqa: PLC0415

    try:
        found = secrets_of(plan, env, store=store if isinstance(store, str) else None)
    except ConfigError as exc:
        raise plan_error(plan, tuple(exc.key.split(".")) if exc.key else (), exc.message) from None
    return Redactor.from_secrets(found)


def redact_text(redact: Any) -> Any:
    """The redactor as ``str -> str`` (it takes any JSON-able value)."""

    def text(value: str) -> str:
        return str(redact(value))

    return text
