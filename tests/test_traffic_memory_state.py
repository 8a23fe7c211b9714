"""Stateful property test: any sequence of set/get/failure against the memory backend
keeps a journal of confirmed splits (what an engine records) and the backend agreeing."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gatekeeper.exceptions import TrafficError
from gatekeeper.traffic.memory import MemoryBackend

shares = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
invalid = st.one_of(
    st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=100.000001, allow_nan=False)
)


class MemoryTraffic(RuleBasedStateMachine):
    """The model: the last confirmed split, journaled as an engine journals it
    (intent before, confirmation after; a failed change leaves the confirmed one)."""

    def __init__(self) -> None:
        super().__init__()
        self.backend = MemoryBackend()
        self.confirmed = 0.0
        self.journal: list[tuple[str, float]] = []
        self.armed = False

    def change(self, share: float) -> None:
        self.journal.append(("intent", share))
        error: TrafficError | None = None
        try:
            split = asyncio.run(self.backend.set_split(share))
        except TrafficError as exc:
            error = exc
        if error is not None:
            assert (error.wanted, error.actual) == (share, self.confirmed)
            self.journal.append(("failed", share))
            return
        assert split.canary == share
        self.confirmed = split.canary
        self.journal.append(("confirmed", split.canary))

    @rule(share=shares)
    def set_split(self, share: float) -> None:
        expected_changes = len(self.backend.changes) + (
            0 if self.armed or share == self.confirmed else 1
        )
        armed, self.armed = self.armed, False
        before = self.confirmed
        self.change(share)
        assert len(self.backend.changes) == expected_changes
        if armed:
            assert self.confirmed == before

    @rule(share=invalid)
    def set_invalid(self, share: float) -> None:
        before = self.confirmed
        self.change(share)
        assert self.confirmed == before

    @precondition(lambda self: not self.armed)
    @rule(reason=st.text(min_size=1, max_size=20))
    def arm_failure(self, reason: str) -> None:
        self.backend.fail_next = reason
        self.armed = True

    @rule()
    def recover(self) -> None:
        """What the engine does after a failure: return to the last confirmed split."""
        if self.armed:
            return
        self.change(self.confirmed)

    @invariant()
    def backend_agrees_with_the_journal(self) -> None:
        split = asyncio.run(self.backend.get_split())
        assert split.canary == self.confirmed
        confirmations = [share for kind, share in self.journal if kind == "confirmed"]
        assert split.canary == (confirmations[-1] if confirmations else 0.0)

    @invariant()
    def every_change_was_confirmed_in_the_journal(self) -> None:
        confirmed = {share for kind, share in self.journal if kind == "confirmed"}
        assert set(self.backend.changes) <= confirmed


MemoryTraffic.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestMemoryTraffic = MemoryTraffic.TestCase
