"""Delivery against real receivers on 127.0.0.1: an HTTP server that records what it
gets (or is down, slow, or answers 500) and an aiosmtpd SMTP server.

``submit()`` returns at once whatever the receiver does; every attempt is reported
with its reason; retries are bounded and only for what another attempt may fix.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from gatekeeper.notify import Channel, Dispatcher, Failure, NotificationEvent, parse_notifiers

if TYPE_CHECKING:
    from realservers.receivers import HttpReceiver, SmtpReceiver

pytest_plugins = ["realservers.receivers"]

pytestmark = pytest.mark.servers

SUBMIT_BUDGET = 0.010  # seconds: submit() must not be felt by the run

EVENT = NotificationEvent(
    kind="rollback",
    run_id="0a1b2c3d4e5f",
    plan="progressive-rollout",
    phase="ramp",
    checkpoint="30m",
    at=datetime(2026, 1, 1, 1, 30, tzinfo=UTC),
    what="ramp rolled back at the 30m checkpoint",
    why=(
        Failure(
            criterion="error_rate < 0.5%",
            outcome="fail",
            reason="0.9% is not < 0.5%",
            observed=0.009,
            bound=0.005,
        ),
    ),
    next="the balancer confirmed the canary at 0%; the run ended rolled back",
    traffic=0.0,
)


@attrs.define
class Attempts:
    """Every on_attempt call, as the engine would journal it."""

    calls: list[tuple[str, str, bool, str, int]] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __call__(
        self, name: str, event: NotificationEvent, delivered: bool, why: str, attempt: int
    ) -> None:
        with self.lock:
            self.calls.append((name, event.kind, delivered, why, attempt))


def channels(table: dict[str, Any], env: dict[str, str] | None = None) -> tuple[Channel, ...]:
    return parse_notifiers(table, env or {})


@pytest.fixture
def attempts() -> Attempts:
    return Attempts()


def dispatcher(chs: tuple[Channel, ...], attempts: Attempts, **options: Any) -> Dispatcher:
    return Dispatcher(chs, on_attempt=attempts, backoff=0.05, **options)


@pytest.fixture
def closing() -> Iterator[list[Dispatcher]]:
    """Dispatchers to close after the test, so no worker outlives it."""
    opened: list[Dispatcher] = []
    yield opened
    for d in opened:
        d.close(timeout=1.0)


def timed_submit(d: Dispatcher, event: NotificationEvent = EVENT) -> float:
    start = time.perf_counter()
    queued = d.submit(event)
    elapsed = time.perf_counter() - start
    assert queued >= 1
    return elapsed


def test_webhook_receives_the_documented_json(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """The receiver gets one POST with the versioned payload; the attempt is reported."""
    d = dispatcher(
        channels({"hook": {"type": "webhook", "url": http_receiver.url + "/x"}}), attempts
    )
    closing.append(d)
    assert timed_submit(d) < SUBMIT_BUDGET
    (request,) = http_receiver.wait_for(1, timeout=5)
    assert d.drain(5)
    body = request.json()
    assert ("/x", "application/json") == (request.path, request.headers["content-type"])
    assert ("gatekeeper.notification/1", "rollback", "ramp") == (
        body["schema"],
        body["kind"],
        body["phase"],
    )
    assert 0.009 == body["why"][0]["observed"]
    assert [("hook", "rollback", True, "delivered", 1)] == attempts.calls


def test_slack_receives_text_and_blocks(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A Slack-compatible hook, its URL a secret from the environment, gets text+blocks."""
    table = {"chat": {"type": "slack", "url_env": "SLACK_HOOK"}}
    d = dispatcher(channels(table, {"SLACK_HOOK": http_receiver.url + "/services/T/B/x"}), attempts)
    closing.append(d)
    assert timed_submit(d) < SUBMIT_BUDGET
    (request,) = http_receiver.wait_for(1, timeout=5)
    body = request.json()
    assert "/services/T/B/x" == request.path
    assert EVENT.title == body["text"]
    assert {"section", "context"} == {b["type"] for b in body["blocks"]}
    assert d.drain(5)
    assert [("chat", "rollback", True, "delivered", 1)] == attempts.calls


def test_email_arrives_with_subject_and_body(
    smtp_receiver: SmtpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """The SMTP server accepts one mail: subject, sender, recipients, plain-text body."""
    table = {
        "mail": {
            "type": "email",
            "host": smtp_receiver.host,
            "port": smtp_receiver.port,
            "security": "none",
            "from": "gate@example.com",
            "to": ["ops@example.com", "lead@example.com"],
        }
    }
    d = dispatcher(channels(table), attempts)
    closing.append(d)
    assert timed_submit(d) < SUBMIT_BUDGET
    (mail,) = smtp_receiver.wait_for(1, timeout=5)
    assert EVENT.title == str(mail["Subject"]).strip()  # a folded header keeps its space
    body = mail.get_content()  # type: ignore[attr-defined]
    assert "ramp rolled back at the 30m checkpoint" in body
    assert "FAIL error_rate < 0.5%: 0.9% is not < 0.5%" in body
    assert [("gate@example.com", ["ops@example.com", "lead@example.com"])] == (
        smtp_receiver.envelopes
    )
    assert d.drain(5)
    assert [("mail", "rollback", True, "delivered", 1)] == attempts.calls


def test_dead_receiver_costs_the_caller_nothing(
    dead_url: str, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """Connection refused: submit() still returns at once; each attempt is reported
    failed with the reason, and the retries stop at the plan's count."""
    table = {"hook": {"type": "webhook", "url": dead_url, "attempts": 3, "timeout": "1s"}}
    d = dispatcher(channels(table), attempts)
    closing.append(d)
    assert timed_submit(d) < SUBMIT_BUDGET
    assert d.drain(10)
    assert [
        ("hook", "rollback", False, "connection refused", 1),
        ("hook", "rollback", False, "connection refused", 2),
        ("hook", "rollback", False, "connection refused", 3),
    ] == attempts.calls


def test_slow_receiver_times_out_per_attempt(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A receiver answering after 5 s with a 1 s timeout: each attempt fails after
    about 1 s, and submit() never waits for it."""
    http_receiver.delay = 5.0
    table = {"hook": {"type": "webhook", "url": http_receiver.url, "attempts": 2, "timeout": "1s"}}
    d = dispatcher(channels(table), attempts)
    closing.append(d)
    start = time.perf_counter()
    assert timed_submit(d) < SUBMIT_BUDGET
    assert d.drain(10)
    took = time.perf_counter() - start
    assert [
        ("hook", "rollback", False, "timed out after 1s", 1),
        ("hook", "rollback", False, "timed out after 1s", 2),
    ] == attempts.calls
    assert 2.0 <= took < 4.0
    assert 2 == len(http_receiver.received)


def test_receiver_answering_500_is_retried_then_given_up(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A 500 is transient: tried again up to ``attempts``, each failure with its status."""
    http_receiver.answer(500)
    table = {"hook": {"type": "webhook", "url": http_receiver.url, "attempts": 3}}
    d = dispatcher(channels(table), attempts)
    closing.append(d)
    assert timed_submit(d) < SUBMIT_BUDGET
    assert d.drain(10)
    why = "HTTP 500 Internal Server Error: receiver says no"
    assert [("hook", "rollback", False, why, n) for n in (1, 2, 3)] == attempts.calls
    assert 3 == len(http_receiver.received)


def test_client_errors_are_not_retried(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A 404 will not get better: one attempt, reported."""
    http_receiver.answer(404)
    d = dispatcher(channels({"hook": {"type": "webhook", "url": http_receiver.url}}), attempts)
    closing.append(d)
    d.submit(EVENT)
    assert d.drain(10)
    assert [("hook", "rollback", False, "HTTP 404 Not Found: receiver says no", 1)] == (
        attempts.calls
    )


def test_a_dead_channel_does_not_delay_another(
    http_receiver: HttpReceiver, dead_url: str, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """Each channel has its own worker: the live receiver hears at once while the dead
    one is still being retried."""
    table = {
        "dead": {"type": "webhook", "url": dead_url, "attempts": 3},
        "live": {"type": "webhook", "url": http_receiver.url},
    }
    d = Dispatcher(channels(table), on_attempt=attempts, backoff=1.0)
    closing.append(d)
    start = time.perf_counter()
    assert 2 == d.submit(EVENT)
    (request,) = http_receiver.wait_for(1, timeout=5)
    assert request.at - start < 0.5


def test_events_go_only_to_channels_that_want_them(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """``on`` filters; a rollback caused by a failed criterion also reaches
    ``checkpoint_failed`` subscribers."""
    table = {
        "approvals": {"type": "webhook", "url": http_receiver.url, "on": ["approval_requested"]},
        "failures": {"type": "webhook", "url": http_receiver.url, "on": ["checkpoint_failed"]},
    }
    d = dispatcher(channels(table), attempts)
    closing.append(d)
    assert 1 == d.submit(EVENT)
    assert d.drain(5)
    assert [("failures", "rollback", True, "delivered", 1)] == attempts.calls


def test_every_string_is_redacted_before_it_leaves(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A secret in the reason never reaches the receiver nor on_attempt."""
    secret = "hunter2-token"
    leaky = attrs.evolve(EVENT, next=f"see https://x/?token={secret}")

    def redact(text: str) -> str:
        return text.replace(secret, "***")

    table = {"hook": {"type": "webhook", "url": http_receiver.url}}
    d = Dispatcher(channels(table), redact=redact, on_attempt=attempts)
    closing.append(d)
    d.submit(leaky)
    (request,) = http_receiver.wait_for(1, timeout=5)
    assert secret not in request.body.decode()
    assert "token=***" in request.json()["next"]


def test_failure_reasons_are_redacted(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """A receiver echoing a secret in its error body: the reported reason is redacted."""
    http_receiver.answer(400)
    table = {"hook": {"type": "webhook", "url": http_receiver.url}}
    d = Dispatcher(
        channels(table), redact=lambda s: s.replace("says no", "[redacted]"), on_attempt=attempts
    )
    closing.append(d)
    d.submit(EVENT)
    assert d.drain(5)
    assert [("hook", "rollback", False, "HTTP 400 Bad Request: receiver [redacted]", 1)] == (
        attempts.calls
    )


def test_a_missing_secret_fails_the_attempt_for_good(
    attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """url_env naming an unset variable: reported once, not retried, nothing raised."""
    d = dispatcher(channels({"chat": {"type": "slack", "url_env": "NOT_SET"}}), attempts)
    closing.append(d)
    d.submit(EVENT)
    assert d.drain(5)
    assert [
        ("chat", "rollback", False, "environment variable NOT_SET (the URL) is not set", 1)
    ] == attempts.calls


def test_a_raising_on_attempt_stops_nothing(
    http_receiver: HttpReceiver, closing: list[Dispatcher]
) -> None:
    """The callback raising (a closed journal, say) is logged; delivery goes on."""

    def broken(*args: object) -> None:
        raise RuntimeError("journal closed")

    d = Dispatcher(
        channels({"hook": {"type": "webhook", "url": http_receiver.url}}), on_attempt=broken
    )
    closing.append(d)
    d.submit(EVENT)
    d.submit(attrs.evolve(EVENT, kind="run_finished", what="run rolled back"))
    assert 2 == len(http_receiver.wait_for(2, timeout=5))


def test_close_reports_what_was_never_sent(
    dead_url: str, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """Closing while a channel is still retrying: the queued events are reported as
    not sent, and close() returns promptly."""
    table = {"dead": {"type": "webhook", "url": dead_url, "attempts": 5}}
    d = Dispatcher(channels(table), on_attempt=attempts, backoff=5.0)
    d.submit(EVENT)
    d.submit(attrs.evolve(EVENT, kind="run_finished", what="run rolled back"))
    start = time.perf_counter()
    d.close(timeout=0.2)
    assert time.perf_counter() - start < 1.5
    assert ("dead", "run_finished", False, "not sent: the run ended before its turn", 0) in (
        attempts.calls
    )
    assert 0 == d.submit(EVENT)


def test_submit_to_receipt_latency(
    http_receiver: HttpReceiver, attempts: Attempts, closing: list[Dispatcher]
) -> None:
    """Twenty rollbacks, one at a time: the time from submit() to the webhook holding
    the request, and the time submit() took (printed with ``-s``)."""
    d = dispatcher(channels({"hook": {"type": "webhook", "url": http_receiver.url}}), attempts)
    closing.append(d)
    latencies, submits = [], []
    for n in range(20):
        start = time.perf_counter()
        d.submit(EVENT)
        submits.append(time.perf_counter() - start)
        received = http_receiver.wait_for(n + 1, timeout=5)[-1]
        latencies.append(received.at - start)
    print(
        f"\nsubmit→receive over 20: median {statistics.median(latencies) * 1000:.2f} ms,"
        f" max {max(latencies) * 1000:.2f} ms; submit() median"
        f" {statistics.median(submits) * 1e6:.0f} µs, max {max(submits) * 1e6:.0f} µs"
    )
    assert max(submits) < SUBMIT_BUDGET
    assert statistics.median(latencies) < 0.1
    assert max(latencies) < 1.0
