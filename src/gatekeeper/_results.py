"""What a run produces: queries asked, measurements taken, verdicts, gate results,
decisions, the split the balancer reports, and the results of checkpoints, phases and
runs. Immutable ``attrs`` classes without I/O; :mod:`._model` re-exports them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._units import format_duration
from ._vocab import Action, Outcome, RunOutcome, frozen_mapping

if TYPE_CHECKING:
    from ._model import Criterion

__all__ = [
    "CheckpointResult",
    "Decision",
    "GateResult",
    "Measurement",
    "PhaseResult",
    "Query",
    "RunResult",
    "Split",
    "Verdict",
    "gate_outcome",
]


@attrs.frozen(kw_only=True)
class Query:
    """What the engine asks a metric source: one metric, one variant, one moment.

    ``text`` is the query template as the plan wrote it; a source renders it with
    :meth:`render`, passing its own escaping for substituted values.
    """

    metric: str
    text: str
    at: datetime
    window: timedelta
    variant: str = "canary"
    phase: str = ""
    args: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    deadline: datetime | None = None

    def placeholders(self) -> dict[str, str]:
        values = dict(self.args)
        values.setdefault("variant", self.variant)
        values["phase"] = self.phase
        values["window"] = format_duration(self.window) if self.window else "0s"
        return values

    def render(self, escape: Any = None) -> str:
        """The template with ``{{name}}`` replaced; ``escape(value)`` guards each value."""
        from ._template import render  # noqa: PLC0415

        return render(self.text, self.placeholders(), escape=escape)


@attrs.frozen(kw_only=True)
class Measurement:
    """What a source answered for one query.

    ``value`` is ``None`` when there is no usable number; ``reason`` then says why
    (an empty result, a source error after retries, ...). ``numerator`` and
    ``denominator`` carry the two counts of a ratio where the source knows them;
    ``labels`` names what was counted (alert names); ``series`` holds the samples of
    a range query; ``moments`` the sample count, sum and sum of squares behind a mean
    (cumulative since the phase started), for the statistical judge of means.
    """

    metric: str
    at: datetime
    value: float | None
    variant: str = "canary"
    query: str = ""
    source: str = ""
    reason: str | None = None
    numerator: float | None = None
    denominator: float | None = None
    labels: tuple[str, ...] = ()
    series: tuple[tuple[datetime, float], ...] = ()
    moments: tuple[float, float, float] | None = None
    warnings: tuple[str, ...] = ()
    retries: int = 0
    # The source answered without error but had no series at all (Prometheus has no
    # series for a status code never seen): a ratio's numerator reads it as 0 events.
    empty: bool = False

    @property
    def problem(self) -> str | None:
        """Why this measurement cannot be judged, or ``None`` when it can."""
        if self.reason is not None:
            return self.reason
        if self.value is None:
            return "no data"
        if math.isnan(self.value):
            return "value is NaN"
        if math.isinf(self.value):
            return f"value is {'+' if self.value > 0 else '-'}Inf"
        if self.warnings:
            return "source warned: " + "; ".join(self.warnings)
        return None


@attrs.frozen(kw_only=True)
class Verdict:
    """The judgement of one criterion at one checkpoint."""

    criterion: Criterion
    outcome: Outcome
    reason: str
    observed: float | None = None
    bound: float | None = None
    measurements: tuple[Measurement, ...] = ()
    evidence: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)

    @property
    def query(self) -> str:
        return " | ".join(m.query for m in self.measurements if m.query)


def gate_outcome(verdicts: tuple[Verdict, ...] | list[Verdict]) -> Outcome:
    """FAIL if any criterion failed, INCONCLUSIVE if none failed but one could not
    decide, PASS only if every criterion passed (and there is at least one)."""
    outcomes = {v.outcome for v in verdicts}
    if Outcome.FAIL in outcomes:
        return Outcome.FAIL
    if Outcome.INCONCLUSIVE in outcomes or not verdicts:
        return Outcome.INCONCLUSIVE
    return Outcome.PASS


@attrs.frozen(kw_only=True)
class GateResult:
    """Every verdict of a gate at one checkpoint, and the gate's own outcome."""

    phase: str
    checkpoint: str
    at: datetime
    verdicts: tuple[Verdict, ...]
    attempt: int = 1

    @property
    def outcome(self) -> Outcome:
        return gate_outcome(self.verdicts)


#: How a decision of a phase's watch begins: "watch at 3m into ramp, before ...".
WATCH_DECIDED = "watch at "


@attrs.frozen(kw_only=True)
class Decision:
    """What the policy decided after a checkpoint, and why.

    A ``HOLD`` with ``recheck_at`` re-checks the gate then; a ``HOLD`` without it
    stops the run where it is, for a person to decide.
    """

    action: Action
    reason: str
    recheck_at: datetime | None = None

    @property
    def final(self) -> bool:
        """Whether this decision ends the phase (and the run unless it advances)."""
        return self.action in (Action.ADVANCE, Action.ROLLBACK) or (
            self.action is Action.HOLD and self.recheck_at is None
        )

    @property
    def by_watch(self) -> bool:
        """Whether the phase's watch decided it, between checkpoints (the journal keeps
        it under the checkpoint the watch came before)."""
        return self.reason.startswith(WATCH_DECIDED)


@attrs.frozen(kw_only=True)
class Split:
    """The traffic split a balancer reports: the canary's share in percent."""

    canary: float
    detail: str = ""

    @property
    def baseline(self) -> float:
        return 100.0 - self.canary


@attrs.frozen(kw_only=True)
class CheckpointResult:
    """One judged checkpoint: the gate result and the decision taken on it."""

    result: GateResult
    decision: Decision


@attrs.frozen(kw_only=True)
class PhaseResult:
    """How one phase went."""

    phase: str
    decision: Decision
    checkpoints: tuple[CheckpointResult, ...] = ()


@attrs.frozen(kw_only=True)
class RunResult:
    """How a run ended: the outcome, why, and every phase it went through."""

    run_id: str
    plan: str
    outcome: RunOutcome
    reason: str
    phases: tuple[PhaseResult, ...] = ()
    split: Split | None = None

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def ok(self) -> bool:
        return self.outcome is RunOutcome.ADVANCED
