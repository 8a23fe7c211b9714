"""Plan files: TOML (or a mapping) → :class:`Plan`, and back.

Every error is one :class:`PlanError` naming the file, the key path and the line,
raised before anything is built: a plan is accepted whole or not at all. The loader
is split by concern: :mod:`._planload` (located errors, checked readers),
:mod:`._planload_phases` (phases, checkpoints, gates) and this module (the file, the
top-level tables, sources and metrics); the limits live in :mod:`._limits`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from ._calendar_parse import calendar_to_mapping
from ._limits import (
    MAX_PLAN_BYTES,
    MAX_TEXT,
    decode_utf8,
    deepest,
    one_line,
    read_bounded,
    shorten,
)
from ._locate import PathPart, format_path, locate
from ._model import (
    Criterion,
    Kind,
    Metric,
    Phase,
    Plan,
    Policy,
    SourceConfig,
    TrafficConfig,
)
from ._planload import kind
from ._planload_phases import CRITERION_KEYS, PHASE_KEYS, POLICY_KEYS, PhaseLoader
from ._plantext import parse_toml
from ._template import placeholders
from ._units import METRIC_UNITS, format_duration
from .exceptions import PlanError

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "load_plan",
    "locate_key",
    "plan_error",
    "plan_from_mapping",
    "plan_from_text",
    "plan_to_mapping",
]

_TOP_KEYS = (
    "plan",
    "variants",
    "args",
    "sources",
    "metrics",
    "traffic",
    "policy",
    "phases",
    "windows",
    "freezes",
    "notify",
)
_METRIC_KEYS = (
    "source",
    "query",
    "numerator",
    "denominator",
    "baseline_query",
    "unit",
    "count",
    "window",
    "args",
    "dispersion",
    "bursts",
    "bounds",
)
# Kept under their old names: tests and docs checks import them from here.
_POLICY_KEYS = POLICY_KEYS
_PHASE_KEYS = PHASE_KEYS
_CRITERION_KEYS = CRITERION_KEYS
# What every query may use besides the plan's and the metric's args (Query.placeholders).
BUILTIN_PLACEHOLDERS = ("phase", "variant", "window")
_QUERY_FIELDS = ("query", "numerator", "denominator", "baseline_query")


def load_plan(path: str | Path) -> Plan:
    """Read a TOML plan file. Raises :class:`PlanError` with file and line."""
    path = Path(path)
    data = read_bounded(path, MAX_PLAN_BYTES, "plan")
    return plan_from_text(decode_utf8(data, file=str(path), what="plan"), path=str(path))


def plan_from_text(text: str, *, path: str | None = None) -> Plan:
    """Parse TOML text into a plan; ``path`` is used in error messages."""
    return _Loader(parse_toml(text, path=path), path=path, text=text).plan()


def plan_from_mapping(data: Mapping[str, Any], *, path: str | None = None) -> Plan:
    """Build a plan from a mapping shaped like the TOML file."""
    return _Loader(data, path=path, text=None).plan()


def locate_key(plan: Plan, key: Sequence[PathPart]) -> int | None:
    """The line of ``key`` in the plan's file (for errors found after loading)."""
    if plan.path is None:
        return None
    path = Path(plan.path)
    try:
        text = decode_utf8(read_bounded(path, MAX_PLAN_BYTES, "plan"), file=str(path), what="plan")
    except PlanError:
        return None
    return locate(text, key)


def plan_error(plan: Plan, key: Sequence[PathPart], message: str) -> PlanError:
    """A :class:`PlanError` about ``key`` of an already loaded plan (one line, however
    many lines ``message`` had)."""
    return PlanError(
        one_line(message), file=plan.path, key=format_path(key) or None, line=locate_key(plan, key)
    )


def _digest(mapping: Mapping[str, Any]) -> str:
    import hashlib  # noqa: PLC0415 - hashlib and json cost more at import than here
    import json  # noqa: PLC0415

    canonical = json.dumps(mapping, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Loader(PhaseLoader):
    """The whole plan: its shape, the top-level tables, sources, metrics, traffic."""

    def plan(self) -> Plan:
        problem = deepest(self.data)
        if problem is not None:
            raise self.error(problem[1], problem[0])
        data = self.table(self.data, ())
        self.unknown_keys(data, _TOP_KEYS, ())
        name, description = self.meta(data)
        calendar = self.load_calendar(data)
        notify = self.notify(data.get("notify", {}))
        variants = self.string_map(data.get("variants", {}), ("variants",))
        unknown_variants = set(variants) - {"canary", "baseline"}
        if unknown_variants:
            raise self.error(
                ("variants", sorted(unknown_variants)[0]),
                "unknown variant (known: baseline, canary)",
            )
        args = self.string_map(data.get("args", {}), ("args",))
        self.names(args, ("args",), pattern="arg")
        sources = self.sources(data.get("sources", {}))
        metrics = self.metrics(data.get("metrics", {}), sources, args)
        traffic = self.traffic(data.get("traffic", {"type": "memory"}))
        policy = self.policy(data.get("policy", {}), Policy(), ("policy",))
        phases = self.phases(data.get("phases"), metrics, policy)
        self.alpha_budget(phases, policy)
        plan = Plan(
            name=name,
            description=description,
            phases=phases,
            metrics=metrics,
            sources=sources,
            traffic=traffic,
            policy=policy,
            variants=variants,
            args=args,
            calendar=calendar,
            notify=notify,
            path=self.path,
        )
        return attrs.evolve(plan, digest=_digest(plan_to_mapping(plan)))

    def meta(self, data: Mapping[str, Any]) -> tuple[str, str]:
        """``[plan]``: its name (default: the plan's folder) and description."""
        meta = self.table(data.get("plan", {}), ("plan",))
        self.unknown_keys(meta, ("name", "description", "timezone"), ("plan",))
        name = meta.get("name")
        if name is None:
            # absolute(): a bare "gates.toml" has an empty parent name.
            name = (Path(self.path).absolute().parent.name if self.path else "") or "plan"
        if not isinstance(name, str) or not name:
            raise self.error(("plan", "name"), f"expected a non-empty string, got {kind(name)}")
        description = self.free_text(
            meta.get("description", ""), ("plan", "description"), multiline=True, limit=MAX_TEXT
        )
        return self.free_text(name, ("plan", "name"), limit=128), description

    def notify(self, value: Any) -> dict[str, Any]:
        """``[notify.NAME]`` tables, checked now (types, events, options; secrets by
        environment name only), kept as written for the run to build its channels."""
        from .notify import parse_notifiers  # noqa: PLC0415 - only plans that notify

        table = self.table(value, ("notify",))
        if table:

            def error(message: str, key: str) -> Exception:
                return self.error(tuple(key.split(".")), message)

            parse_notifiers(table, {}, error)
        return {name: dict(entry) for name, entry in table.items()}

    def string_map(self, value: Any, key: Sequence[PathPart]) -> dict[str, str]:
        table = self.table(value, key)
        out: dict[str, str] = {}
        for name, item in table.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.error((*key, name), f"expected a string, got {kind(item)}")
            out[name] = str(item)
        return out

    def sources(self, value: Any) -> dict[str, SourceConfig]:
        table = self.table(value, ("sources",))
        out: dict[str, SourceConfig] = {}
        for name, raw in table.items():
            key = ("sources", name)
            self.name(name, key)
            entry = self.table(raw, key)
            type_name = self.string(entry, "type", key)
            options = {k: v for k, v in entry.items() if k != "type"}
            out[name] = SourceConfig(name=name, type=type_name, options=options)
        return out

    def metrics(
        self, value: Any, sources: Mapping[str, SourceConfig], args: Mapping[str, str]
    ) -> dict[str, Metric]:
        table = self.table(value, ("metrics",))
        out: dict[str, Metric] = {}
        for name, raw in table.items():
            key: tuple[PathPart, ...] = ("metrics", name)
            self.name(name, key)
            entry = self.table(raw, key)
            source = self.string(entry, "source", key)
            if source not in sources:
                known = ", ".join(sorted(sources)) or "none defined"
                raise self.error(
                    (*key, "source"), f"unknown source {shorten(source)} (known: {known})"
                )
            query = entry.get("query")
            numerator = entry.get("numerator")
            denominator = entry.get("denominator")
            for field in _QUERY_FIELDS:
                if field in entry and not isinstance(entry[field], str):
                    raise self.error((*key, field), f"expected a string, got {kind(entry[field])}")
            if (numerator is None) != (denominator is None):
                missing = "denominator" if denominator is None else "numerator"
                raise self.error(key, f"a ratio metric needs both numerator and {missing}")
            if query is not None and numerator is not None:
                raise self.error(key, "give either query or numerator/denominator, not both")
            unit = entry.get("unit", "")
            if not isinstance(unit, str) or unit not in METRIC_UNITS:  # a list is unhashable
                known = ", ".join(repr(u) for u in METRIC_UNITS)
                raise self.error((*key, "unit"), f"unknown unit {shorten(unit)} (known: {known})")
            count = entry.get("count", unit == "count")
            if not isinstance(count, bool):
                raise self.error((*key, "count"), f"expected true or false, got {kind(count)}")
            own_args = self.string_map(entry.get("args", {}), (*key, "args"))
            self.names(own_args, (*key, "args"), pattern="arg")
            options = {k: v for k, v in entry.items() if k not in _METRIC_KEYS}
            self.placeholders(entry, key, {*args, *own_args, *BUILTIN_PLACEHOLDERS})
            window = entry.get("window")
            out[name] = Metric(
                window=None if window is None else self.duration(window, (*key, "window")),
                name=name,
                source=source,
                query=query,
                numerator=numerator,
                denominator=denominator,
                baseline_query=entry.get("baseline_query"),
                unit=unit,
                count=count,
                args=own_args,
                options=options,
                dispersion=self.dispersion(entry.get("dispersion", 1.0), (*key, "dispersion")),
                bursts=self.bursts(entry.get("bursts"), (*key, "bursts")),
                bounds=self.bounds(entry.get("bounds"), (*key, "bounds")),
            )
        return out

    def alpha_budget(self, phases: Sequence[Phase], policy: Policy) -> None:
        """The rollout's alpha must cover the compare criteria's own alphas."""
        if not any(c.kind is Kind.COMPARE for p in phases for c in p.gate.criteria):
            return
        from ._judge import AlphaBudget  # noqa: PLC0415 - compare plans only

        try:
            AlphaBudget.of(phases, alpha=policy.alpha)
        except ValueError as exc:
            raise self.error(("policy", "alpha"), str(exc)) from None

    def dispersion(self, value: Any, key: tuple[PathPart, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 1e6:
            raise self.error(key, f"expected a number from 1 to 1000000, got {kind(value)}")
        return float(value)

    def bursts(self, value: Any, key: tuple[PathPart, ...]) -> tuple[float, timedelta] | None:
        """``{ size = "30%", lasting = "15m" }``: each arm's rate wanders on its own by
        about ``size`` (the standard deviation of its log) for about ``lasting``."""
        if value is None:
            return None
        entry = self.table(value, key)
        self.unknown_keys(entry, ("size", "lasting"), key)
        raw = entry.get("size")
        size = raw
        if isinstance(raw, str) and raw.strip().endswith("%"):
            try:
                size = float(raw.strip()[:-1]) / 100.0
            except ValueError:
                size = None
        if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size <= 3:
            got = "nothing" if raw is None else kind(raw)
            raise self.error(
                (*key, "size"),
                f'expected a share above 0% and at most 300% ("30%" or 0.3), got {got}',
            )
        if "lasting" not in entry:
            raise self.error((*key, "lasting"), 'expected a duration such as "15m", got nothing')
        lasting = self.duration(entry["lasting"], (*key, "lasting"), limit=timedelta(days=7))
        if lasting < timedelta(seconds=1):
            raise self.error((*key, "lasting"), "bursts last at least 1s")
        return float(size), lasting

    def bounds(self, value: Any, key: tuple[PathPart, ...]) -> tuple[float, float] | None:
        if value is None:
            return None
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and all(math.isfinite(v) for v in value)
            and value[0] < value[1]
        )
        if not ok:
            raise self.error(key, "expected [low, high]: two finite numbers, low < high")
        return float(value[0]), float(value[1])

    def placeholders(
        self, entry: Mapping[str, Any], key: tuple[PathPart, ...], known: set[str]
    ) -> None:
        """Every ``{{name}}`` in the metric's queries and options is one a query will
        have: a misspelled ``{{ap}}`` fails now, not at the ramp's third hour."""
        stack: list[tuple[tuple[PathPart, ...], Any]] = [
            ((*key, field), value)
            for field, value in entry.items()
            if field not in _METRIC_KEYS or field in _QUERY_FIELDS
        ]
        while stack:
            where, value = stack.pop(0)
            if isinstance(value, str):
                unknown = [n for n in placeholders(value) if n not in known]
                if unknown:
                    raise self.error(
                        where,
                        f"unknown placeholder {{{{{unknown[0]}}}}} "
                        f"(known: {', '.join(sorted(known))}; add it to [args])",
                    )
            elif isinstance(value, Mapping):
                stack.extend(((*where, k), v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend(((*where, i), v) for i, v in enumerate(value))

    def traffic(self, value: Any) -> TrafficConfig:
        table = self.table(value, ("traffic",))
        type_name = self.string(table, "type", ("traffic",))
        return TrafficConfig(
            type=type_name, options={k: v for k, v in table.items() if k != "type"}
        )


def plan_to_mapping(plan: Plan) -> dict[str, Any]:
    """The mapping form of a plan (what ``from_mapping`` reads back)."""

    def policy_map(policy: Policy) -> dict[str, Any]:
        return {
            "on_fail": policy.on_fail.value,
            "on_inconclusive": policy.on_inconclusive.value,
            "failure_limit": policy.failure_limit,
            "consecutive_failure_limit": policy.consecutive_failure_limit,
            "inconclusive_limit": policy.inconclusive_limit,
            "recheck_interval": format_duration(policy.recheck_interval),
            **({"window": policy.window} if policy.window else {}),
            **({"alpha": policy.alpha} if policy.alpha != 0.01 else {}),
        }

    def criterion_map(criterion: Criterion) -> str | dict[str, Any]:
        if not criterion.fail_only and criterion.alpha is None:
            return criterion.text
        out: dict[str, Any] = {"criterion": criterion.text}
        if criterion.fail_only:
            out["fail_only"] = True
        if criterion.alpha is not None:
            out["alpha"] = criterion.alpha
        return out

    def metric_map(metric: Metric) -> dict[str, Any]:
        out: dict[str, Any] = {"source": metric.source}
        for field in ("query", "numerator", "denominator", "baseline_query"):
            value = getattr(metric, field)
            if value is not None:
                out[field] = value
        if metric.unit:
            out["unit"] = metric.unit
        if metric.count and metric.unit != "count":
            out["count"] = True
        if metric.window is not None:
            out["window"] = format_duration(metric.window)
        if metric.args:
            out["args"] = dict(metric.args)
        if metric.dispersion != 1.0:
            out["dispersion"] = metric.dispersion
        if metric.bursts is not None:
            size, lasting = metric.bursts
            out["bursts"] = {"size": f"{size * 100:g}%", "lasting": format_duration(lasting)}
        if metric.bounds is not None:
            out["bounds"] = list(metric.bounds)
        out.update(metric.options)
        return out

    phases = [_phase_map(phase, plan, policy_map, criterion_map) for phase in plan.phases]
    mapping: dict[str, Any] = {
        "plan": {"name": plan.name},
        "sources": {name: {"type": s.type, **dict(s.options)} for name, s in plan.sources.items()},
        "metrics": {name: metric_map(m) for name, m in plan.metrics.items()},
        "traffic": {"type": plan.traffic.type, **dict(plan.traffic.options)},
        "policy": policy_map(plan.policy),
        "phases": phases,
    }
    if plan.description:
        mapping["plan"]["description"] = plan.description
    if plan.variants:
        mapping["variants"] = dict(plan.variants)
    if plan.args:
        mapping["args"] = dict(plan.args)
    calendar = calendar_to_mapping(plan.calendar)
    if "timezone" in calendar.get("plan", {}):
        mapping["plan"]["timezone"] = calendar["plan"]["timezone"]
    mapping.update({k: v for k, v in calendar.items() if k != "plan"})
    if plan.notify:
        mapping["notify"] = {name: dict(entry) for name, entry in plan.notify.items()}
    return mapping


def _phase_map(
    phase: Phase,
    plan: Plan,
    policy_map: Callable[[Policy], dict[str, Any]],
    criterion_map: Callable[[Criterion], str | dict[str, Any]],
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": phase.name}
    if phase.steps:
        entry["steps"] = [
            {"traffic": step.traffic, "checkpoints": list(step.names)} for step in phase.steps
        ]
    else:
        entry["traffic"] = phase.traffic
        entry["checkpoints"] = [c.name for c in phase.checkpoints]
    entry["gate"] = [criterion_map(c) for c in phase.gate.criteria]
    if phase.gate.alpha != 0.01:
        entry["gate_alpha"] = phase.gate.alpha
    if phase.policy != plan.policy:
        entry["policy"] = policy_map(phase.policy)
    if phase.approval is not None:
        approval: dict[str, Any] = {"prompt": phase.approval.prompt}
        if phase.approval.timeout is not None:
            approval["timeout"] = format_duration(phase.approval.timeout)
        if phase.approval.ask_at is not None:
            approval["ask_at"] = str(phase.approval.ask_at)
        if phase.approval.on_deadline != "hold":
            approval["on_deadline"] = phase.approval.on_deadline
        entry["approval"] = approval
    if phase.start_at is not None:
        entry["start_at"] = str(phase.start_at)
    if phase.watch is not None:
        entry["watch"] = {
            "every": format_duration(phase.watch.every),
            "gate": [criterion_map(c) for c in phase.watch.gate.criteria],
            "stale": format_duration(phase.watch.stale),
        }
    if phase.description:
        entry["description"] = phase.description
    return entry
