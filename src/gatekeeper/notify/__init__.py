"""Notifications: the plan's ``[notify.NAME]`` tables, delivered in the background.

Built-in types, one module each: ``webhook`` (JSON, schema
``gatekeeper.notification/1``), ``slack`` (Slack-compatible incoming webhooks) and
``email`` (SMTP). A notifier type is anything with ``send(event, *, timeout)``,
``secret_env_names()`` and ``close()`` (:class:`~gatekeeper.notify.base.Notifier`).
"""

from __future__ import annotations

from ._channels import DEFAULT_EVENTS, Channel, NotifierFactory, builtin_types, parse_notifiers
from ._compose import (
    approval_command,
    event_for_approval,
    event_for_decision,
    event_for_observer_failure,
    event_for_phase_start,
    event_for_rollback,
    event_for_run_end,
    failures,
)
from ._dispatch import Dispatcher, OnAttempt
from .base import (
    EVENT_KINDS,
    SCHEMA,
    DeliveryError,
    Failure,
    NotificationEvent,
    Notifier,
    attempt_data,
)

__all__ = [
    "DEFAULT_EVENTS",
    "EVENT_KINDS",
    "SCHEMA",
    "Channel",
    "DeliveryError",
    "Dispatcher",
    "Failure",
    "NotificationEvent",
    "Notifier",
    "NotifierFactory",
    "OnAttempt",
    "approval_command",
    "attempt_data",
    "builtin_types",
    "event_for_approval",
    "event_for_decision",
    "event_for_observer_failure",
    "event_for_phase_start",
    "event_for_rollback",
    "event_for_run_end",
    "failures",
    "parse_notifiers",
]
