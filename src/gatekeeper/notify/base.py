"""What every notifier shares: the message, its JSON encoding and the protocol.

A :class:`NotificationEvent` is a value: what happened to a run, why (each failing
criterion with its value and bound), what happens next and, while an approval
waits, the exact command that answers it. A :class:`Notifier` only delivers one;
the :class:`~gatekeeper.notify.Dispatcher` decides when, retries and reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "EVENT_KINDS",
    "SCHEMA",
    "DeliveryError",
    "Failure",
    "NotificationEvent",
    "Notifier",
    "attempt_data",
]

SCHEMA = "gatekeeper.notification/1"

# The events a ``[notify.NAME]`` table may ask for in ``on``.
EVENT_KINDS = (
    "approval_requested",
    "phase_started",
    "checkpoint_failed",
    "hold",
    "rollback",
    "advanced",
    "run_finished",
    "observer_failure",
)

_TITLES = {
    "approval_requested": "approval requested",
    "phase_started": "phase started",
    "checkpoint_failed": "checkpoint failed",
    "hold": "held",
    "rollback": "rolled back",
    "advanced": "advanced",
    "run_finished": "run finished",
    "observer_failure": "observer failed",
}


class DeliveryError(Exception):
    """One delivery attempt failed; ``transient`` says whether another may succeed
    (a timeout, a refused connection, HTTP 408/425/429/5xx, SMTP 4xx)."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


def _finite(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


@attrs.frozen(kw_only=True)
class Failure:
    """A criterion that did not pass: its text, outcome, value, bound and reason."""

    criterion: str
    outcome: str  # "fail" or "inconclusive"
    reason: str
    observed: float | None = None
    bound: float | None = None

    def line(self) -> str:
        """``FAIL error_rate < 0.5%: 0.9% is not < 0.5%``."""
        return f"{self.outcome.upper()} {self.criterion}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "outcome": self.outcome,
            "observed": _finite(self.observed),
            "bound": _finite(self.bound),
            "reason": self.reason,
        }


@attrs.frozen(kw_only=True)
class NotificationEvent:
    """One thing that happened to a run, told to the people around it."""

    kind: str = attrs.field(validator=attrs.validators.in_(EVENT_KINDS))
    run_id: str
    plan: str
    at: datetime
    what: str  # one line: "ramp rolled back at the 30m checkpoint"
    phase: str | None = None
    checkpoint: str | None = None
    why: tuple[Failure, ...] = ()
    reason: str = ""  # the decision's own words, when there is no criterion to list
    next: str = ""  # what happens now: "the run ended; the canary gets no traffic"
    command: str | None = None  # the command a person runs to answer, if any
    traffic: float | None = None  # the canary share the balancer confirmed, in %
    outcome: str | None = None  # run_finished: "advanced", "rolled back", "held", ...
    rehearsal: bool = False

    @property
    def title(self) -> str:
        """``[gatekeeper] progressive-rollout: ramp rolled back``."""
        prefix = "[gatekeeper rehearsal]" if self.rehearsal else "[gatekeeper]"
        return f"{prefix} {self.plan}: {self.what}"

    @property
    def failed(self) -> bool:
        """A criterion failed (not merely inconclusive)."""
        return any(f.outcome == "fail" for f in self.why)

    def redacted(self, redact: Callable[[str], str]) -> NotificationEvent:
        """A copy with every string passed through ``redact`` (names included: a
        secret has no business in a phase name either)."""

        def text(value: str | None) -> str | None:
            return None if value is None else redact(value)

        return attrs.evolve(
            self,
            run_id=redact(self.run_id),
            plan=redact(self.plan),
            what=redact(self.what),
            phase=text(self.phase),
            checkpoint=text(self.checkpoint),
            why=tuple(
                attrs.evolve(f, criterion=redact(f.criterion), reason=redact(f.reason))
                for f in self.why
            ),
            reason=redact(self.reason),
            next=redact(self.next),
            command=text(self.command),
            outcome=text(self.outcome),
        )

    def to_json(self) -> dict[str, Any]:
        """The webhook payload, schema ``gatekeeper.notification/1`` (docs/notify/webhook.md).

        Fields may be added in a later version of the same schema, never renamed or
        removed; numbers that are not finite are the strings ``"NaN"``, ``"+Inf"``,
        ``"-Inf"``.
        """
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "run_id": self.run_id,
            "plan": self.plan,
            "phase": self.phase,
            "checkpoint": self.checkpoint,
            "at": self.at.isoformat(),
            "title": self.title,
            "what": self.what,
            "why": [f.to_json() for f in self.why],
            "reason": self.reason,
            "next": self.next,
            "command": self.command,
            "traffic": _finite(self.traffic),
            "outcome": self.outcome,
            "rehearsal": self.rehearsal,
        }

    def text(self) -> str:
        """The message as plain text (the email body, the Slack fallback)."""
        lines = [self.what]
        where = " · ".join(
            x
            for x in (
                f"run {self.run_id}",
                f"plan {self.plan}",
                self.phase and f"phase {self.phase}",
                self.checkpoint and f"checkpoint {self.checkpoint}",
                self.traffic is not None and f"canary at {self.traffic:g}%",
                self.at.strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
            )
            if x
        )
        lines.append(where)
        if self.why:
            lines.extend(["", "Why:"])
            lines.extend(f"  {f.line()}" for f in self.why)
        elif self.reason:
            lines.extend(["", f"Why: {self.reason}"])
        if self.next:
            lines.extend(["", f"Next: {self.next}"])
        if self.command:
            lines.extend(["", "Answer with:", f"  {self.command}"])
        return "\n".join(lines) + "\n"


@runtime_checkable
class Notifier(Protocol):
    """Delivers one message to one place, synchronously, within ``timeout`` seconds.

    Called from the dispatcher's worker thread, never from the run's own flow.
    Raises :class:`DeliveryError` when the attempt failed (``transient`` decides
    whether the dispatcher tries again); any other exception counts as a
    non-transient failure. ``close()`` releases what the notifier opened;
    ``secret_env_names()`` names the environment variables holding its secrets, so
    the redactor learns their values.
    """

    def send(self, event: NotificationEvent, *, timeout: float) -> None: ...

    def secret_env_names(self) -> tuple[str, ...]: ...

    def close(self) -> None: ...


def attempt_data(
    notifier: str, event: NotificationEvent, delivered: bool, why: str, attempt: int
) -> dict[str, Any]:
    """What the journal keeps of one delivery attempt (the ``notification`` entry the
    engine appends from the dispatcher's ``on_attempt``; the report reads it back)."""
    return {
        "notifier": notifier,
        "event": event.kind,
        "what": event.what,
        "delivered": delivered,
        "why": why,
        "attempt": attempt,
    }


def env_value(env: Mapping[str, str], name: str, what: str) -> str:
    """A secret read at send time; a missing variable fails the attempt (for good)."""
    value = env.get(name)
    if not value:
        raise DeliveryError(f"environment variable {name} ({what}) is not set", transient=False)
    return value
