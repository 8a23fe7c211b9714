"""The operator channel: what a person asks of a live run, through its journal.

``gatekeeper rollback``, ``hold``, ``resume``, ``approve`` and ``reject`` append a
request to the run's journal (never fenced by the runner's lease); the runner
reads new requests at every wait slice (about once a second in a real run) and
acknowledges each one it applies with an ``operator_applied`` event. With no
live runner, the command applies a rollback itself.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from .._calendar import Freeze
from .._protocols import Event
from .context import RunContext
from .events import EventKind

__all__ = ["OperatorChannel", "OperatorRollback"]

_READ = frozenset(
    {
        EventKind.ROLLBACK_REQUESTED,
        EventKind.HOLD_REQUESTED,
        EventKind.RESUME_REQUESTED,
        EventKind.FREEZE_REQUESTED,
        EventKind.APPROVAL_GIVEN,
        EventKind.APPROVAL_REJECTED,
        EventKind.OPERATOR_APPLIED,
    }
)


class OperatorRollback(Exception):  # noqa: N818 - a request, handled by the run loop
    """A person asked for a rollback: the run rolls back at once and ends."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Answer:
    given: bool
    by: str
    reason: str
    seq: int


class OperatorChannel:
    """New operator requests of one run, read from its journal."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.seen = 0
        self.rollback: Event | None = None
        self.held_by: str | None = None
        self.approvals: dict[str, Answer] = {}
        self.freezes: list[Freeze] = []
        self._applied: set[int] = set()

    def holding(self) -> bool:
        """A person asked the run to hold and has not resumed it."""
        return self.held_by is not None

    def poll(self) -> None:
        """Read what was appended since the last poll; raise :class:`OperatorRollback`
        when a rollback was asked for."""
        if self.ctx.run_id:
            for event in self.ctx.store.events(self.ctx.run_id, after=self.seen):
                self.seen = max(self.seen, event.seq)
                if event.kind in _READ:
                    self._take(event)
        if self.rollback is not None:
            by = str(self.rollback.data.get("by", "") or "an operator")
            why = str(self.rollback.data.get("reason", "") or "gatekeeper rollback")
            raise OperatorRollback(f"rolled back by {by}: {why}")

    def _take(self, event: Event) -> None:
        kind = event.kind
        if kind == EventKind.OPERATOR_APPLIED:
            self._applied.add(int(event.data.get("request", 0)))
            if self.rollback is not None and self.rollback.seq in self._applied:
                self.rollback = None
        elif event.seq in self._applied:
            return
        elif kind == EventKind.ROLLBACK_REQUESTED:
            self.rollback = event
        elif kind == EventKind.HOLD_REQUESTED:
            self.held_by = str(event.data.get("by", "") or "an operator")
            self.applied(event, "holding: the run keeps judging, advances nothing")
        elif kind == EventKind.FREEZE_REQUESTED:
            until = datetime.fromisoformat(str(event.data["until"]))
            if until > event.at:
                self.freezes.append(
                    Freeze(
                        name=f"operator-{event.seq}",
                        start=event.at,
                        end=until,
                        reason=f"{event.data.get('reason') or 'frozen'} "
                        f"(by {event.data.get('by') or 'an operator'})",
                    )
                )
                self.applied(event, f"frozen until {until.isoformat()}")
        elif kind == EventKind.RESUME_REQUESTED:
            if self.held_by is not None:
                self.applied(event, f"resumed (held by {self.held_by})")
            self.held_by = None
        elif event.phase:
            self.approvals[event.phase] = Answer(
                given=kind == EventKind.APPROVAL_GIVEN,
                by=str(event.data.get("by", "")),
                reason=str(event.data.get("reason", "") or "from the journal"),
                seq=event.seq,
            )

    def applied(self, request: Event, what: str) -> None:
        """Acknowledge a request in the journal (once)."""
        if request.seq in self._applied or not self.ctx.run_id:
            return
        self._applied.add(request.seq)
        self.ctx.journal(
            EventKind.OPERATOR_APPLIED,
            data={"request": request.seq, "kind": str(request.kind), "what": what},
        )
