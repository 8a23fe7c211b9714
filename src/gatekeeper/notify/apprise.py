"""``type = "apprise"`` (optional): any of the 100+ services apprise speaks (Teams,
Discord, PagerDuty, Opsgenie, Telegram, ntfy, Matrix, …) from an apprise URL.
See ``docs/notify/apprise.md``. Needs ``pip install 'gatekeeper[apprise]'``.

The built-in webhook, slack and email types stay hand-written (see
``docs/notify/webhook.md#why-not-apprise``); this type is for the services they do
not cover. apprise sends a title and a plain-text body; the reason for a failure
comes from the log entries apprise returns with its result.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from .._options import Options
from ..exceptions import ConfigError
from .base import DeliveryError, NotificationEvent, env_value
from .webhook import _env_name

__all__ = ["AppriseNotifier", "create"]

INSTALL = "pip install 'gatekeeper[apprise]'"


class AppriseNotifier:
    """Sends through apprise to the service its URL names (read at send time)."""

    def __init__(self, name: str, *, url_env: str, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._url_env = url_env
        self._env = env if env is not None else {}

    def __repr__(self) -> str:
        return f"AppriseNotifier({self.name!r}, ${self._url_env})"

    def secret_env_names(self) -> tuple[str, ...]:
        return (self._url_env,)

    def send(self, event: NotificationEvent, *, timeout: float) -> None:
        import apprise  # noqa: PLC0415 - an optional dependency, loaded when used

        url = env_value(self._env, self._url_env, "the apprise URL")
        client = apprise.Apprise()
        if not client.add(url):
            raise DeliveryError(
                f"apprise does not understand the URL in {self._url_env}", transient=False
            )
        for service in client:
            # Every apprise service speaks HTTP through requests with these two.
            service.socket_connect_timeout = timeout
            service.socket_read_timeout = timeout
        result = client.notify(title=event.title, body=event.text(), timeout=timeout)
        if not result:
            said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
            raise DeliveryError(
                "apprise: " + ("; ".join(said[-2:]) or f"not sent ({result.status})"),
                transient=True,
            )

    def close(self) -> None:
        """apprise opens a connection per message: nothing stays open."""


def create(name: str, options: Mapping[str, Any], env: Mapping[str, str]) -> AppriseNotifier:
    """Build from a ``[notify.NAME]`` table's type options (no I/O, apprise not imported)."""
    opts = Options(options)
    url_env = _env_name(opts.raw("url_env"), "url_env")
    opts.done()
    if importlib.util.find_spec("apprise") is None:
        raise ConfigError(f"the apprise type needs the apprise package: {INSTALL}", key="type")
    return AppriseNotifier(name, url_env=url_env, env=env)
