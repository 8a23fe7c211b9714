"""Stateful property test through the engine itself: any sequence of traffic changes,
failures and reads leaves the journal's last confirmed split equal to the backend's."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import gatekeeper
from gatekeeper import MemoryStore, TrafficError
from gatekeeper._resume import replay
from gatekeeper.traffic.memory import MemoryBackend

PLAN = gatekeeper.Plan.from_mapping(
    {
        "sources": {"s": {"type": "static"}},
        "metrics": {"m": {"source": "s"}},
        "phases": [{"name": "p", "traffic": 1, "checkpoints": ["1m"], "gate": ["m < 1"]}],
    }
)
shares = st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0])


class EngineTraffic(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.backend = MemoryBackend()
        self.store = MemoryStore()
        self.rollout = gatekeeper.Rollout(
            PLAN,
            sources={},
            traffic=self.backend,
            store=self.store,
            clock=gatekeeper.SimulatedClock(),
            plugins=gatekeeper.Plugins(load_entry_points=False),
        )
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.rollout.start([]))

    @rule(share=shares)
    def change(self, share: float) -> None:
        self.loop.run_until_complete(self.rollout.set_traffic(None, share, "test"))

    @rule(share=shares, why=st.sampled_from(["balancer refused", "socket gone"]))
    def failing_change(self, share: float, why: str) -> None:
        """The balancer refuses; the engine goes back to the last confirmed split."""
        self.backend.fail_next = why
        with pytest.raises(TrafficError, match=why):
            self.loop.run_until_complete(self.rollout.set_traffic(None, share, "test"))

    @rule()
    def read(self) -> None:
        split = self.loop.run_until_complete(self.backend.get_split())
        assert self.rollout.confirmed is not None
        assert split.canary == self.rollout.confirmed.canary

    @invariant()
    def journal_agrees_with_the_backend(self) -> None:
        journal = replay(PLAN, self.rollout.run_id, self.store.events(self.rollout.run_id))
        split = self.loop.run_until_complete(self.backend.get_split())
        assert journal.pending_intent is None  # every intent was confirmed or failed
        assert split.canary == journal.confirmed

    @invariant()
    def no_change_applied_twice_in_a_row(self) -> None:
        changes = self.backend.changes
        assert all(a != b for a, b in itertools.pairwise(changes))

    def teardown(self) -> None:
        self.loop.close()


TestEngineTraffic = EngineTraffic.TestCase
TestEngineTraffic.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
