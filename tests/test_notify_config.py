"""Reading ``[notify.NAME]`` tables: types, events, options and located errors."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import gatekeeper.notify as notify
from gatekeeper.exceptions import PlanError
from gatekeeper.notify import DEFAULT_EVENTS, Channel, parse_notifiers
from gatekeeper.notify.email import EmailNotifier
from gatekeeper.notify.slack import SlackNotifier
from gatekeeper.notify.webhook import WebhookNotifier


class LocatedError(Exception):
    """What a plan loader's error factory would raise: the message and the key path."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(f"{key}: {message}")
        self.message = message
        self.key = key


def parse(raw: dict[str, Any], env: dict[str, str] | None = None) -> tuple[Channel, ...]:
    return parse_notifiers(raw, env or {}, LocatedError)


def error(raw: dict[str, Any]) -> LocatedError:
    with pytest.raises(LocatedError) as info:
        parse(raw)
    return info.value


def test_three_builtin_types_parse() -> None:
    """webhook, slack and email tables become channels with their notifier and events."""
    channels = parse(
        {
            "oncall": {
                "type": "webhook",
                "url": "https://hooks.example/rollouts",
                "on": ["rollback", "hold"],
                "timeout": "2s",
                "attempts": 4,
            },
            "chat": {"type": "slack", "url_env": "SLACK_URL"},
            "mail": {
                "type": "email",
                "host": "smtp.example",
                "from": "gate@example.com",
                "to": ["a@example.com", "b@example.com"],
                "username_env": "SMTP_USER",
                "password_env": "SMTP_PASSWORD",
            },
        }
    )
    oncall, chat, mail = channels
    assert ("oncall", "webhook", frozenset({"rollback", "hold"}), 2.0, 4) == (
        oncall.name,
        oncall.type,
        oncall.on,
        oncall.timeout,
        oncall.attempts,
    )
    assert isinstance(oncall.notifier, WebhookNotifier)
    assert isinstance(chat.notifier, SlackNotifier)
    assert frozenset(DEFAULT_EVENTS) == chat.on
    assert isinstance(mail.notifier, EmailNotifier)
    assert (587, "starttls") == (mail.notifier.port, mail.notifier.security)


def test_secret_env_names_are_listed_for_the_redactor() -> None:
    """The names of the variables holding secrets are known without reading them."""
    chat, mail = parse(
        {
            "chat": {"type": "slack", "url_env": "SLACK_URL", "headers_env": {"X-Key": "KEY"}},
            "mail": {
                "type": "email",
                "host": "smtp.example",
                "from": "gate@example.com",
                "to": "ops@example.com",
                "username_env": "SMTP_USER",
                "password_env": "SMTP_PASSWORD",
            },
        }
    )
    assert ("SLACK_URL", "KEY") == chat.secret_env_names()
    assert ("SMTP_USER", "SMTP_PASSWORD") == mail.secret_env_names()


def test_secrets_are_not_in_the_repr() -> None:
    """A channel's repr names the variable, never its value."""
    (chat,) = parse({"chat": {"type": "slack", "url_env": "SLACK_URL"}}, {"SLACK_URL": "s3cr3t"})
    assert "s3cr3t" not in repr(chat)
    assert "$SLACK_URL" in repr(chat)


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"x": {"url": "http://h"}}, "notify.x.type", "missing required option"),
        ({"x": {"type": "pager"}}, "notify.x.type", "unknown notifier type 'pager'"),
        ({"x": {"type": "webhook", "url": "http://h", "on": ["rolback"]}}, "notify.x.on[0]", ""),
        ({"x": {"type": "webhook", "url": "http://h", "on": []}}, "notify.x.on", "non-empty"),
        ({"x": {"type": "webhook", "url": "http://h", "urll": 1}}, "notify.x.urll", "unknown"),
        ({"x": {"type": "webhook"}}, "notify.x.url", "exactly one of url and url_env"),
        ({"x": {"type": "webhook", "url": "ftp://h"}}, "notify.x.url", "http://"),
        ({"x": {"type": "webhook", "url": "http://u:pw@h"}}, "notify.x.url", "credentials"),
        ({"x": {"type": "slack", "url_env": ""}}, "notify.x.url_env", "NAME of an environment"),
        ({"x": {"type": "webhook", "url": "http://h", "timeout": "0s"}}, "notify.x.timeout", ""),
        ({"x": {"type": "webhook", "url": "http://h", "attempts": 0}}, "notify.x.attempts", ""),
        ({"x": {"type": "email", "from": "a@b", "to": "c@d"}}, "notify.x.host", "missing"),
        ({"x": {"type": "email", "host": "h", "from": "a@b", "to": []}}, "notify.x.to", ""),
        (
            {"x": {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "port": 70000}},
            "notify.x.port",
            "TCP port",
        ),
        (
            {"x": {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "security": "ssl"}},
            "notify.x.security",
            "starttls, tls, none",
        ),
        (
            {
                "x": {
                    "type": "email",
                    "host": "h",
                    "from": "a@b",
                    "to": "c@d",
                    "security": "none",
                    "username_env": "U",
                    "password_env": "P",
                }
            },
            "notify.x.security",
            "never sent over an unprotected connection",
        ),
        ({"x": "webhook"}, "notify.x", "expected a table"),
    ],
)
def test_bad_tables_fail_with_their_key_path(raw: dict[str, Any], key: str, message: str) -> None:
    """Every mistake is one error naming the full key, for the loader to locate."""
    located = error(raw)
    assert key == located.key
    assert message in located.message


def test_default_error_is_a_plan_error() -> None:
    """Without a factory, errors are PlanErrors carrying the key path."""
    with pytest.raises(PlanError, match=r"notify\.x\.type: unknown notifier type"):
        parse_notifiers({"x": {"type": "pager"}}, {})


def test_plugin_types_extend_the_builtin_ones() -> None:
    """A type passed in by the plugin host is built like the built-in ones."""

    class Quiet:
        def send(self, event: object, *, timeout: float) -> None:
            pass

        def secret_env_names(self) -> tuple[str, ...]:
            return ()

        def close(self) -> None:
            pass

    (channel,) = parse_notifiers(
        {"q": {"type": "quiet", "on": ["run_finished"]}},
        {},
        LocatedError,
        types={"quiet": lambda name, options, env: Quiet()},
    )
    assert isinstance(channel.notifier, Quiet)


def test_notify_all_is_sorted_and_complete() -> None:
    """``gatekeeper.notify.__all__`` is sorted (constants, classes, functions, as ruff
    sorts it) and names every public attribute."""

    def order(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert sorted(notify.__all__, key=order) == notify.__all__
    public = {
        name
        for name, value in vars(notify).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("gatekeeper")
    }
    assert public <= set(notify.__all__)


def test_importing_notify_opens_no_client() -> None:
    """``import gatekeeper.notify`` loads no HTTP client; parsing a plan's tables does."""
    code = (
        "import sys, gatekeeper.notify as n; before = 'httpx' in sys.modules; "
        "n.parse_notifiers({'x': {'type': 'webhook', 'url': 'http://h'}}, {}); "
        "print(before, 'httpx' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "False True" == done.stdout.strip()
