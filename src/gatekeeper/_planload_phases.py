"""The plan loader's phases: shares, steps, checkpoints, approvals and gates.

Checkpoints are where a plan's size turns into run time (a rehearsal judges every
one of them), so their count and the length of a phase and of the whole plan are
held to the limits of :mod:`gatekeeper._limits` here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from ._grammar import GrammarError, Parsed, Quantity, parse_criterion
from ._limits import (
    MAX_CHECKPOINTS,
    MAX_CRITERIA,
    MAX_JUDGEMENTS,
    MAX_PLAN_DURATION,
    shorten,
)
from ._locate import PathPart
from ._model import (
    Approval,
    Criterion,
    Gate,
    Kind,
    Metric,
    OnFail,
    OnInconclusive,
    Phase,
    Policy,
    Step,
)
from ._planload import kind
from ._planload_schedule import ScheduleLoader
from ._units import METRIC_UNITS, format_duration

__all__ = ["CRITERION_KEYS", "PHASE_KEYS", "POLICY_KEYS", "PhaseLoader"]

POLICY_KEYS = (
    "on_fail",
    "on_inconclusive",
    "failure_limit",
    "consecutive_failure_limit",
    "inconclusive_limit",
    "recheck_interval",
    "window",
    "alpha",
)
PHASE_KEYS = (
    "name",
    "traffic",
    "checkpoints",
    "gate",
    "gate_alpha",
    "policy",
    "approval",
    "description",
    "steps",
    "start_at",
    "window",
    "watch",
)
CRITERION_KEYS = ("criterion", "fail_only", "alpha")
_MAX_POLICY_LIMIT = 1_000_000  # failure and inconclusive limits


class PhaseLoader(ScheduleLoader):
    """Reads ``[[phases]]`` and ``[policy]`` tables into :class:`Phase` and :class:`Policy`."""

    def policy(self, value: Any, base: Policy, key: tuple[PathPart, ...]) -> Policy:
        table = self.table(value, key)
        self.unknown_keys(table, POLICY_KEYS, key)
        fields: dict[str, Any] = {
            "on_fail": base.on_fail,
            "on_inconclusive": base.on_inconclusive,
            "failure_limit": base.failure_limit,
            "consecutive_failure_limit": base.consecutive_failure_limit,
            "inconclusive_limit": base.inconclusive_limit,
            "recheck_interval": base.recheck_interval,
            "window": base.window,
            "alpha": base.alpha,
        }
        if "alpha" in table:
            number = table["alpha"]
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not 0 < number < 1
            ):
                raise self.error(
                    (*key, "alpha"), f"expected a number in (0, 1), got {shorten(number)}"
                )
            fields["alpha"] = float(number)
        if "window" in table:
            fields["window"] = self.window_name(table["window"], (*key, "window"))
        if "on_fail" in table:
            fields["on_fail"] = self.choice(table["on_fail"], OnFail, (*key, "on_fail"))
        if "on_inconclusive" in table:
            fields["on_inconclusive"] = self.choice(
                table["on_inconclusive"], OnInconclusive, (*key, "on_inconclusive")
            )
        for limit in ("failure_limit", "consecutive_failure_limit", "inconclusive_limit"):
            if limit in table:
                number = table[limit]
                if (
                    isinstance(number, bool)
                    or not isinstance(number, int)
                    or not 1 <= number <= _MAX_POLICY_LIMIT
                ):
                    raise self.error(
                        (*key, limit),
                        f"expected a whole number from 1 to {_MAX_POLICY_LIMIT}, "
                        f"got {shorten(number)}",
                    )
                fields[limit] = number
        if "recheck_interval" in table:
            interval = self.duration(table["recheck_interval"], (*key, "recheck_interval"))
            if interval <= timedelta(0):
                raise self.error((*key, "recheck_interval"), "must be longer than 0s")
            fields["recheck_interval"] = interval
        return Policy(**fields)

    def phases(
        self, value: Any, metrics: Mapping[str, Metric], policy: Policy
    ) -> tuple[Phase, ...]:
        if value is None:
            raise self.error(("phases",), "a plan needs at least one [[phases]] table")
        if not isinstance(value, list) or not value:
            raise self.error(("phases",), "expected a non-empty array of [[phases]] tables")
        phases: list[Phase] = []
        seen: set[str] = set()
        checkpoints = 0
        judgements = 0
        total = timedelta(0)
        for index, raw in enumerate(value):
            key: tuple[PathPart, ...] = ("phases", index)
            phase = self.phase(self.table(raw, key), key, metrics, policy)
            if phase.name in seen:
                raise self.error((*key, "name"), f"duplicate phase name {phase.name!r}")
            seen.add(phase.name)
            checkpoints += len(phase.checkpoints)
            if checkpoints > MAX_CHECKPOINTS:
                raise self.error(
                    key,
                    f"the plan has more than {MAX_CHECKPOINTS} checkpoints (the limit), "
                    "every phase and step counted",
                )
            judgements += len(phase.checkpoints) * len(phase.gate.criteria)
            if judgements > MAX_JUDGEMENTS:
                raise self.error(
                    key,
                    f"the plan judges more than {MAX_JUDGEMENTS} criteria at its checkpoints "
                    "(the limit: checkpoints times criteria, summed over the phases)",
                )
            total += phase.duration
            if total > MAX_PLAN_DURATION:
                raise self.error(
                    key,
                    "the phases together last more than "
                    f"{format_duration(MAX_PLAN_DURATION)} (the limit)",
                )
            phases.append(phase)
        return tuple(phases)

    def phase(
        self,
        table: Mapping[str, Any],
        key: tuple[PathPart, ...],
        metrics: Mapping[str, Metric],
        policy: Policy,
    ) -> Phase:
        self.unknown_keys(table, PHASE_KEYS, key)
        name = self.name(self.string(table, "name", key), (*key, "name"))
        steps: tuple[Step, ...] = ()
        if "steps" in table:
            for clash in ("traffic", "checkpoints"):
                if clash in table:
                    raise self.error(
                        (*key, clash),
                        "a phase with steps gives traffic and checkpoints in each step",
                    )
            steps, checkpoints = self.steps(table["steps"], (*key, "steps"))
            traffic = steps[0].traffic
        else:
            traffic = self.share(table.get("traffic"), (*key, "traffic"))
            checkpoints = self.checkpoints(table.get("checkpoints"), (*key, "checkpoints"))
        alpha = table.get("gate_alpha", 0.01)
        if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0 < alpha < 1:
            raise self.error(
                (*key, "gate_alpha"), f"expected a number in (0, 1), got {shorten(alpha)}"
            )
        gate = Gate(
            criteria=self.criteria(table.get("gate"), (*key, "gate"), metrics),
            alpha=float(alpha),
        )
        description = table.get("description", "")
        from ._planload_watch import load_watch  # noqa: PLC0415 - it calls back into criteria()

        watch = load_watch(self, table.get("watch"), (*key, "watch"), metrics, gate)
        return Phase(
            name=name,
            traffic=float(traffic),
            checkpoints=checkpoints,
            gate=gate,
            policy=self.phase_policy(table, policy, key),
            approval=self.approval(table.get("approval"), (*key, "approval")),
            description=self.free_text(description, (*key, "description"), multiline=True),
            steps=steps,
            start_at=self.start_at(table.get("start_at"), (*key, "start_at")),
            watch=watch,
        )

    def phase_policy(
        self, table: Mapping[str, Any], policy: Policy, key: tuple[PathPart, ...]
    ) -> Policy:
        """The phase's policy; a phase-level ``window`` overrides the plan's."""
        own = self.policy(table.get("policy", {}), policy, (*key, "policy"))
        if "window" in table:
            return attrs.evolve(own, window=self.window_name(table["window"], (*key, "window")))
        return own

    def approval(self, value: Any, key: tuple[PathPart, ...]) -> Approval | None:
        if value is None or value is False:
            return None
        if value is True:
            return Approval()
        if isinstance(value, str):
            return Approval(prompt=self.free_text(value, key))
        table = self.table(value, key)
        self.unknown_keys(table, ("prompt", "timeout", "ask_at", "on_deadline"), key)
        timeout = table.get("timeout")
        on_deadline = table.get("on_deadline", "hold")
        if on_deadline not in ("hold", "reject"):
            raise self.error(
                (*key, "on_deadline"), f"expected 'hold' or 'reject', got {shorten(on_deadline)}"
            )
        return Approval(
            prompt=self.free_text(table.get("prompt", "go/no-go"), (*key, "prompt")),
            timeout=None if timeout is None else self.duration(timeout, (*key, "timeout")),
            ask_at=self.ask_at(table.get("ask_at"), (*key, "ask_at")),
            on_deadline=on_deadline,
        )

    def criteria(
        self,
        value: Any,
        key: tuple[PathPart, ...],
        metrics: Mapping[str, Metric],
        *,
        watch: bool = False,
    ) -> tuple[Criterion, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key, "a gate needs a non-empty list of criteria")
        if len(value) > MAX_CRITERIA:
            raise self.error(
                key, f"{len(value)} criteria is too many for one gate (at most {MAX_CRITERIA})"
            )
        out: list[Criterion] = []
        for index, raw in enumerate(value):
            item_key = (*key, index)
            fail_only = False
            alpha: float | None = None
            if isinstance(raw, Mapping):
                self.unknown_keys(raw, CRITERION_KEYS, item_key)
                text = self.string(raw, "criterion", item_key)
                fail_only = raw.get("fail_only", False)
                if not isinstance(fail_only, bool):  # "false" as a string is truthy
                    raise self.error(
                        (*item_key, "fail_only"), f"expected true or false, got {kind(fail_only)}"
                    )
                if "alpha" in raw:
                    alpha = raw["alpha"]
                    if isinstance(alpha, bool) or not isinstance(alpha, float) or not 0 < alpha < 1:
                        raise self.error((*item_key, "alpha"), "expected a number in (0, 1)")
            elif isinstance(raw, str):
                text = raw
            else:
                raise self.error(item_key, f"expected a criterion string, got {kind(raw)}")
            try:
                parsed = parse_criterion(text)
            except GrammarError as exc:
                raise self.error(
                    item_key, f"{exc.message} (column {exc.column}: {shorten(text)})"
                ) from None
            criterion = self.criterion(parsed, item_key, metrics, fail_only, alpha)
            if parsed.persist is not None and not watch:
                raise self.error(
                    item_key,
                    "'for DURATION' belongs to a watch's criteria ([phases.watch] gate): "
                    "a checkpoint judges once",
                )
            if criterion.kind is Kind.COMPARE:
                from ._judge import (  # noqa: PLC0415 - compare plans only
                    compare_data_problem,
                    compare_metric_problem,
                )

                problem = compare_metric_problem(metrics[criterion.metric])
                if problem is not None:
                    raise self.error(("metrics", criterion.metric, "window"), problem)
                problem = compare_data_problem(
                    metrics[criterion.metric], against_baseline=criterion.reference is not None
                )
                if problem is not None:
                    raise self.error(item_key, problem)
            out.append(criterion)
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
            raise self.error(key, f"unknown metric {shorten(parsed.metric)} (known: {known})")
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
                persist=parsed.persist,
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
            persist=parsed.persist,
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
        value = quantity.base * scale
        if not math.isfinite(value):  # 1e308s on a metric in ms: an always-passing bound
            raise self.error(key, f"number out of range in the metric's unit: {quantity.value:g}")
        return value
