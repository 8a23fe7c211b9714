"""The journal's vocabulary: every event kind, and the encoding of what it carries.

One module owns the journal format (the shape pytest's ``reports.py`` gives its
reports): the engine, the CLI and the pytest plugin write through
:class:`~gatekeeper._run.context.RunContext`, replay reads through
:mod:`~gatekeeper._run.replay`, and both use the codecs here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from .._model import Decision, Measurement, Verdict

__all__ = [
    "OPERATOR_KINDS",
    "EventKind",
    "decision_data",
    "json_number",
    "measurement_data",
    "measurement_from",
    "number",
    "verdict_data",
]


class EventKind(StrEnum):
    """What happened. The values are the strings stored in every journal."""

    RUN_STARTED = "run_started"
    RESUMED = "resumed"
    ABANDONED = "abandoned"
    RUN_ENDED = "run_ended"
    INTERRUPTED = "interrupted"
    PRERUN = "prerun"
    # traffic: intent, then confirmation (or failure); reads and repairs
    TRAFFIC_READ = "traffic_read"
    TRAFFIC_INTENT = "traffic_intent"
    TRAFFIC_CONFIRMED = "traffic_confirmed"
    TRAFFIC_FAILED = "traffic_failed"
    TRAFFIC_RECONCILE = "traffic_reconcile"
    TRAFFIC_DRIFT = "traffic_drift"
    # phases and checkpoints
    PHASE_STARTED = "phase_started"
    STEP_STARTED = "step_started"
    MEASUREMENT = "measurement"
    VERDICT = "verdict"
    JUDGE_STATE = "judge_state"
    DECISION = "decision"
    PHASE_ENDED = "phase_ended"
    # waiting for a start time, a window, the end of a freeze or of a hold
    PHASE_WAITING = "phase_waiting"
    HOLD_RELEASED = "hold_released"
    # approvals
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GIVEN = "approval_given"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_PENDING = "approval_pending"
    # an operator, through the journal (gatekeeper rollback / hold / resume)
    ROLLBACK_REQUESTED = "rollback_requested"
    HOLD_REQUESTED = "hold_requested"
    RESUME_REQUESTED = "resume_requested"
    FREEZE_REQUESTED = "freeze_requested"
    OPERATOR_APPLIED = "operator_applied"
    # an observer (hook, reporter, notifier) failed; the decision stood
    OBSERVER_FAILED = "observer_failed"
    # one delivery attempt of a notification (delivered or not, and why)
    NOTIFICATION = "notification"
    # the watch between checkpoints: a criterion changed state; its periodic snapshot
    WATCH_CHANGED = "watch_changed"
    WATCH_SNAPSHOT = "watch_snapshot"


#: Written by a person's command into a run another process may be driving: these
#: appends are not fenced by the runner's lease (the store's operator channel).
OPERATOR_KINDS = frozenset(
    {
        EventKind.ROLLBACK_REQUESTED,
        EventKind.HOLD_REQUESTED,
        EventKind.RESUME_REQUESTED,
        EventKind.FREEZE_REQUESTED,
        EventKind.APPROVAL_GIVEN,
        EventKind.APPROVAL_REJECTED,
    }
)


def json_number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinities: spell them as Prometheus does."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def number(value: Any) -> float | None:
    """The inverse of :func:`json_number`."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}.get(value)
    return float(value)


def measurement_data(m: Measurement) -> dict[str, Any]:
    """A measurement as JSON-able journal data."""
    data: dict[str, Any] = {
        "metric": m.metric,
        "variant": m.variant,
        "value": json_number(m.value),
        "query": m.query,
        "source": m.source,
    }
    for field in ("reason", "numerator", "denominator"):
        value = getattr(m, field)
        if value is not None:
            data[field] = json_number(value) if isinstance(value, float) else value
    if m.moments is not None:
        data["moments"] = list(m.moments)
    if m.labels:
        data["labels"] = list(m.labels)
    if m.warnings:
        data["warnings"] = list(m.warnings)
    if m.retries:
        data["retries"] = m.retries
    return data


def measurement_from(data: Mapping[str, Any], at: datetime) -> Measurement:
    """A journaled measurement, read back."""
    moments = data.get("moments")
    return Measurement(
        metric=str(data.get("metric", "")),
        variant=str(data.get("variant", "canary")),
        at=at,
        value=number(data.get("value")),
        query=str(data.get("query", "")),
        source=str(data.get("source", "")),
        reason=data.get("reason"),
        numerator=number(data.get("numerator")),
        denominator=number(data.get("denominator")),
        labels=tuple(data.get("labels", ())),
        warnings=tuple(data.get("warnings", ())),
        retries=int(data.get("retries", 0)),
        moments=None if moments is None else (moments[0], moments[1], moments[2]),
    )


def verdict_data(v: Verdict) -> dict[str, Any]:
    """A verdict as JSON-able journal data (its measurements are journaled apart)."""
    data: dict[str, Any] = {
        "criterion": v.criterion.text,
        "outcome": v.outcome.value,
        "reason": v.reason,
        "observed": json_number(v.observed),
        "bound": json_number(v.bound),
    }
    if v.evidence:
        data["evidence"] = dict(v.evidence)
    return data


def decision_data(decision: Decision) -> dict[str, Any]:
    """The part of a decision every decision event carries."""
    return {
        "action": decision.action.value,
        "reason": decision.reason,
        "recheck_at": decision.recheck_at.isoformat() if decision.recheck_at else None,
    }
