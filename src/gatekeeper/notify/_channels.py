"""The plan's ``[notify.NAME]`` tables, read into :class:`Channel` values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from .._options import Options
from ..exceptions import ConfigError, PlanError
from .base import EVENT_KINDS, NotificationEvent, Notifier

__all__ = ["DEFAULT_EVENTS", "Channel", "NotifierFactory", "builtin_types", "parse_notifiers"]

# What a table without ``on`` is told about: the moments a person must act or know.
DEFAULT_EVENTS = ("approval_requested", "hold", "rollback", "run_finished")

# Options every type shares; the rest belong to the type.
_COMMON = ("type", "on", "timeout", "attempts")


class NotifierFactory(Protocol):
    """Builds a notifier from its type options (``[notify.NAME]`` less the common
    keys). Must not do I/O; raises :class:`ConfigError` naming the key."""

    def __call__(
        self, name: str, options: Mapping[str, Any], env: Mapping[str, str]
    ) -> Notifier: ...


def builtin_types() -> dict[str, NotifierFactory]:
    """``webhook``, ``slack``, ``email`` and (with the optional package) ``apprise``."""
    from . import apprise, email, slack, webhook  # noqa: PLC0415 - httpx only when needed

    return {
        "apprise": apprise.create,
        "email": email.create,
        "slack": slack.create,
        "webhook": webhook.create,
    }


@attrs.frozen(kw_only=True)
class Channel:
    """One ``[notify.NAME]`` table: where messages go and which ones."""

    name: str
    type: str
    notifier: Notifier
    on: frozenset[str]
    timeout: float = 5.0  # seconds, per attempt
    attempts: int = 3  # at most, counting the first

    def wants(self, event: NotificationEvent) -> bool:
        """Whether this channel is told about ``event``. A rollback or hold caused by a
        failed criterion also reaches channels that asked for ``checkpoint_failed``."""
        if event.kind in self.on:
            return True
        return (
            "checkpoint_failed" in self.on
            and event.kind in ("rollback", "hold")
            and bool(event.why)
        )

    def secret_env_names(self) -> tuple[str, ...]:
        """The environment variables holding this channel's secrets (for the redactor)."""
        return tuple(self.notifier.secret_env_names())


def _default_error(message: str, key: str) -> Exception:
    return PlanError(message, key=key)


def parse_notifiers(
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    error_factory: Callable[[str, str], Exception] = _default_error,
    *,
    types: Mapping[str, NotifierFactory] | None = None,
) -> tuple[Channel, ...]:
    """Read the plan's ``notify`` table (``{NAME: {type, on, ...}}``), without I/O.

    A bad value raises ``error_factory(message, key)`` where ``key`` is the full key
    path (``notify.oncall.url``), so the plan loader can add the file and line.
    Unknown keys are errors. ``types`` adds to (or replaces) the built-in types.
    """
    known = builtin_types()
    known.update(types or {})
    channels = []
    if not isinstance(raw, Mapping):
        raise error_factory("expected a table of [notify.NAME] tables", "notify")
    for name, table in raw.items():
        where = f"notify.{name}"
        if not isinstance(table, Mapping):
            raise error_factory("expected a table", where)
        try:
            channels.append(_channel(str(name), table, env, known))
        except ConfigError as exc:
            raise error_factory(exc.message, f"{where}.{exc.key}" if exc.key else where) from None
    return tuple(channels)


def _channel(
    name: str,
    table: Mapping[str, Any],
    env: Mapping[str, str],
    known: Mapping[str, NotifierFactory],
) -> Channel:
    opts = Options({k: v for k, v in table.items() if k in _COMMON}, ignore=())
    kind = opts.required_text("type")
    if kind not in known:
        raise ConfigError(
            f"unknown notifier type {kind!r} (known: {', '.join(sorted(known))})", key="type"
        )
    raw_on = opts.raw("on")
    if raw_on is None:
        on = frozenset(DEFAULT_EVENTS)
    else:
        if not isinstance(raw_on, list) or not raw_on:
            raise ConfigError("expected a non-empty list of events", key="on")
        for index, item in enumerate(raw_on):
            if item not in EVENT_KINDS:
                raise ConfigError(
                    f"unknown event {item!r} (known: {', '.join(EVENT_KINDS)})",
                    key=f"on[{index}]",
                )
        on = frozenset(raw_on)
    timeout = opts.seconds("timeout", 5.0)
    attempts = opts.integer("attempts", 3) or 0
    if not 1 <= attempts <= 10:
        raise ConfigError(f"expected 1 to 10, got {attempts}", key="attempts")
    opts.done()
    options = {k: v for k, v in table.items() if k not in _COMMON}
    notifier = known[kind](name, options, env)
    return Channel(
        name=name, type=kind, notifier=notifier, on=on, timeout=timeout, attempts=attempts
    )
