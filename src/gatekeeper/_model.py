"""The value objects of gatekeeper: plans, gates, measurements, verdicts, decisions.

Everything here is an immutable ``attrs`` class without I/O. Raw configuration
enters through :meth:`Plan.from_mapping` / :func:`gatekeeper.load_plan`, never
through ``Cls(**raw)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._calendar import Calendar
from ._calendar_start import StartAt

# The vocabulary lives in a leaf module (no import cycle with the grammar); re-exported.
from ._results import (
    CheckpointResult,
    Decision,
    GateResult,
    Measurement,
    PhaseResult,
    Query,
    RunResult,
    Split,
    Verdict,
    gate_outcome,
)
from ._units import format_duration, format_quantity
from ._vocab import (
    COMPARISONS,
    Action,
    Kind,
    OnFail,
    OnInconclusive,
    Outcome,
    Reference,
    RunOutcome,
    compare,
    frozen_mapping,
)

__all__ = [
    "COMPARISONS",
    "Action",
    "Approval",
    "Checkpoint",
    "CheckpointResult",
    "Criterion",
    "Decision",
    "Gate",
    "GateResult",
    "Kind",
    "Measurement",
    "Metric",
    "OnFail",
    "OnInconclusive",
    "Outcome",
    "Phase",
    "PhaseResult",
    "Plan",
    "Policy",
    "Query",
    "Reference",
    "RunOutcome",
    "RunResult",
    "SourceConfig",
    "Split",
    "Step",
    "TrafficConfig",
    "Verdict",
    "Watch",
    "compare",
    "gate_outcome",
]

if TYPE_CHECKING:
    from pathlib import Path


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A moment a gate is judged, as an offset from the phase's start.

    In a phase that goes up in steps, ``traffic`` is the canary share of the step the
    checkpoint belongs to and ``step_start`` when that step begins (from the phase's
    start); both are ``None`` in a single-step phase.
    """

    name: str
    offset: timedelta
    traffic: float | None = None
    step_start: timedelta | None = None

    @classmethod
    def at(cls, offset: timedelta) -> Checkpoint:
        return cls(name=format_duration(offset), offset=offset)


@attrs.frozen(kw_only=True)
class Criterion:
    """One condition of a gate, parsed from text like ``"error_rate < 0.5%"``.

    ``bound`` and ``offset`` are in the metric's own unit; ``unit`` is how the
    text wrote the bound ("%", "ms", "s" or ""), used to show values back.
    """

    text: str
    kind: Kind
    metric: str
    op: str | None = None
    bound: float | None = None
    unit: str = ""
    reference: Reference | None = None
    factor: float = 1.0
    offset: float = 0.0
    window: timedelta | None = None
    tolerance: float | None = None
    fail_only: bool = False
    alpha: float | None = None
    # A watch's threshold criterion fails only once it has failed continuously this
    # long ("error_rate < 0.5% for 1m"): one noisy scrape does not roll back.
    persist: timedelta | None = None

    @property
    def label(self) -> str:
        """How reports name the criterion: its metric, marked when it is statistical
        (a gate may judge one metric both ways)."""
        if self.kind is Kind.COMPARE:
            return f"{self.metric} vs baseline" if self.reference else f"{self.metric} (seq.)"
        return self.metric

    def describe_bound(self) -> str:
        """The right-hand side as a person reads it: ``< 0.5%``, ``>= prerun × 1.058``."""
        if self.kind is Kind.STABLE:
            window = f" over {format_duration(self.window)}" if self.window else ""
            return f"drift <= {format_quantity(self.tolerance or 0.0, '%')}{window}"
        if self.kind in (Kind.RELATIVE, Kind.COMPARE) and self.reference is not None:
            rhs = self.reference.value
            if self.factor != 1.0:
                rhs += f" * {self.factor:g}"
            if self.offset:
                rhs += f" {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"
            return f"{self.op} {rhs}"
        return f"{self.op} {self.text.split(self.op or ' ', 1)[-1].strip()}"


@attrs.frozen(kw_only=True)
class Gate:
    """The criteria judged at every checkpoint of a phase."""

    criteria: tuple[Criterion, ...] = ()
    alpha: float = 0.01


@attrs.frozen(kw_only=True)
class Watch:
    """Criteria judged every few seconds between a phase's checkpoints.

    A watch may stop a phase (its FAIL applies the phase's ``on_fail`` at once) and
    never advance one. Statistical criteria share their evidence with the phase's
    gate; threshold criteria may ask for persistence (``for 1m``). ``stale``: how
    long the watch may see no data before it says so.
    """

    every: timedelta
    gate: Gate
    stale: timedelta


@attrs.frozen(kw_only=True)
class Policy:
    """How verdicts become decisions. Defaults are the safe ones.

    * a FAIL rolls back (``on_fail``), once ``failure_limit`` failed checkpoints or
      ``consecutive_failure_limit`` failures in a row are reached; below the limits
      the phase holds and re-checks after ``recheck_interval``;
    * an INCONCLUSIVE holds and re-checks (``on_inconclusive = "hold"``) until
      ``inconclusive_limit`` in a row, then does what ``on_fail`` says.
    """

    on_fail: OnFail = OnFail.ROLLBACK
    on_inconclusive: OnInconclusive = OnInconclusive.HOLD
    failure_limit: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    consecutive_failure_limit: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    inconclusive_limit: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    recheck_interval: timedelta = timedelta(minutes=5)
    # A [windows.NAME] the phase may only advance and raise traffic in (None: always).
    window: str | None = None
    # The rollout's false-rollback budget over every compare criterion of every phase.
    alpha: float = 0.01


@attrs.frozen(kw_only=True)
class Approval:
    """A manual go/no-go asked before a phase starts."""

    prompt: str = "go/no-go"
    timeout: timedelta | None = None
    # Asked at this time of day before the phase's start (answers due by the start);
    # no answer by then: "hold" (stop, a person decides) or "reject" (roll back).
    ask_at: StartAt | None = None
    on_deadline: str = "hold"


@attrs.frozen(kw_only=True)
class Step:
    """One step of a phase that goes up in steps (1 → 5 → 10 %): a share and its
    checkpoints, as offsets from the step's own start."""

    traffic: float = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(100)])
    checkpoints: tuple[timedelta, ...]
    names: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Phase:
    """A share of traffic held for a while and judged at checkpoints.

    With ``steps`` the phase goes up in steps: ``traffic`` is the first step's share
    and ``checkpoints`` are every step's checkpoints in order, offsets counted from
    the phase's start, each carrying its step's share.
    """

    name: str
    traffic: float = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(100)])
    checkpoints: tuple[Checkpoint, ...]
    gate: Gate = Gate()
    policy: Policy = Policy()
    approval: Approval | None = None
    description: str = ""
    steps: tuple[Step, ...] = ()
    # When the phase may begin once the one before it ended ("14:00", "+1d 16:00").
    start_at: StartAt | None = None
    watch: Watch | None = None

    @property
    def final_traffic(self) -> float:
        """The canary share the phase ends with (its last step's)."""
        return self.steps[-1].traffic if self.steps else self.traffic

    @property
    def duration(self) -> timedelta:
        """The phase lasts until its last checkpoint (when nothing holds)."""
        return self.checkpoints[-1].offset if self.checkpoints else timedelta(0)

    def checkpoint(self, name: str) -> Checkpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.name == name:
                return checkpoint
        known = ", ".join(c.name for c in self.checkpoints)
        raise KeyError(f"phase {self.name!r} has no checkpoint {name!r} (known: {known})")


@attrs.frozen(kw_only=True)
class Metric:
    """A named measurement: which source answers it and with which query.

    ``query`` may be a template (``{{variant}}``, ``{{phase}}``, ``{{window}}`` and
    plan args); a ratio metric gives ``numerator`` and ``denominator`` instead, so
    the measurement keeps both counts (the statistical judge needs them).
    ``window`` fixes ``{{window}}`` (default: the time since the phase started).
    ``options`` holds source-specific settings (a JSON path, a label to pick by).
    """

    name: str
    source: str
    query: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    baseline_query: str | None = None
    unit: str = ""
    count: bool = False
    window: timedelta | None = None
    args: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    # For the statistical judge: how overdispersed the counts are from look to look
    # (>= 1), how each arm's rate wanders on its own (the standard deviation of its log,
    # and for how long), and, for means, the range every value lies in (unbounded means
    # are refused).
    dispersion: float = 1.0
    bursts: tuple[float, timedelta] | None = None
    bounds: tuple[float, float] | None = None

    @property
    def is_ratio(self) -> bool:
        return self.numerator is not None


@attrs.frozen(kw_only=True)
class SourceConfig:
    """A named metric source of the plan: its type and its raw options."""

    name: str
    type: str
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen(kw_only=True)
class TrafficConfig:
    """The traffic backend of the plan: its type and its raw options."""

    type: str = "memory"
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen(kw_only=True)
class Plan:
    """A progressive rollout: phases judged by gates over named metrics."""

    name: str
    phases: tuple[Phase, ...]
    metrics: Mapping[str, Metric] = attrs.field(factory=dict, converter=frozen_mapping)
    sources: Mapping[str, SourceConfig] = attrs.field(factory=dict, converter=frozen_mapping)
    traffic: TrafficConfig = TrafficConfig()
    policy: Policy = Policy()
    variants: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    args: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    description: str = ""
    # [notify.NAME] tables as written (validated by the loader; secrets by env name).
    notify: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    # The plan's time zone, windows and freezes (start times and windows use it).
    calendar: Calendar = attrs.field(factory=Calendar)
    path: str | None = attrs.field(default=None, eq=False)
    digest: str = attrs.field(default="", eq=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: str | Path | None = None) -> Plan:
        """Build a plan from a mapping shaped like the TOML plan file."""
        from ._planfile import plan_from_mapping  # noqa: PLC0415 - keeps the model import-light

        return plan_from_mapping(data, path=None if path is None else str(path))

    def to_mapping(self) -> dict[str, Any]:
        """The mapping :meth:`from_mapping` reads back into an equal plan."""
        from ._planfile import plan_to_mapping  # noqa: PLC0415

        return plan_to_mapping(self)

    def phase(self, name: str) -> Phase:
        """The phase called ``name``; a ``KeyError`` that lists the known ones otherwise."""
        for phase in self.phases:
            if phase.name == name:
                return phase
        known = ", ".join(p.name for p in self.phases)
        raise KeyError(f"unknown phase {name!r} (known: {known})")

    def select(self, names: Sequence[str] | None) -> tuple[Phase, ...]:
        """The named phases in plan order (every phase for none); a ``KeyError`` that
        lists the known ones for a name the plan lacks."""
        if not names:
            return self.phases
        for name in names:
            self.phase(name)
        return tuple(p for p in self.phases if p.name in names)

    def phase_offset(self, name: str, origin: datetime | None = None) -> timedelta:
        """When the phase starts on the nominal schedule (every earlier phase advancing
        at its last checkpoint without holds), counted from the start of the run.

        From ``origin`` the schedule keeps the plan's calendar: a phase starts at its
        ``start_at`` and inside its window, and a phase advances only inside its window
        (the last one ends the run whenever it ends)."""
        at = origin
        offset = timedelta(0)
        for phase in self.phases:
            if at is not None:
                window = phase.policy.window
                if phase.start_at is not None or window is not None:
                    start = self.calendar.phase_start(at, phase.start_at, window) or at
                    offset += start - at
                    at = start
            if phase.name == name:
                return offset
            offset += phase.duration
            if at is not None:
                at += phase.duration
                window = phase.policy.window
                if window is not None and phase is not self.phases[-1]:
                    opens = self.calendar.next_open(at, window) or at
                    offset += opens - at
                    at = opens
        raise KeyError(name)
