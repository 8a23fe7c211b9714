"""The fleet: named targets, ordered waves, bakes and the fleet-wide policy.

Values only (``attrs.frozen``, no I/O). A :class:`Fleet` holds the plan every
target runs and derives each target's own plan (:meth:`Fleet.target_plan`): its
name ``"<plan>@<target>"`` (so each target is its own durable run in the store),
its traffic backend, its query args merged over the plan's, and its share of the
plan's error budget.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta

import attrs

from .._model import Approval, Criterion, Gate, Phase, Plan, TrafficConfig

__all__ = [
    "ENTRY_PHASE",
    "Bake",
    "Fleet",
    "FleetOnFail",
    "FleetPolicy",
    "Target",
    "Wave",
    "fleet_name",
    "target_name",
]

#: The name of the one-phase plan the entry gate is judged as (``acheck``).
ENTRY_PHASE = "fleet-entry"


def _frozen(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


def target_name(plan: str, target: str) -> str:
    """The plan name a target's runs are journaled under."""
    return f"{plan}@{target}"


def fleet_name(plan: str) -> str:
    """The plan name the fleet's own progress is journaled under."""
    return f"{plan}@fleet"


class FleetOnFail(enum.Enum):
    """What a failure in one target does to the targets already moved."""

    ROLLBACK_WAVE = "rollback-wave"  # every target of the failing wave back to 0 %
    ROLLBACK_ALL = "rollback-all"  # every target the fleet moved back to 0 %
    STOP = "stop"  # the others stay where they are; a person decides


@attrs.frozen(kw_only=True)
class Bake:
    """How long a wave must run at its final share, and on how much traffic, before
    the next wave starts: ``duration`` of time AND ``requests`` per target (read from
    the fleet's ``requests`` metric over the bake), re-checked every ``recheck`` for
    at most ``limit`` past ``duration``."""

    duration: timedelta = timedelta(0)
    requests: int | None = None
    recheck: timedelta = timedelta(minutes=5)
    limit: timedelta = timedelta(hours=24)


@attrs.frozen(kw_only=True)
class Target:
    """One place the release goes: its own traffic backend and query args."""

    name: str
    traffic: TrafficConfig
    args: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)


@attrs.frozen(kw_only=True)
class Wave:
    """Targets that run the plan's phases together, then bake."""

    name: str
    targets: tuple[str, ...]
    bake: Bake = Bake()
    approval: Approval | None = None


@attrs.frozen(kw_only=True)
class FleetPolicy:
    """``[fleet]``: what a failure does, the entry gate, pairs never in one wave."""

    on_fail: FleetOnFail = FleetOnFail.ROLLBACK_WAVE
    entry: tuple[Criterion, ...] = ()
    entry_window: timedelta = timedelta(minutes=10)
    entry_recheck: timedelta = timedelta(minutes=5)
    entry_limit: timedelta = timedelta(hours=1)
    pairs: tuple[tuple[str, str], ...] = ()
    requests: str | None = None  # the metric a bake's requests are read from


@attrs.frozen(kw_only=True)
class Fleet:
    """A plan rolled out target by target, wave by wave."""

    plan: Plan
    targets: Mapping[str, Target]
    waves: tuple[Wave, ...]
    policy: FleetPolicy = FleetPolicy()
    digest: str = ""

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def alpha_share(self) -> float:
        """Each target's share of the plan's error budget: 1 / the number of targets
        (Bonferroni: P(any healthy target rolled back) <= the sum of the shares)."""
        return 1.0 / max(len(self.targets), 1)

    def wave_of(self, target: str) -> Wave:
        for wave in self.waves:
            if target in wave.targets:
                return wave
        raise KeyError(f"unknown target {target!r} (known: {', '.join(self.targets)})")

    def target_plan(self, name: str) -> Plan:
        """The plan ``name`` runs: the fleet's, named ``"<plan>@<target>"``, with the
        target's backend and args, every alpha divided by the number of targets, and
        the wave's approval (if any) asked before its first phase."""
        target = self.targets[name]
        share = self.alpha_share
        wave = self.wave_of(name)
        phases = []
        for index, phase in enumerate(self.plan.phases):
            criteria = tuple(
                c if c.alpha is None else attrs.evolve(c, alpha=c.alpha * share)
                for c in phase.gate.criteria
            )
            gate = Gate(criteria=criteria, alpha=phase.gate.alpha * share)
            policy = attrs.evolve(phase.policy, alpha=phase.policy.alpha * share)
            changed: Phase = attrs.evolve(phase, gate=gate, policy=policy)
            if index == 0 and wave.approval is not None and phase.approval is None:
                changed = attrs.evolve(changed, approval=wave.approval)
            phases.append(changed)
        digest = _digest(
            self.plan.digest,
            {
                "target": name,
                "traffic": {"type": target.traffic.type, **dict(target.traffic.options)},
                "args": dict(target.args),
                "share": share,
                "approval": None if wave.approval is None else wave.approval.prompt,
            },
        )
        return attrs.evolve(
            self.plan,
            name=target_name(self.plan.name, name),
            traffic=target.traffic,
            args={**self.plan.args, **target.args},
            phases=tuple(phases),
            # The rollout's false-rollback budget is the fleet's: each target gets its share.
            policy=attrs.evolve(self.plan.policy, alpha=self.plan.policy.alpha * share),
            digest=digest,
        )

    def entry_plan(self, name: str) -> Plan:
        """The target's plan with one phase judging the fleet's entry gate."""
        base = self.target_plan(name)
        window = self.policy.entry_window
        from .._model import Checkpoint  # noqa: PLC0415

        phase = Phase(
            name=ENTRY_PHASE,
            traffic=0.0,
            checkpoints=(Checkpoint.at(window),),
            gate=Gate(criteria=self.policy.entry),
        )
        return attrs.evolve(base, name=base.name + "#entry", phases=(phase,))


def _digest(base: str, extra: Mapping[str, object]) -> str:
    text = json.dumps({"base": base, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
