"""The policy over sequences of checkpoints, against a simple model of its counters."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gatekeeper._model import Action, Decision, OnFail, OnInconclusive, Outcome, Policy
from gatekeeper._policy import PolicyState, decide
from strategies import T0, outcomes, policies


class PolicyMachine(RuleBasedStateMachine):
    """Feeds outcomes into ``decide`` as the engine does within one phase.

    The model: failures counted over the phase, a failure streak that only a PASS
    ends, an inconclusive streak that a PASS or a failure ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy()
        self.state = PolicyState()
        self.now = T0
        self.start_phase(Policy())

    def start_phase(self, policy: Policy) -> None:
        self.policy = policy
        self.state = PolicyState()
        self.failures = 0
        self.failure_streak = 0
        self.inconclusive_streak = 0
        self.holds: list[Outcome] = []  # the non-final HOLDs since the last PASS
        self.last: tuple[Outcome, Decision] | None = None
        self.collecting = False

    @property
    def ended(self) -> bool:
        return self.last is not None and self.last[1].final

    @initialize(policy=policies)
    def phase(self, policy: Policy) -> None:
        self.start_phase(policy)

    @precondition(lambda self: not self.ended)
    @rule(
        outcome=outcomes,
        last=st.booleans(),
        collecting=st.booleans(),
        step=st.integers(min_value=1, max_value=3600),
    )
    def evaluate(self, outcome: Outcome, last: bool, collecting: bool, step: int) -> None:
        self.now += timedelta(seconds=step)
        decision, self.state = decide(
            self.policy, self.state, outcome, last=last, now=self.now, collecting=collecting
        )
        self.last = (outcome, decision)
        self.collecting = collecting and outcome is Outcome.INCONCLUSIVE and not last
        if self.collecting:
            # Evidence still accumulating: on to the next checkpoint, nothing counted.
            assert (Action.CONTINUE, None) == (decision.action, decision.recheck_at)
            self.check_counters()
            return

        counted = outcome
        if outcome is Outcome.INCONCLUSIVE and self.policy.on_inconclusive is OnInconclusive.FAIL:
            counted = Outcome.FAIL
        stop = Action.ROLLBACK if self.policy.on_fail is OnFail.ROLLBACK else Action.HOLD
        expected: tuple[Action, object]
        if counted is Outcome.PASS:
            self.failure_streak = self.inconclusive_streak = 0
            self.holds = []
            expected = (Action.ADVANCE if last else Action.CONTINUE, None)
        else:
            if counted is Outcome.FAIL:
                self.failures += 1
                self.failure_streak += 1
                self.inconclusive_streak = 0
                reached = (
                    self.failures >= self.policy.failure_limit
                    or self.failure_streak >= self.policy.consecutive_failure_limit
                )
            else:
                self.inconclusive_streak += 1
                reached = self.inconclusive_streak >= self.policy.inconclusive_limit
            if reached:
                expected = (stop, None)
            else:
                expected = (Action.HOLD, self.now + self.policy.recheck_interval)
                self.holds.append(counted)
        assert expected == (decision.action, decision.recheck_at)
        self.check_counters()

    def check_counters(self) -> None:
        assert (self.failures, self.failure_streak, self.inconclusive_streak) == (
            self.state.failures,
            self.state.consecutive_failures,
            self.state.consecutive_inconclusive,
        )

    @precondition(lambda self: self.ended)
    @rule(policy=policies)
    def next_phase(self, policy: Policy) -> None:
        """A final decision ends the sequence: the next one starts from fresh counters."""
        self.start_phase(policy)

    @invariant()
    def no_advance_after_a_non_pass(self) -> None:
        if self.last is not None and self.last[0] is not Outcome.PASS:
            assert self.last[1].action is not Action.ADVANCE
            assert self.last[1].action is not Action.CONTINUE or self.collecting

    @invariant()
    def final_means_advance_rollback_or_a_hold_without_recheck(self) -> None:
        if self.last is not None:
            decision = self.last[1]
            assert decision.final == (
                decision.action in (Action.ADVANCE, Action.ROLLBACK)
                or (decision.action is Action.HOLD and decision.recheck_at is None)
            )

    @invariant()
    def holds_of_one_kind_stay_below_their_limit(self) -> None:
        """Non-final HOLDs in a row on the same outcome never reach max(limits)."""
        policy = self.policy
        limits = (
            policy.failure_limit,
            policy.consecutive_failure_limit,
            policy.inconclusive_limit,
        )
        run = 0
        for previous, current in zip([None, *self.holds], self.holds, strict=False):
            run = run + 1 if previous is current else 1
            assert run <= max(limits) - 1

    @invariant()
    def holds_in_a_row_are_bounded(self) -> None:
        """Mixed FAIL/INCONCLUSIVE holds since the last PASS are bounded by the limits:
        at most m failures and m + 1 inconclusive streaks, m = min(failure limits) - 1."""
        policy = self.policy
        m = min(policy.failure_limit, policy.consecutive_failure_limit) - 1
        bound = m + (m + 1) * (policy.inconclusive_limit - 1)
        if policy.on_inconclusive is OnInconclusive.FAIL:
            bound = m
        assert len(self.holds) <= bound


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
