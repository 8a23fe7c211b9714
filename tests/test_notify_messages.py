"""What a notification says: built from a rehearsed run's real decisions, encoded as
the webhook JSON, Slack blocks and a plain-text email."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper._model import Action, CheckpointResult, RunOutcome
from gatekeeper._planfile import load_plan
from gatekeeper.notify import (
    SCHEMA,
    Failure,
    NotificationEvent,
    approval_command,
    event_for_approval,
    event_for_decision,
    event_for_observer_failure,
    event_for_phase_start,
    event_for_rollback,
    event_for_run_end,
)
from gatekeeper.notify.email import email_message
from gatekeeper.notify.slack import slack_payload

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"
AT = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)


def rehearsed(recording: str) -> list[CheckpointResult]:
    plan = load_plan(EXAMPLE / "gates.toml")
    result = gatekeeper.rehearse(plan, EXAMPLE / recording)
    return [cp for phase in result.phases for cp in phase.checkpoints]


@pytest.fixture(scope="module")
def rollback() -> NotificationEvent:
    """The bad canary's rollback by the ramp's watch (before 15m), as the engine sends it."""
    last = rehearsed("bad-canary.csv")[-1]
    assert Action.ROLLBACK is last.decision.action
    event = event_for_decision(
        run_id="r1",
        plan="progressive-rollout",
        result=last.result,
        decision=last.decision,
        at=AT,
        traffic=0.0,
    )
    assert event is not None
    return event


def test_rollback_says_what_why_and_next(rollback: NotificationEvent) -> None:
    """What happened, each failing criterion with value and bound, and what happens now."""
    assert "rollback" == rollback.kind
    assert "ramp rolled back by its watch, before the 15m checkpoint" == rollback.what
    assert [
        ("error_rate < 0.5% for 1m", "fail", 0.009, 0.005),
        ("error_rate canary <= baseline * 1.2", "fail", pytest.approx(4.4131, abs=1e-4), 1.2),
    ] == [(f.criterion, f.outcome, f.observed, f.bound) for f in rollback.why]
    assert "0.9% is not < 0.5%" == rollback.why[0].reason
    assert "the balancer confirmed the canary at 0%" in rollback.next


def test_webhook_payload_is_versioned_json(rollback: NotificationEvent) -> None:
    """The documented payload: schema, kind, run, phase, why with numbers, next."""
    payload = json.loads(json.dumps(rollback.to_json()))
    assert SCHEMA == payload["schema"] == "gatekeeper.notification/1"
    assert {
        "schema",
        "kind",
        "run_id",
        "plan",
        "phase",
        "checkpoint",
        "at",
        "title",
        "what",
        "why",
        "reason",
        "next",
        "command",
        "traffic",
        "outcome",
        "rehearsal",
    } == set(payload)
    assert ("rollback", "ramp", "15m", 0.0) == (
        payload["kind"],
        payload["phase"],
        payload["checkpoint"],
        payload["traffic"],
    )
    assert {
        "criterion": "error_rate < 0.5% for 1m",
        "outcome": "fail",
        "observed": 0.009,
        "bound": 0.005,
        "reason": "0.9% is not < 0.5%",
    } == payload["why"][0]
    assert "2026-01-01T01:30:00+00:00" == payload["at"]


def test_non_finite_numbers_are_strings_in_json() -> None:
    """JSON has no NaN or infinity: they are spelled as the journal spells them."""
    event = NotificationEvent(
        kind="hold",
        run_id="r",
        plan="p",
        at=AT,
        what="held",
        why=(
            Failure(
                criterion="x < 1",
                outcome="inconclusive",
                reason="NaN",
                observed=float("nan"),
                bound=float("inf"),
            ),
        ),
    )
    encoded = json.dumps(event.to_json(), allow_nan=False)
    assert '"observed": "NaN", "bound": "+Inf"' in encoded


def test_slack_payload_has_text_and_blocks(rollback: NotificationEvent) -> None:
    """Slack gets a fallback text and blocks: title, facts, why, next."""
    payload = slack_payload(rollback)
    assert (
        "[gatekeeper] progressive-rollout: ramp rolled back by its watch, before the 15m checkpoint"
        == payload["text"]
    )
    texts = json.dumps(payload["blocks"])
    assert "*FAIL* `error_rate &lt; 0.5% for 1m`: 0.9% is not &lt; 0.5%" in texts
    assert "canary at 0%" in texts
    assert "*Next*" in texts


def test_email_is_plain_text_with_subject(rollback: NotificationEvent) -> None:
    """The mail's subject is the title; its body says what, why and next."""
    message = email_message(rollback, sender="gate@example.com", to=["ops@example.com"])
    assert rollback.title == message["Subject"]
    body = message.get_content()
    assert "ramp rolled back by its watch, before the 15m checkpoint" in body
    assert "  FAIL error_rate < 0.5% for 1m: 0.9% is not < 0.5%" in body
    assert "Next: the balancer confirmed the canary at 0%" in body
    assert "rollback" == message["X-Gatekeeper-Event"]


def test_approval_carries_the_command_that_answers_it() -> None:
    """An approval request names the exact approve command (and the reject one)."""
    event = event_for_approval(run_id="0a1b2c", plan="p", phase="ramp", at=AT, prompt="go/no-go")
    assert "gatekeeper approve 0a1b2c --phase ramp --by NAME" == event.command
    assert "gatekeeper reject 0a1b2c --phase ramp --by NAME" in event.next
    assert "Answer with:\n  gatekeeper approve 0a1b2c --phase ramp --by NAME" in event.text()
    assert "ramp waits for its go/no-go" == event.what


def test_commands_quote_what_a_shell_would_split() -> None:
    """A phase name with a space stays one argument in the printed command."""
    assert "gatekeeper approve r --phase 'blue green' --by NAME" == approval_command(
        "r", "blue green"
    )


def test_a_plain_pass_is_not_news() -> None:
    """A passing checkpoint that only continues sends nothing."""
    first = rehearsed("healthy.csv")[0]
    assert Action.CONTINUE is first.decision.action
    assert None is event_for_decision(
        run_id="r", plan="p", result=first.result, decision=first.decision, at=AT
    )


def test_advance_and_hold_events() -> None:
    """An advance names the next phase; a hold says when it is re-checked."""
    checkpoints = rehearsed("no-data.csv")
    advance = next(cp for cp in checkpoints if cp.decision.action is Action.ADVANCE)
    hold = next(cp for cp in checkpoints if cp.decision.action is Action.HOLD)
    advanced = event_for_decision(
        run_id="r",
        plan="p",
        result=advance.result,
        decision=advance.decision,
        at=AT,
        next_phase="ramp",
    )
    held = event_for_decision(
        run_id="r", plan="p", result=hold.result, decision=hold.decision, at=AT, traffic=10.0
    )
    assert advanced is not None and held is not None
    assert ("advanced", "canary advanced", "next phase: ramp") == (
        advanced.kind,
        advanced.what,
        advanced.next,
    )
    assert "hold" == held.kind
    assert "re-checked at 2026-01-01 14:35 UTC; the canary stays at 10%" == held.next
    assert [("latency_p99 < 200ms", "inconclusive")] == [
        (f.criterion, f.outcome) for f in held.why if f.criterion.startswith("latency")
    ]


def test_run_end_phase_start_rollback_and_observer_events() -> None:
    """The events without a checkpoint say what happened and what comes next."""
    ended = event_for_run_end(
        run_id="r", plan="p", outcome=RunOutcome.ROLLED_BACK, reason="ramp failed", at=AT
    )
    assert ("run_finished", "run rolled back", "rolled back") == (
        ended.kind,
        ended.what,
        ended.outcome,
    )
    started = event_for_phase_start(
        run_id="r",
        plan="p",
        phase="ramp",
        at=AT,
        traffic=10.0,
        first_checkpoint="15m",
        first_at=datetime(2026, 1, 1, 1, 45, tzinfo=UTC),
    )
    assert "ramp started with the canary at 10%" == started.what
    assert "first checkpoint: 15m at 2026-01-01 01:45 UTC" == started.next
    by_hand = event_for_rollback(run_id="r", plan="p", reason="by alice", at=AT, traffic=0.0)
    assert ("rollback", "run rolled back") == (by_hand.kind, by_hand.what)
    observer = event_for_observer_failure(
        run_id="r", plan="p", observer="hook slack_ping", error="TimeoutError", at=AT
    )
    assert "observer_failure" == observer.kind
    assert "never stops or changes a decision" in observer.next


def test_redacted_covers_every_string(rollback: NotificationEvent) -> None:
    """Every text field passes the redactor; numbers and times are left alone."""
    marked = rollback.redacted(lambda s: f"<{s}>")
    encoded = marked.to_json()
    assert "<r1>" == encoded["run_id"]
    assert "<ramp>" == encoded["phase"]
    assert "<0.9% is not < 0.5%>" == encoded["why"][0]["reason"]
    assert 0.009 == encoded["why"][0]["observed"]


def test_an_unknown_kind_is_refused() -> None:
    """A kind outside the documented list cannot be built (and so never sent)."""
    with pytest.raises(ValueError, match="kind"):
        NotificationEvent(kind="rolled_back", run_id="r", plan="p", at=AT, what="x")
