"""Notifications from a real run of the engine (a rehearsal of the reference plan's
bad canary), wired through the public hooks: the rollback reaches a webhook on
127.0.0.1 after its traffic change is journaled, and a dead receiver costs the
rollback nothing.

The engine will own this wiring; these tests show the parts fit and give the
numbers: rollback decision → webhook receipt, and the time the run spent in
``submit()``.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import gatekeeper
from gatekeeper import MemoryStore, Plugins, hookimpl
from gatekeeper._model import Action
from gatekeeper.notify import Dispatcher, event_for_decision, parse_notifiers

if TYPE_CHECKING:
    from realservers.receivers import HttpReceiver

pytest_plugins = ["realservers.receivers"]

pytestmark = pytest.mark.servers

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


@attrs.define
class Notifying:
    """A plugin that tells a dispatcher of each decision worth a message."""

    dispatcher: Dispatcher
    store: MemoryStore
    decided_at: float | None = None  # perf_counter when the rollback was heard of
    submit_took: float | None = None
    journal_at_hook: list[str] = attrs.field(factory=list)

    @hookimpl
    def gatekeeper_checkpoint_judged(
        self, run: Any, phase: Any, result: Any, decision: Any, next_at: datetime | None
    ) -> None:
        if decision.action is not Action.ROLLBACK:
            return
        heard = time.perf_counter()
        events = self.store.events(run.run_id)
        self.journal_at_hook = [e.kind for e in events]
        confirmed = [e for e in events if e.kind == "traffic_confirmed"][-1].data["canary"]
        event = event_for_decision(
            run_id=run.run_id,
            plan=run.plan.name,
            result=result,
            decision=decision,
            at=run.clock.now(),
            traffic=confirmed,
            rehearsal=run.rehearsal,
        )
        assert event is not None
        submitted = time.perf_counter()
        self.dispatcher.submit(event)
        self.submit_took = time.perf_counter() - submitted
        self.decided_at = heard


def rehearse_with(url: str) -> tuple[Notifying, float]:
    """Rehearse the bad canary with a webhook channel on ``url``; the plugin and the
    wall time of the whole rehearsal."""
    channels = parse_notifiers(
        {"oncall": {"type": "webhook", "url": url, "on": ["rollback"], "timeout": "1s"}}, {}
    )
    dispatcher = Dispatcher(channels, backoff=0.05)
    store = MemoryStore()
    plugin = Notifying(dispatcher=dispatcher, store=store)
    plugins = Plugins(load_entry_points=False, plugins=[plugin])
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    start = time.perf_counter()
    try:
        result = gatekeeper.rehearse(plan, EXAMPLE / "bad-canary.csv", store=store, plugins=plugins)
        took = time.perf_counter() - start
        assert "rolled back" == result.outcome.value
        dispatcher.drain(10)
    finally:
        dispatcher.close()
    return plugin, took


def test_rollback_reaches_the_webhook_after_its_effect(http_receiver: HttpReceiver) -> None:
    """The message is sent after the 0 % split was confirmed and journaled, says so,
    and arrives within milliseconds of the decision (printed with ``-s``)."""
    latencies: list[float] = []
    for _ in range(5):
        plugin, _ = rehearse_with(http_receiver.url)
        assert plugin.decided_at is not None
        received = http_receiver.wait_for(len(latencies) + 1, timeout=5)[-1]
        latencies.append(received.at - plugin.decided_at)
    kinds = plugin.journal_at_hook
    assert ["decision", "traffic_intent", "traffic_confirmed"] == [
        k for k in kinds if k in ("decision", "traffic_intent", "traffic_confirmed")
    ][-3:]
    body = http_receiver.received[-1].json()
    assert ("rollback", "ramp", "15m", 0.0, True) == (
        body["kind"],
        body["phase"],
        body["checkpoint"],
        body["traffic"],
        body["rehearsal"],
    )
    assert ["error_rate < 0.5% for 1m", "error_rate canary <= baseline * 1.2"] == [
        w["criterion"] for w in body["why"]
    ]
    print(
        f"\nrollback decision → webhook receipt over 5 rehearsals: median"
        f" {statistics.median(latencies) * 1000:.2f} ms, max {max(latencies) * 1000:.2f} ms"
    )
    assert max(latencies) < 1.0


def test_a_dead_receiver_delays_the_rollback_by_nothing(dead_url: str) -> None:
    """Connection refused: the rollback was journaled before the hook ran (0 ms
    added to it), and the run spent microseconds handing the message over."""
    plugin, took = rehearse_with(dead_url)
    assert plugin.submit_took is not None
    assert "traffic_confirmed" in plugin.journal_at_hook
    print(
        f"\ndead receiver: submit() took {plugin.submit_took * 1e6:.0f} µs;"
        f" the whole rehearsal {took * 1000:.0f} ms"
    )
    assert plugin.submit_took < 0.010
