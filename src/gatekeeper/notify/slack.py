"""``type = "slack"``: a Slack incoming webhook (or a Slack-compatible one: Mattermost,
Rocket.Chat, Discord's ``/slack`` endpoint) gets ``{"text": ..., "blocks": [...]}``.
See ``docs/notify/slack.md``.

The webhook URL is itself the secret: give it with ``url_env``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._options import Options
from .base import NotificationEvent
from .webhook import WebhookNotifier, header_options, url_options

__all__ = ["SlackNotifier", "create", "slack_payload"]

# Slack refuses a section whose text is longer than 3000 characters.
_SECTION_LIMIT = 3000

_ICONS = {
    "approval_requested": ":raised_hand:",
    "phase_started": ":arrow_forward:",
    "checkpoint_failed": ":warning:",
    "hold": ":double_vertical_bar:",
    "rollback": ":rewind:",
    "advanced": ":white_check_mark:",
    "run_finished": ":checkered_flag:",
    "observer_failure": ":warning:",
}


def _escape(text: str) -> str:
    """Slack's mrkdwn needs only &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    if len(text) > _SECTION_LIMIT:
        text = text[: _SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_payload(event: NotificationEvent) -> dict[str, Any]:
    """The message as Slack blocks, with ``text`` as the notification fallback."""
    icon = _ICONS.get(event.kind, "")
    blocks: list[dict[str, Any]] = [_section(f"{icon} *{_escape(event.title)}*")]
    facts = [f"run `{_escape(event.run_id)}`"]
    if event.phase:
        facts.append(f"phase *{_escape(event.phase)}*")
    if event.checkpoint:
        facts.append(f"checkpoint {_escape(event.checkpoint)}")
    if event.traffic is not None:
        facts.append(f"canary at {event.traffic:g}%")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]})
    if event.why:
        lines = "\n".join(
            f"• *{f.outcome.upper()}* `{_escape(f.criterion)}`: {_escape(f.reason)}"
            for f in event.why
        )
        blocks.append(_section(f"*Why*\n{lines}"))
    elif event.reason:
        blocks.append(_section(f"*Why*\n{_escape(event.reason)}"))
    if event.next:
        blocks.append(_section(f"*Next*\n{_escape(event.next)}"))
    if event.command:
        blocks.append(_section(f"*Answer with*\n```{_escape(event.command)}```"))
    return {"text": event.title, "blocks": blocks}


class SlackNotifier(WebhookNotifier):
    """A webhook whose body is a Slack message."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, body=slack_payload, **options)


def create(name: str, options: Mapping[str, Any], env: Mapping[str, str]) -> SlackNotifier:
    """Build from a ``[notify.NAME]`` table's type options (no I/O)."""
    opts = Options(options)
    url, url_env = url_options(opts)
    headers, headers_env = header_options(opts)
    opts.done()
    return SlackNotifier(
        name, url=url, url_env=url_env, headers=headers, headers_env=headers_env, env=env
    )
