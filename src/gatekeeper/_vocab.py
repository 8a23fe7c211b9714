"""The words of gatekeeper's model: outcomes, actions, criterion kinds, comparisons.

A leaf module (no imports of ours), so the criterion grammar and the model both use
it without an import cycle; :mod:`._model` re-exports every name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "COMPARISONS",
    "Action",
    "Kind",
    "OnFail",
    "OnInconclusive",
    "Outcome",
    "Reference",
    "RunOutcome",
    "compare",
    "frozen_mapping",
]


class Outcome(enum.Enum):
    """The verdict on one criterion or one gate."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Action(enum.Enum):
    """What the runner does after a checkpoint."""

    CONTINUE = "continue"  # wait for the next checkpoint of the phase
    ADVANCE = "advance"  # the phase is done: on to the next one
    HOLD = "hold"  # stay where we are (re-check, or stop and wait for a person)
    ROLLBACK = "rollback"  # canary share to 0, the run ends


class Kind(enum.Enum):
    """Criterion kinds. ``COMPARE`` is the statistical canary-vs-baseline judge."""

    THRESHOLD = "threshold"
    RELATIVE = "relative"
    COUNT = "count"
    STABLE = "stable"
    COMPARE = "compare"


class Reference(enum.Enum):
    """What a relative criterion compares against."""

    BASELINE = "baseline"  # the concurrent baseline variant, measured at the same moment
    PRERUN = "prerun"  # the canary metric's value recorded when the run started


class OnFail(enum.Enum):
    ROLLBACK = "rollback"
    HOLD = "hold"


class OnInconclusive(enum.Enum):
    HOLD = "hold"
    FAIL = "fail"


class RunOutcome(enum.Enum):
    """How a run (or the part of it that was asked for) ended."""

    ADVANCED = "advanced"  # every phase asked for advanced
    ROLLED_BACK = "rolled back"
    HELD = "held"  # stopped where it was; a person decides
    INTERRUPTED = "interrupted"  # cut short (signal, error): never a success
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        """The CLI contract: 0 advanced, 1 rolled back / failed, 3 held or cut short."""
        return {
            RunOutcome.ADVANCED: 0,
            RunOutcome.ROLLED_BACK: 1,
            RunOutcome.HELD: 3,
            RunOutcome.INTERRUPTED: 3,
            RunOutcome.ERROR: 1,
        }[self]


COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


def compare(observed: float, op: str, bound: float) -> bool:
    """``observed OP bound`` for the six comparison operators of the plan grammar."""
    if op == "<":
        return observed < bound
    if op == "<=":
        return observed <= bound
    if op == ">":
        return observed > bound
    if op == ">=":
        return observed >= bound
    if op == "==":
        return observed == bound
    if op == "!=":
        return observed != bound
    raise ValueError(f"unknown comparison {op!r}")


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy: frozen attrs classes hold mappings nobody can change."""
    return MappingProxyType(dict(value))
