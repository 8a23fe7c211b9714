"""Notifications as an observer: the plan's ``[notify.NAME]`` channels hear of a
run's events after their effect, through a background dispatcher.

Delivery never blocks or delays a decision: the hooks below only queue an event
(microseconds); each channel's worker sends it with a timeout and bounded
retries, and every attempt is journaled (``notification``: delivered or failed,
and why). Strings pass the run's redactor before they leave the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._approval import ApprovalAnswer
from .._model import Decision, GateResult, Phase, Plan, RunResult, Split
from .._registry import RunInfoView
from ..hookspecs import hookimpl
from ..notify import (
    Dispatcher,
    NotificationEvent,
    attempt_data,
    event_for_approval,
    event_for_decision,
    event_for_observer_failure,
    event_for_phase_start,
    event_for_run_end,
    parse_notifiers,
)
from .events import EventKind

if TYPE_CHECKING:
    from .rollout import Rollout

__all__ = ["DRAIN_TIMEOUT", "Notifications", "attach_notifications"]

DRAIN_TIMEOUT = 10.0  # seconds the run's end waits for queued notifications

Journal = Callable[[Mapping[str, Any]], None]


class Notifications:
    """Hook implementations that turn run events into queued notifications."""

    def __init__(self, plan: Plan, env: Mapping[str, str], *, redact: Callable[[str], str]) -> None:
        self.plan = plan
        channels = parse_notifiers(plan.notify, env)
        self.journal: Journal | None = None
        self.dispatcher = Dispatcher(channels, redact=redact, on_attempt=self._attempt)
        self.confirmed: float | None = None

    def _attempt(
        self, notifier: str, event: NotificationEvent, delivered: bool, why: str, attempt: int
    ) -> None:
        if self.journal is not None:
            self.journal(attempt_data(notifier, event, delivered, why, attempt))

    def _submit(self, event: NotificationEvent | None) -> None:
        if event is not None:
            self.dispatcher.submit(event)

    def close(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait a bounded time for what is queued, then report the rest undelivered."""
        self.dispatcher.drain(timeout)
        self.dispatcher.close()

    def observer_failed(self, run: RunInfoView, plugin: str, problem: str) -> None:
        """Another observer raised or hung: people hear of it (the decision stood)."""
        self._submit(
            event_for_observer_failure(
                run_id=run.run_id,
                plan=self.plan.name,
                observer=plugin,
                error=problem,
                at=run.clock.now(),
                rehearsal=run.rehearsal,
            )
        )

    @hookimpl
    def gatekeeper_traffic_changed(self, split: Split) -> None:
        self.confirmed = split.canary

    @hookimpl
    def gatekeeper_phase_started(self, run: RunInfoView, phase: Phase, split: Split) -> None:
        first = phase.checkpoints[0] if phase.checkpoints else None
        self._submit(
            event_for_phase_start(
                run_id=run.run_id,
                plan=self.plan.name,
                phase=phase.name,
                at=run.clock.now(),
                traffic=split.canary,
                first_checkpoint=first.name if first else None,
                first_at=run.clock.now() + first.offset if first else None,
                rehearsal=run.rehearsal,
            )
        )

    @hookimpl
    def gatekeeper_approval_requested(self, run: RunInfoView, phase: Phase) -> None:
        prompt = phase.approval.prompt if phase.approval is not None else "approval"
        self._submit(
            event_for_approval(
                run_id=run.run_id,
                plan=self.plan.name,
                phase=phase.name,
                at=run.clock.now(),
                prompt=prompt,
                traffic=self.confirmed,
                rehearsal=run.rehearsal,
            )
        )

    @hookimpl
    def gatekeeper_approval_answered(self, run: RunInfoView, answer: ApprovalAnswer) -> None:
        """(Answers are journaled; no message of their own.)"""

    @hookimpl
    def gatekeeper_checkpoint_judged(
        self,
        run: RunInfoView,
        result: GateResult,
        decision: Decision,
        next_at: datetime | None,
        next_checkpoint: str | None,
    ) -> None:
        self._submit(
            event_for_decision(
                run_id=run.run_id,
                plan=self.plan.name,
                result=result,
                decision=decision,
                at=run.clock.now(),
                traffic=self.confirmed,
                next_at=next_at,
                next_checkpoint=next_checkpoint,
                rehearsal=run.rehearsal,
            )
        )

    @hookimpl
    def gatekeeper_run_finished(self, run: RunInfoView, result: RunResult) -> None:
        self._submit(
            event_for_run_end(
                run_id=run.run_id,
                plan=self.plan.name,
                outcome=result.outcome,
                reason=result.reason,
                at=run.clock.now(),
                traffic=result.split.canary if result.split else self.confirmed,
                rehearsal=run.rehearsal,
            )
        )


def attach_notifications(
    rollout: Rollout, env: Mapping[str, str], redact: Callable[[str], str]
) -> Notifications | None:
    """The plan's channels as the run's own observer, each attempt journaled (None
    when the plan notifies nobody)."""
    if not rollout.plan.notify:
        return None
    notifications = Notifications(rollout.plan, env, redact=redact)

    def journal(attempt: Mapping[str, Any]) -> None:
        if rollout.run_id:
            rollout.ctx.journal(EventKind.NOTIFICATION, data=attempt)

    notifications.journal = journal
    rollout.observers.local.register(notifications, name="notifications")
    journaled = rollout.observers.on_failure

    def failed(plugin: str, hook: str, problem: str) -> None:
        if journaled is not None:
            journaled(plugin, hook, problem)
        if plugin != "notifications" and rollout.ctx.view is not None:
            notifications.observer_failed(rollout.ctx.view, plugin, problem)

    rollout.observers.on_failure = failed
    return notifications
