"""The policy: a gate's outcome at a checkpoint → a :class:`Decision`.

A pure function of the policy, the phase's counters so far and the outcome, so it
can be property-tested: no outcome other than PASS ever yields ADVANCE or CONTINUE.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ._model import Action, Decision, OnFail, OnInconclusive, Outcome, Policy

__all__ = ["PolicyState", "decide"]


@attrs.frozen(kw_only=True)
class PolicyState:
    """What the policy remembers within a phase."""

    failures: int = 0
    consecutive_failures: int = 0
    consecutive_inconclusive: int = 0


def _stop(policy: Policy, why: str) -> Decision:
    if policy.on_fail is OnFail.ROLLBACK:
        return Decision(action=Action.ROLLBACK, reason=why)
    return Decision(action=Action.HOLD, reason=why + "; holding for a person to decide")


def decide(
    policy: Policy,
    state: PolicyState,
    outcome: Outcome,
    *,
    last: bool,
    now: datetime,
    why: str = "",
    collecting: bool = False,
) -> tuple[Decision, PolicyState]:
    """Decide after one evaluation of a gate.

    ``last`` says whether this was the phase's last checkpoint; ``why`` is the
    one-line summary of the verdicts that the decision's reason starts with.
    ``collecting`` says an INCONCLUSIVE gate only waits for evidence to accumulate
    (sequential tests): before the last checkpoint that continues to the next one
    without counting against ``inconclusive_limit``; at the last it holds as usual.
    """
    detail = f": {why}" if why else ""
    if outcome is Outcome.INCONCLUSIVE and collecting and not last:
        return Decision(action=Action.CONTINUE, reason=f"collecting evidence{detail}"), state
    if outcome is Outcome.INCONCLUSIVE and policy.on_inconclusive is OnInconclusive.FAIL:
        outcome = Outcome.FAIL
        detail = f" (inconclusive counts as a failure){detail}"

    if outcome is Outcome.PASS:
        new = PolicyState(failures=state.failures)
        if last:
            return Decision(action=Action.ADVANCE, reason=f"gate passed{detail}"), new
        return Decision(action=Action.CONTINUE, reason=f"gate passed{detail}"), new

    recheck = now + policy.recheck_interval
    if outcome is Outcome.FAIL:
        new = PolicyState(
            failures=state.failures + 1,
            consecutive_failures=state.consecutive_failures + 1,
            consecutive_inconclusive=0,
        )
        if new.failures >= policy.failure_limit:
            return _stop(policy, f"gate failed{detail}"), new
        if new.consecutive_failures >= policy.consecutive_failure_limit:
            return _stop(
                policy, f"gate failed {new.consecutive_failures} times in a row{detail}"
            ), new
        return (
            Decision(
                action=Action.HOLD,
                reason=(
                    f"gate failed ({new.failures} of {policy.failure_limit} allowed)"
                    f"{detail}; re-checking"
                ),
                recheck_at=recheck,
            ),
            new,
        )

    new = attrs.evolve(state, consecutive_inconclusive=state.consecutive_inconclusive + 1)
    if new.consecutive_inconclusive >= policy.inconclusive_limit:
        return _stop(
            policy,
            f"gate inconclusive {new.consecutive_inconclusive} times in a row{detail}",
        ), new
    return (
        Decision(
            action=Action.HOLD,
            reason=(
                f"gate inconclusive ({new.consecutive_inconclusive} of "
                f"{policy.inconclusive_limit} in a row){detail}; re-checking"
            ),
            recheck_at=recheck,
        ),
        new,
    )
