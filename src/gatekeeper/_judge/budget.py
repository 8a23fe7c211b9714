"""One error budget per rollout: how the plan's α is shared by its statistical criteria.

A healthy release must be rolled back by a statistical criterion anywhere in the plan
with probability at most α. Each compare criterion of each phase runs its own
e-processes, so a union (Bonferroni) bound over all of them keeps the promise: criterion
``i`` gets ``α_i = α · w_i`` with weights summing to 1 over *every* compare criterion
of *every* phase. The weights are equal, except that a criterion with its own ``alpha``
in the plan keeps it and the others share what is left. A criterion judged at
checkpoints and by a watch runs one e-process (the watch and the checkpoints share the
state), so it takes one share. "α spent so far" after a phase is the sum of the shares of
the phases judged up to it: the most that a false rollback could have cost so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from .._model import Gate, Kind, Phase
from .verdict import check_alpha


def split_alpha(alpha: float, n_tests: int) -> float:
    """Bonferroni: each of ``n_tests`` criteria gets ``alpha / n_tests``, so the chance
    that *any* of them falsely fails stays at most ``alpha``."""
    check_alpha(alpha)
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests!r}")
    return alpha / n_tests


def criterion_alpha(gate: Gate, index: int) -> float:
    """The level of the gate's ``index``-th criterion within its own gate only (its own
    ``alpha``, else the gate's alpha split over the gate's compare criteria). A plan
    with several phases should use :class:`AlphaBudget`, which spends one α over all."""
    criterion = gate.criteria[index]
    if criterion.alpha is not None:
        return criterion.alpha
    compares = [c for c in gate.criteria if c.kind is Kind.COMPARE]
    return split_alpha(gate.alpha, max(1, len(compares)))


@attrs.frozen(kw_only=True)
class AlphaBudget:
    """The rollout's α spread over its compare criteria: ``alpha(phase, index)`` is the
    level the judge gets, ``spent_through(phase)`` the budget used once that phase has
    been judged (phases in plan order)."""

    total: float
    shares: Mapping[tuple[str, int], float]
    phases: tuple[str, ...]

    @classmethod
    def of(cls, phases: Sequence[Phase], alpha: float) -> AlphaBudget:
        """Share ``alpha`` over every compare criterion of ``phases``. Raises
        ``ValueError`` when the criteria's own alphas add up to more than ``alpha``."""
        check_alpha(alpha)
        fixed: dict[tuple[str, int], float] = {}
        free: list[tuple[str, int]] = []
        for phase in phases:
            for index, criterion in enumerate(phase.gate.criteria):
                if criterion.kind is not Kind.COMPARE:
                    continue
                key = (phase.name, index)
                if criterion.alpha is not None:
                    fixed[key] = criterion.alpha
                else:
                    free.append(key)
        left = alpha - sum(fixed.values())
        if left < -1e-15 or (free and left <= 0):
            raise ValueError(
                f"the criteria's own alphas ({sum(fixed.values()):g}) leave nothing of "
                f"the rollout's alpha {alpha:g} for the other compare criteria"
            )
        shares = dict(fixed)
        for key in free:
            shares[key] = left / len(free)
        return cls(total=alpha, shares=shares, phases=tuple(p.name for p in phases))

    def alpha(self, phase: str, index: int) -> float:
        """The level of criterion ``index`` of ``phase``."""
        try:
            return self.shares[(phase, index)]
        except KeyError:
            raise ValueError(f"criterion {index} of phase {phase!r} is not a compare") from None

    def spent_through(self, phase: str) -> float:
        """The α of every compare criterion in the phases up to and including ``phase``."""
        upto = set(self.phases[: self.phases.index(phase) + 1])
        return sum(a for (name, _), a in self.shares.items() if name in upto)
