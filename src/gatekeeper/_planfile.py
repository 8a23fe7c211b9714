"""Plan files: TOML (or a mapping) → :class:`Plan`, and back.

Every error is one :class:`PlanError` naming the file, the key path and the line,
raised before anything is built: a plan is accepted whole or not at all.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._grammar import GrammarError, Parsed, Quantity, parse_criterion
from ._locate import PathPart, format_path, locate
from ._model import (
    Approval,
    Checkpoint,
    Criterion,
    Gate,
    Kind,
    Metric,
    OnFail,
    OnInconclusive,
    Phase,
    Plan,
    Policy,
    SourceConfig,
    Step,
    TrafficConfig,
)
from ._units import METRIC_UNITS, format_duration, parse_duration
from .exceptions import PlanError

__all__ = ["load_plan", "plan_from_mapping", "plan_to_mapping"]

_TOP_KEYS = ("plan", "variants", "args", "sources", "metrics", "traffic", "policy", "phases")
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
)
_POLICY_KEYS = (
    "on_fail",
    "on_inconclusive",
    "failure_limit",
    "consecutive_failure_limit",
    "inconclusive_limit",
    "recheck_interval",
)
_PHASE_KEYS = (
    "name",
    "traffic",
    "checkpoints",
    "gate",
    "gate_alpha",
    "policy",
    "approval",
    "description",
    "steps",
)
_CRITERION_KEYS = ("criterion", "fail_only", "alpha")
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")


def load_plan(path: str | Path) -> Plan:
    """Read a TOML plan file. Raises :class:`PlanError` with file and line."""
    path = Path(path)
    try:
        # utf-8-sig: an editor's byte order mark is not TOML (tomllib refuses it).
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PlanError(f"cannot read the plan: {exc.strerror or exc}", file=str(path)) from None
    except UnicodeDecodeError:
        raise PlanError("the plan is not UTF-8 text", file=str(path)) from None
    return plan_from_text(text, path=str(path))


def plan_from_text(text: str, *, path: str | None = None) -> Plan:
    """Parse TOML text into a plan; ``path`` is used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no lineno/msg attributes (3.14 adds them):
        # its message ends with "(at line N, column M)".
        message = str(getattr(exc, "msg", exc))
        line = getattr(exc, "lineno", None)
        where = _TOML_WHERE.search(message)
        if where is not None:
            message = message[: where.start()].rstrip()
            if where.group(1) is None:  # "(at end of document)": an unclosed array, ...
                message += " at the end of the file"
                found = len(text.rstrip().split("\n"))
            else:
                found = int(where.group(1))
            line = line if line is not None else found
        raise PlanError(f"not valid TOML: {message}", file=path, line=line) from None
    return _Loader(data, path=path, text=text).plan()


def plan_from_mapping(data: Mapping[str, Any], *, path: str | None = None) -> Plan:
    """Build a plan from a mapping shaped like the TOML file."""
    return _Loader(data, path=path, text=None).plan()


def locate_key(plan: Plan, key: Sequence[PathPart]) -> int | None:
    """The line of ``key`` in the plan's file (for errors found after loading)."""
    if plan.path is None:
        return None
    try:
        text = Path(plan.path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    return locate(text, key)


def plan_error(plan: Plan, key: Sequence[PathPart], message: str) -> PlanError:
    """A :class:`PlanError` about ``key`` of an already loaded plan."""
    return PlanError(message, file=plan.path, key=format_path(key), line=locate_key(plan, key))


def _digest(mapping: Mapping[str, Any]) -> str:
    import hashlib  # noqa: PLC0415 - hashlib and json cost more at import than here
    import json  # noqa: PLC0415

    canonical = json.dumps(mapping, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Loader:
    def __init__(self, data: Mapping[str, Any], *, path: str | None, text: str | None) -> None:
        self.data = data
        self.path = path
        self.text = text

    # -- errors ---------------------------------------------------------------------

    def error(self, key: Sequence[PathPart], message: str) -> PlanError:
        line = locate(self.text, key) if self.text is not None else None
        return PlanError(message, file=self.path, key=format_path(key) or None, line=line)

    def table(self, value: Any, key: Sequence[PathPart]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_kind(value)}")
        return value

    def unknown_keys(
        self, table: Mapping[str, Any], allowed: Sequence[str], key: Sequence[PathPart]
    ) -> None:
        for name in table:
            if name not in allowed:
                raise self.error((*key, name), f"unknown key (known: {', '.join(sorted(allowed))})")

    def string(self, table: Mapping[str, Any], name: str, key: Sequence[PathPart]) -> str:
        value = table.get(name)
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else _kind(value)
            raise self.error((*key, name), f"expected a non-empty string, got {got}")
        return value

    def duration(self, value: Any, key: Sequence[PathPart]) -> timedelta:
        if not isinstance(value, str | int | float):  # a table or an array: not a duration
            raise self.error(key, f"expected a duration like '15m', got {_kind(value)}")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    # -- the plan -------------------------------------------------------------------

    def plan(self) -> Plan:
        data = self.table(self.data, ())
        self.unknown_keys(data, _TOP_KEYS, ())
        meta = self.table(data.get("plan", {}), ("plan",))
        self.unknown_keys(meta, ("name", "description"), ("plan",))
        name = meta.get("name")
        if name is None:
            # absolute(): a bare "gates.toml" has an empty parent name.
            name = (Path(self.path).absolute().parent.name if self.path else "") or "plan"
        if not isinstance(name, str) or not name:
            raise self.error(("plan", "name"), "expected a non-empty string")
        variants = self.string_map(data.get("variants", {}), ("variants",))
        unknown_variants = set(variants) - {"canary", "baseline"}
        if unknown_variants:
            raise self.error(
                ("variants", sorted(unknown_variants)[0]),
                "unknown variant (known: baseline, canary)",
            )
        args = self.string_map(data.get("args", {}), ("args",))
        sources = self.sources(data.get("sources", {}))
        metrics = self.metrics(data.get("metrics", {}), sources)
        traffic = self.traffic(data.get("traffic", {"type": "memory"}))
        policy = self.policy(data.get("policy", {}), Policy(), ("policy",))
        phases = self.phases(data.get("phases"), metrics, policy)
        plan = Plan(
            name=name,
            description=str(meta.get("description", "")),
            phases=phases,
            metrics=metrics,
            sources=sources,
            traffic=traffic,
            policy=policy,
            variants=variants,
            args=args,
            path=self.path,
        )
        mapping = plan_to_mapping(plan)
        return Plan(
            name=plan.name,
            description=plan.description,
            phases=plan.phases,
            metrics=plan.metrics,
            sources=plan.sources,
            traffic=plan.traffic,
            policy=plan.policy,
            variants=plan.variants,
            args=plan.args,
            path=self.path,
            digest=_digest(mapping),
        )

    def string_map(self, value: Any, key: Sequence[PathPart]) -> dict[str, str]:
        table = self.table(value, key)
        out: dict[str, str] = {}
        for name, item in table.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.error((*key, name), f"expected a string, got {_kind(item)}")
            out[name] = str(item)
        return out

    def sources(self, value: Any) -> dict[str, SourceConfig]:
        table = self.table(value, ("sources",))
        out: dict[str, SourceConfig] = {}
        for name, raw in table.items():
            key = ("sources", name)
            entry = self.table(raw, key)
            type_name = self.string(entry, "type", key)
            options = {k: v for k, v in entry.items() if k != "type"}
            out[name] = SourceConfig(name=name, type=type_name, options=options)
        return out

    def metrics(self, value: Any, sources: Mapping[str, SourceConfig]) -> dict[str, Metric]:
        table = self.table(value, ("metrics",))
        out: dict[str, Metric] = {}
        for name, raw in table.items():
            key: tuple[PathPart, ...] = ("metrics", name)
            entry = self.table(raw, key)
            source = self.string(entry, "source", key)
            if source not in sources:
                known = ", ".join(sorted(sources)) or "none defined"
                raise self.error((*key, "source"), f"unknown source {source!r} (known: {known})")
            query = entry.get("query")
            numerator = entry.get("numerator")
            denominator = entry.get("denominator")
            for field in ("query", "numerator", "denominator", "baseline_query"):
                if field in entry and not isinstance(entry[field], str):
                    raise self.error((*key, field), f"expected a string, got {_kind(entry[field])}")
            if (numerator is None) != (denominator is None):
                missing = "denominator" if denominator is None else "numerator"
                raise self.error(key, f"a ratio metric needs both numerator and {missing}")
            if query is not None and numerator is not None:
                raise self.error(key, "give either query or numerator/denominator, not both")
            unit = entry.get("unit", "")
            if not isinstance(unit, str) or unit not in METRIC_UNITS:  # a list is unhashable
                known = ", ".join(repr(u) for u in METRIC_UNITS)
                raise self.error((*key, "unit"), f"unknown unit {unit!r} (known: {known})")
            count = entry.get("count", unit == "count")
            if not isinstance(count, bool):
                raise self.error((*key, "count"), f"expected true or false, got {_kind(count)}")
            options = {k: v for k, v in entry.items() if k not in _METRIC_KEYS}
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
                args=self.string_map(entry.get("args", {}), (*key, "args")),
                options=options,
            )
        return out

    def traffic(self, value: Any) -> TrafficConfig:
        table = self.table(value, ("traffic",))
        type_name = self.string(table, "type", ("traffic",))
        return TrafficConfig(
            type=type_name, options={k: v for k, v in table.items() if k != "type"}
        )

    def policy(self, value: Any, base: Policy, key: Sequence[PathPart]) -> Policy:
        table = self.table(value, key)
        self.unknown_keys(table, _POLICY_KEYS, key)
        fields: dict[str, Any] = {
            "on_fail": base.on_fail,
            "on_inconclusive": base.on_inconclusive,
            "failure_limit": base.failure_limit,
            "consecutive_failure_limit": base.consecutive_failure_limit,
            "inconclusive_limit": base.inconclusive_limit,
            "recheck_interval": base.recheck_interval,
        }
        if "on_fail" in table:
            fields["on_fail"] = self.choice(table["on_fail"], OnFail, (*key, "on_fail"))
        if "on_inconclusive" in table:
            fields["on_inconclusive"] = self.choice(
                table["on_inconclusive"], OnInconclusive, (*key, "on_inconclusive")
            )
        for limit in ("failure_limit", "consecutive_failure_limit", "inconclusive_limit"):
            if limit in table:
                number = table[limit]
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    raise self.error((*key, limit), f"expected a whole number >= 1, got {number!r}")
                fields[limit] = number
        if "recheck_interval" in table:
            interval = self.duration(table["recheck_interval"], (*key, "recheck_interval"))
            if interval <= timedelta(0):
                raise self.error((*key, "recheck_interval"), "must be longer than 0s")
            fields["recheck_interval"] = interval
        return Policy(**fields)

    def choice(self, value: Any, enum: Any, key: Sequence[PathPart]) -> Any:
        values = [member.value for member in enum]
        if value not in values:
            raise self.error(key, f"expected one of {', '.join(values)}, got {value!r}")
        return enum(value)

    def phases(
        self, value: Any, metrics: Mapping[str, Metric], policy: Policy
    ) -> tuple[Phase, ...]:
        if value is None:
            raise self.error(("phases",), "a plan needs at least one [[phases]] table")
        if not isinstance(value, list) or not value:
            raise self.error(("phases",), "expected a non-empty array of [[phases]] tables")
        phases: list[Phase] = []
        seen: set[str] = set()
        for index, raw in enumerate(value):
            key: tuple[PathPart, ...] = ("phases", index)
            phase = self.phase(self.table(raw, key), key, metrics, policy)
            if phase.name in seen:
                raise self.error((*key, "name"), f"duplicate phase name {phase.name!r}")
            seen.add(phase.name)
            phases.append(phase)
        return tuple(phases)

    def phase(
        self,
        table: Mapping[str, Any],
        key: tuple[PathPart, ...],
        metrics: Mapping[str, Metric],
        policy: Policy,
    ) -> Phase:
        self.unknown_keys(table, _PHASE_KEYS, key)
        name = self.string(table, "name", key)
        steps: tuple[Step, ...] = ()
        if "steps" in table:
            for clash in ("traffic", "checkpoints"):
                if clash in table:
                    raise self.error(
                        (*key, clash),
                        "a phase with steps gives traffic and checkpoints in each step",
                    )
            steps, checkpoints = self.steps(table["steps"], (*key, "steps"))
            traffic: Any = steps[0].traffic
        else:
            traffic = self.share(table.get("traffic"), (*key, "traffic"))
            checkpoints = self.checkpoints(table.get("checkpoints"), (*key, "checkpoints"))
        alpha = table.get("gate_alpha", 0.01)
        if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0 < alpha < 1:
            raise self.error((*key, "gate_alpha"), f"expected a number in (0, 1), got {alpha!r}")
        gate = Gate(
            criteria=self.criteria(table.get("gate"), (*key, "gate"), metrics),
            alpha=float(alpha),
        )
        return Phase(
            name=name,
            traffic=float(traffic),
            checkpoints=checkpoints,
            gate=gate,
            policy=self.policy(table.get("policy", {}), policy, (*key, "policy")),
            approval=self.approval(table.get("approval"), (*key, "approval")),
            description=str(table.get("description", "")),
            steps=steps,
        )

    def share(self, traffic: Any, key: tuple[PathPart, ...]) -> float:
        if (
            isinstance(traffic, bool)
            or not isinstance(traffic, int | float)
            or not math.isfinite(traffic)
            or not 0 <= traffic <= 100
        ):
            raise self.error(
                key, f"expected the canary's share in percent, 0 to 100, got {traffic!r}"
            )
        return float(traffic)

    def steps(
        self, value: Any, key: tuple[PathPart, ...]
    ) -> tuple[tuple[Step, ...], tuple[Checkpoint, ...]]:
        """Steps of a phase, and their checkpoints flattened onto the phase's clock:
        each step starts when the previous one's last checkpoint passed."""
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a non-empty array of {traffic, checkpoints} tables")
        steps: list[Step] = []
        flat: list[Checkpoint] = []
        start = timedelta(0)
        for index, raw in enumerate(value):
            step_key = (*key, index)
            table = self.table(raw, step_key)
            self.unknown_keys(table, ("traffic", "checkpoints"), step_key)
            share = self.share(table.get("traffic"), (*step_key, "traffic"))
            own = self.checkpoints(table.get("checkpoints"), (*step_key, "checkpoints"))
            steps.append(
                Step(
                    traffic=share,
                    checkpoints=tuple(c.offset for c in own),
                    names=tuple(c.name for c in own),
                )
            )
            label = f"{share:g}%"
            flat.extend(
                Checkpoint(
                    name=f"{c.name}@{label}",
                    offset=start + c.offset,
                    traffic=share,
                    step_start=start,
                )
                for c in own
            )
            start += own[-1].offset
        names = [c.name for c in flat]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise self.error(
                key, f"two steps give the checkpoint {duplicate!r}: use different shares"
            )
        return tuple(steps), tuple(flat)

    def checkpoints(self, value: Any, key: tuple[PathPart, ...]) -> tuple[Checkpoint, ...]:
        offsets: list[tuple[str, timedelta, tuple[PathPart, ...]]] = []
        if isinstance(value, Mapping):
            self.unknown_keys(value, ("every", "until"), key)
            if "every" not in value or "until" not in value:
                raise self.error(key, "a checkpoint series needs both 'every' and 'until'")
            every = self.duration(value["every"], (*key, "every"))
            until = self.duration(value["until"], (*key, "until"))
            if every <= timedelta(0):
                raise self.error((*key, "every"), "must be longer than 0s")
            if until < every:
                raise self.error((*key, "until"), "must be at least 'every'")
            count = int(until / every)
            if count > 10_000:
                raise self.error(key, f"{count} checkpoints is too many (at most 10000)")
            offsets = [(format_duration(every * i), every * i, key) for i in range(1, count + 1)]
        elif isinstance(value, list) and value:
            for index, raw in enumerate(value):
                item_key = (*key, index)
                offset = self.duration(raw, item_key)
                # Keep the name as written ("36h", not "1d12h"): it is the test id.
                name = raw.strip() if isinstance(raw, str) else format_duration(offset)
                offsets.append((name, offset, item_key))
        else:
            raise self.error(
                key, "expected a list of offsets like ['15m', '30m', '1h'] or {every, until}"
            )
        previous = timedelta(0)
        for _, offset, item_key in offsets:
            if offset <= previous:
                raise self.error(
                    item_key,
                    "checkpoints must be after the phase start and in increasing order",
                )
            previous = offset
        return tuple(Checkpoint(name=name, offset=offset) for name, offset, _ in offsets)

    def approval(self, value: Any, key: tuple[PathPart, ...]) -> Approval | None:
        if value is None or value is False:
            return None
        if value is True:
            return Approval()
        if isinstance(value, str):
            return Approval(prompt=value)
        table = self.table(value, key)
        self.unknown_keys(table, ("prompt", "timeout"), key)
        timeout = table.get("timeout")
        return Approval(
            prompt=str(table.get("prompt", "go/no-go")),
            timeout=None if timeout is None else self.duration(timeout, (*key, "timeout")),
        )

    def criteria(
        self, value: Any, key: tuple[PathPart, ...], metrics: Mapping[str, Metric]
    ) -> tuple[Criterion, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key, "a gate needs a non-empty list of criteria")
        out: list[Criterion] = []
        for index, raw in enumerate(value):
            item_key = (*key, index)
            fail_only = False
            alpha: float | None = None
            if isinstance(raw, Mapping):
                self.unknown_keys(raw, _CRITERION_KEYS, item_key)
                text = self.string(raw, "criterion", item_key)
                fail_only = raw.get("fail_only", False)
                if not isinstance(fail_only, bool):  # "false" as a string is truthy
                    raise self.error(
                        (*item_key, "fail_only"), f"expected true or false, got {_kind(fail_only)}"
                    )
                if "alpha" in raw:
                    alpha = raw["alpha"]
                    if isinstance(alpha, bool) or not isinstance(alpha, float) or not 0 < alpha < 1:
                        raise self.error((*item_key, "alpha"), "expected a number in (0, 1)")
            elif isinstance(raw, str):
                text = raw
            else:
                raise self.error(item_key, f"expected a criterion string, got {_kind(raw)}")
            try:
                parsed = parse_criterion(text)
            except GrammarError as exc:
                raise self.error(
                    item_key, f"{exc.message} (column {exc.column}: {text!r})"
                ) from None
            out.append(self.criterion(parsed, item_key, metrics, fail_only, alpha))
        return tuple(out)

    def criterion(
        self,
        parsed: Parsed,
        key: tuple[PathPart, ...],
        metrics: Mapping[str, Metric],
        fail_only: bool,
        alpha: float | None,
    ) -> Criterion:
        metric = metrics.get(parsed.metric)
        if metric is None:
            known = ", ".join(sorted(metrics)) or "none defined"
            raise self.error(key, f"unknown metric {parsed.metric!r} (known: {known})")
        if parsed.stable_within is not None:
            return Criterion(
                text=parsed.text,
                kind=Kind.STABLE,
                metric=metric.name,
                tolerance=parsed.stable_within.base,
                window=parsed.window,
                unit="%",
            )
        if parsed.reference is not None:
            offset = 0.0
            unit = ""
            if parsed.offset is not None:
                offset = self.convert(parsed.offset, metric, key)
                unit = parsed.offset.unit
            if parsed.canary and parsed.factor < 1.0:
                raise self.error(key, "a compare tolerance factor must be at least 1")
            return Criterion(
                text=parsed.text,
                kind=Kind.COMPARE if parsed.canary else Kind.RELATIVE,
                metric=metric.name,
                op=parsed.op,
                reference=parsed.reference,
                factor=parsed.factor,
                offset=offset,
                unit=unit,
                fail_only=fail_only,
                alpha=alpha,
            )
        assert parsed.bound is not None  # the grammar guarantees one of the forms
        bound = self.convert(parsed.bound, metric, key)
        if parsed.canary:
            base = parsed.bound.base if parsed.bound.unit else bound
            if not 0.0 < base < 1.0 or metric.unit not in ("", "ratio", "percent"):
                raise self.error(
                    key,
                    "a statistical bound ('METRIC canary < BOUND') is a rate strictly "
                    "between 0% and 100% on a ratio metric",
                )
            return Criterion(
                text=parsed.text,
                kind=Kind.COMPARE,
                metric=metric.name,
                op=parsed.op,
                bound=bound,
                unit=parsed.bound.unit,
                fail_only=fail_only,
                alpha=alpha,
            )
        if metric.count and (bound != int(bound) or parsed.bound.unit):
            raise self.error(key, f"{metric.name!r} is a count: compare it with a whole number")
        return Criterion(
            text=parsed.text,
            kind=Kind.COUNT if metric.count else Kind.THRESHOLD,
            metric=metric.name,
            op=parsed.op,
            bound=bound,
            unit=parsed.bound.unit,
            fail_only=fail_only,
            alpha=alpha,
        )

    def convert(self, quantity: Quantity, metric: Metric, key: tuple[PathPart, ...]) -> float:
        """A written quantity in the metric's own unit."""
        dimension, scale = METRIC_UNITS[metric.unit]
        if quantity.dimension is None:
            return quantity.value
        if metric.unit == "count":
            raise self.error(key, f"{metric.name!r} is a count; {quantity.unit!r} does not apply")
        if dimension is None:
            return quantity.base
        if dimension != quantity.dimension:
            raise self.error(
                key,
                f"{metric.name!r} is measured in {metric.unit!r}; "
                f"a bound in {quantity.unit!r} does not fit it",
            )
        return quantity.base * scale


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
        out.update(metric.options)
        return out

    phases = []
    for phase in plan.phases:
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
            entry["approval"] = approval
        if phase.description:
            entry["description"] = phase.description
        phases.append(entry)
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
    return mapping


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__
