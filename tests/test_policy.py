"""The policy: a gate's outcome at a checkpoint becomes a decision, safely."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from gatekeeper._model import (
    Action,
    Criterion,
    Kind,
    OnFail,
    OnInconclusive,
    Outcome,
    Policy,
    Verdict,
    gate_outcome,
)
from gatekeeper._policy import PolicyState, decide
from strategies import T0, outcomes, policies

states = st.builds(
    PolicyState,
    failures=st.integers(min_value=0, max_value=6),
    consecutive_failures=st.integers(min_value=0, max_value=6),
    consecutive_inconclusive=st.integers(min_value=0, max_value=6),
).filter(lambda s: s.consecutive_failures <= s.failures)


def _counts_as_failure(policy: Policy, outcome: Outcome) -> bool:
    return outcome is Outcome.FAIL or (
        outcome is Outcome.INCONCLUSIVE and policy.on_inconclusive is OnInconclusive.FAIL
    )


def _limit_reached(policy: Policy, state: PolicyState, outcome: Outcome) -> bool:
    if _counts_as_failure(policy, outcome):
        return (
            state.failures + 1 >= policy.failure_limit
            or state.consecutive_failures + 1 >= policy.consecutive_failure_limit
        )
    return state.consecutive_inconclusive + 1 >= policy.inconclusive_limit


@given(policies, states, outcomes.filter(lambda o: o is not Outcome.PASS), st.booleans())
def test_only_pass_moves_forward(
    policy: Policy, state: PolicyState, outcome: Outcome, last: bool
) -> None:
    """An outcome other than PASS never yields ADVANCE or CONTINUE (unless collecting)."""
    decision, _ = decide(policy, state, outcome, last=last, now=T0)
    assert decision.action in (Action.HOLD, Action.ROLLBACK)


@given(policies, states, st.booleans())
def test_pass_continues_or_advances_at_the_last_checkpoint(
    policy: Policy, state: PolicyState, last: bool
) -> None:
    """PASS at the last checkpoint advances, earlier it continues; streaks reset."""
    decision, new = decide(policy, state, Outcome.PASS, last=last, now=T0, why="all good")
    expected = Action.ADVANCE if last else Action.CONTINUE
    assert (expected, "gate passed: all good", None) == (
        decision.action,
        decision.reason,
        decision.recheck_at,
    )
    assert PolicyState(failures=state.failures) == new


@given(policies, states, outcomes.filter(lambda o: o is not Outcome.PASS), st.booleans())
def test_reaching_a_limit_applies_on_fail(
    policy: Policy, state: PolicyState, outcome: Outcome, last: bool
) -> None:
    """failure_limit, consecutive_failure_limit or inconclusive_limit reached → on_fail:
    ROLLBACK, or a final HOLD without recheck_at when on_fail = hold."""
    decision, _ = decide(policy, state, outcome, last=last, now=T0)
    if not _limit_reached(policy, state, outcome):
        return
    if policy.on_fail is OnFail.ROLLBACK:
        assert (Action.ROLLBACK, None) == (decision.action, decision.recheck_at)
    else:
        assert (Action.HOLD, None) == (decision.action, decision.recheck_at)
        assert decision.reason.endswith("; holding for a person to decide")
    assert decision.final


@given(policies, states, outcomes.filter(lambda o: o is not Outcome.PASS), st.booleans())
def test_below_the_limits_hold_and_recheck(
    policy: Policy, state: PolicyState, outcome: Outcome, last: bool
) -> None:
    """Below every limit the phase holds and re-checks after recheck_interval."""
    decision, _ = decide(policy, state, outcome, last=last, now=T0)
    if _limit_reached(policy, state, outcome):
        return
    assert (Action.HOLD, T0 + policy.recheck_interval) == (decision.action, decision.recheck_at)
    assert not decision.final


@given(policies, states, outcomes)
def test_counters(policy: Policy, state: PolicyState, outcome: Outcome) -> None:
    """A failure counts in both failure counters and ends an inconclusive streak; an
    inconclusive (held) only extends its own streak; a pass keeps the phase total."""
    _, new = decide(policy, state, outcome, last=False, now=T0)
    if outcome is Outcome.PASS:
        expected = PolicyState(failures=state.failures)
    elif _counts_as_failure(policy, outcome):
        expected = PolicyState(
            failures=state.failures + 1,
            consecutive_failures=state.consecutive_failures + 1,
        )
    else:
        expected = PolicyState(
            failures=state.failures,
            consecutive_failures=state.consecutive_failures,
            consecutive_inconclusive=state.consecutive_inconclusive + 1,
        )
    assert expected == new


@given(states, st.booleans())
def test_on_inconclusive_fail_counts_as_a_failure(state: PolicyState, last: bool) -> None:
    """With on_inconclusive = fail, INCONCLUSIVE decides exactly as FAIL does, and says so."""
    policy = Policy(on_inconclusive=OnInconclusive.FAIL, failure_limit=3)
    inconclusive, after_inconclusive = decide(
        policy, state, Outcome.INCONCLUSIVE, last=last, now=T0
    )
    failed, after_fail = decide(policy, state, Outcome.FAIL, last=last, now=T0)
    assert (failed.action, failed.recheck_at, after_fail) == (
        inconclusive.action,
        inconclusive.recheck_at,
        after_inconclusive,
    )
    assert "(inconclusive counts as a failure)" in inconclusive.reason


def test_safe_defaults() -> None:
    """Defaults: one failure rolls back; inconclusive holds twice, then rolls back."""
    policy = Policy()
    failed, _ = decide(policy, PolicyState(), Outcome.FAIL, last=False, now=T0, why="x")
    assert (Action.ROLLBACK, "gate failed: x") == (failed.action, failed.reason)
    state = PolicyState()
    actions = []
    for _ in range(3):
        decision, state = decide(policy, state, Outcome.INCONCLUSIVE, last=False, now=T0)
        actions.append((decision.action, decision.recheck_at))
    expected = [
        (Action.HOLD, T0 + timedelta(minutes=5)),
        (Action.HOLD, T0 + timedelta(minutes=5)),
        (Action.ROLLBACK, None),
    ]
    assert expected == actions


def test_hold_reasons_count_towards_the_limit() -> None:
    """A held decision says how far it is from the limit."""
    policy = Policy(failure_limit=3, consecutive_failure_limit=3)
    decision, _ = decide(policy, PolicyState(), Outcome.FAIL, last=False, now=T0, why="e")
    assert "gate failed (1 of 3 allowed): e; re-checking" == decision.reason
    decision, _ = decide(policy, PolicyState(), Outcome.INCONCLUSIVE, last=False, now=T0)
    assert "gate inconclusive (1 of 3 in a row); re-checking" == decision.reason


@given(policies, states)
def test_collecting_continues_before_the_last_checkpoint(
    policy: Policy, state: PolicyState
) -> None:
    """An INCONCLUSIVE gate that only waits for evidence continues, counting nothing."""
    decision, new = decide(
        policy, state, Outcome.INCONCLUSIVE, last=False, now=T0, why="n=12", collecting=True
    )
    assert (Action.CONTINUE, "collecting evidence: n=12", None, state) == (
        decision.action,
        decision.reason,
        decision.recheck_at,
        new,
    )


@given(policies, states, outcomes, st.booleans())
def test_collecting_changes_nothing_else(
    policy: Policy, state: PolicyState, outcome: Outcome, last: bool
) -> None:
    """Collecting never advances: at the last checkpoint, or for PASS and FAIL, it
    decides exactly as without it."""
    collecting, after_collecting = decide(
        policy, state, outcome, last=last, now=T0, collecting=True
    )
    if outcome is not Outcome.PASS:
        assert collecting.action is not Action.ADVANCE
    if outcome is Outcome.INCONCLUSIVE and not last:
        return
    plain, after_plain = decide(policy, state, outcome, last=last, now=T0)
    assert (plain, after_plain) == (collecting, after_collecting)


_CRITERION = Criterion(text="m < 1", kind=Kind.THRESHOLD, metric="m", op="<", bound=1.0)


@given(policies, states, st.lists(outcomes, max_size=8), st.booleans(), st.booleans())
def test_a_gate_with_any_non_pass_never_advances(
    policy: Policy, state: PolicyState, criteria: list[Outcome], last: bool, collecting: bool
) -> None:
    """A gate with any FAIL or INCONCLUSIVE criterion (or none at all) never yields ADVANCE;
    FAIL wins over INCONCLUSIVE; only a gate whose every criterion passed advances."""
    verdicts = [Verdict(criterion=_CRITERION, outcome=o, reason="r") for o in criteria]
    outcome = gate_outcome(verdicts)
    if Outcome.FAIL in criteria:
        assert Outcome.FAIL == outcome
    elif Outcome.INCONCLUSIVE in criteria or not criteria:
        assert Outcome.INCONCLUSIVE == outcome
    else:
        assert Outcome.PASS == outcome
    decision, _ = decide(policy, state, outcome, last=last, now=T0, collecting=collecting)
    assert (decision.action is Action.ADVANCE) == (outcome is Outcome.PASS and last)
