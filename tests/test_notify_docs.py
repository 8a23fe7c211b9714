"""docs/notify/*.md agree with the code: their plan tables load, their option tables
name exactly the keys each type accepts, and the documented payload is the one sent."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.exceptions import PlanError
from gatekeeper.notify import EVENT_KINDS, Failure, NotificationEvent, parse_notifiers

DOCS = Path(__file__).resolve().parent.parent / "docs" / "notify"
PAGES = {
    "apprise.md": "apprise",
    "email.md": "email",
    "slack.md": "slack",
    "webhook.md": "webhook",
}
# What a table needs besides the key being probed, for the probe to reach the type.
REQUIRED = {
    "apprise": {"url_env": "APPRISE_URL"},
    "webhook": {"url": "http://127.0.0.1/hook"},
    "slack": {"url_env": "HOOK"},
    "email": {"host": "127.0.0.1", "from": "a@example.com", "to": "b@example.com"},
}


def blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.S)


def documented_keys(page: str) -> set[str]:
    """The keys in the first column of the page's Options table."""
    text = (DOCS / page).read_text()
    section = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return keys


def accepted_keys(kind: str) -> set[str]:
    """The keys the parser knows, as its own error message lists them."""
    table = {"type": kind, **REQUIRED[kind], "no_such_key": 1}
    with pytest.raises(PlanError) as info:
        parse_notifiers({"x": table}, {})
    known = re.search(r"known: ([^)]*)\)", str(info.value))
    assert known is not None, str(info.value)
    return {k.strip() for k in known.group(1).split(",")} | {"type", "on", "timeout", "attempts"}


@pytest.mark.parametrize(("page", "kind"), sorted(PAGES.items()))
def test_page_examples_load(page: str, kind: str) -> None:
    """Every TOML example on the page is a valid [notify.NAME] table of its type."""
    examples = blocks(page, "toml")
    assert examples
    for example in examples:
        channels = parse_notifiers(tomllib.loads(example)["notify"], {})
        assert {kind} == {c.type for c in channels}


@pytest.mark.parametrize(("page", "kind"), sorted(PAGES.items()))
def test_options_table_is_complete(page: str, kind: str) -> None:
    """The Options table names every key the type accepts, and no other."""
    assert accepted_keys(kind) == documented_keys(page)


def test_events_table_lists_every_event() -> None:
    """The webhook page documents each event a table may ask for."""
    section = (DOCS / "webhook.md").read_text().split("## Events", 1)[1].split("\n## ", 1)[0]
    assert set(EVENT_KINDS) == set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


def test_documented_payload_is_the_one_sent() -> None:
    """The JSON example has exactly the fields ``to_json()`` writes, in its order."""
    (example,) = blocks("webhook.md", "json")
    documented = json.loads(example)
    sent = NotificationEvent(
        kind="rollback",
        run_id="r",
        plan="p",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        what="x",
        why=(Failure(criterion="c", outcome="fail", reason="r", observed=1.0, bound=0.5),),
    ).to_json()
    assert list(sent) == list(documented)
    assert list(sent["why"][0]) == list(documented["why"][0])
    assert "gatekeeper.notification/1" == documented["schema"]
