"""The optional ``apprise`` type against real receivers on 127.0.0.1: apprise's
``json://`` service posting to the recording HTTP server, a dead one and a 500."""

from __future__ import annotations

import importlib.util
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from gatekeeper.exceptions import PlanError
from gatekeeper.notify import Dispatcher, NotificationEvent, parse_notifiers

if TYPE_CHECKING:
    from realservers.receivers import HttpReceiver

pytest_plugins = ["realservers.receivers"]

pytestmark = pytest.mark.servers

EVENT = NotificationEvent(
    kind="approval_requested",
    run_id="0a1b2c3d4e5f",
    plan="progressive-rollout",
    phase="ramp",
    at=datetime(2026, 1, 1, 1, tzinfo=UTC),
    what="ramp waits for its go/no-go",
    command="gatekeeper approve 0a1b2c3d4e5f --phase ramp --by NAME",
)


def deliver(url: str) -> list[tuple[bool, str, int]]:
    """Send EVENT through an apprise channel whose URL is in the environment."""
    table = {"teams": {"type": "apprise", "url_env": "APPRISE_URL", "attempts": 2}}
    attempts: list[tuple[bool, str, int]] = []
    lock = threading.Lock()

    def record(name: str, event: Any, delivered: bool, why: str, attempt: int) -> None:
        with lock:
            attempts.append((delivered, why, attempt))

    with Dispatcher(
        parse_notifiers(table, {"APPRISE_URL": url}), on_attempt=record, backoff=0.05
    ) as dispatcher:
        dispatcher.submit(EVENT)
        assert dispatcher.drain(10)
    return attempts


def test_apprise_delivers_title_and_text(http_receiver: HttpReceiver) -> None:
    """apprise's JSON service gets the title and the plain-text message with the command."""
    port = http_receiver.url.rsplit(":", 1)[1]
    assert [(True, "delivered", 1)] == deliver(f"json://127.0.0.1:{port}/hook")
    (request,) = http_receiver.received
    body = request.json()
    assert "[gatekeeper] progressive-rollout: ramp waits for its go/no-go" == body["title"]
    assert "gatekeeper approve 0a1b2c3d4e5f --phase ramp --by NAME" in body["message"]


def test_apprise_failure_has_a_reason(http_receiver: HttpReceiver) -> None:
    """A 500 is reported with what apprise logged, tried again, then given up."""
    http_receiver.answer(500)
    port = http_receiver.url.rsplit(":", 1)[1]
    attempts = deliver(f"json://127.0.0.1:{port}/hook")
    assert [1, 2] == [n for _, _, n in attempts]
    assert all(not delivered for delivered, _, _ in attempts)
    assert all(why.startswith("apprise: ") and "500" in why for _, why, _ in attempts)


def test_apprise_url_it_cannot_read_is_not_retried() -> None:
    """An apprise URL for no known service fails once, saying so."""
    assert [(False, "apprise does not understand the URL in APPRISE_URL", 1)] == deliver(
        "nosuchservice://x"
    )


def test_without_the_package_the_plan_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No apprise installed: the plan fails to load with the pip command, not at send time."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "apprise" else real(name, *a),
    )
    with pytest.raises(PlanError, match=r"notify\.x\.type: .*pip install 'gatekeeper\[apprise\]'"):
        parse_notifiers({"x": {"type": "apprise", "url_env": "U"}}, {})
