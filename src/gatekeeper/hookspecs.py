"""Hook specifications for gatekeeper plugins (pluggy project name ``gatekeeper``).

A plugin is a module or object with functions marked ``@gatekeeper.hookimpl``,
found through the entry-point group ``gatekeeper``. The built-in sources and
backends register through these same hooks. Arguments may be added to a hook in
later versions, never renamed or removed; an implementation may take any subset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from datetime import datetime

    from ._approval import ApprovalAnswer
    from ._model import Decision, GateResult, Phase, RunResult, Split
    from ._registry import BackendRegistry, RunInfoView, SourceRegistry
    from ._run.watch import WatchReport

hookspec = pluggy.HookspecMarker("gatekeeper")
hookimpl = pluggy.HookimplMarker("gatekeeper")


@hookspec
def gatekeeper_add_sources(sources: SourceRegistry) -> None:
    """Register metric source types: ``sources.add("prometheus", factory)``."""


@hookspec
def gatekeeper_add_traffic_backends(backends: BackendRegistry) -> None:
    """Register traffic backend types: ``backends.add("haproxy", factory)``."""


@hookspec
def gatekeeper_run_started(run: RunInfoView) -> None:
    """A run started (or resumed)."""


@hookspec
def gatekeeper_approval_requested(run: RunInfoView, phase: Phase) -> None:
    """A phase waits for a manual go/no-go."""


@hookspec
def gatekeeper_approval_answered(run: RunInfoView, phase: Phase, answer: ApprovalAnswer) -> None:
    """A go/no-go was answered: given, rejected, or still pending (the run stops)."""


@hookspec
def gatekeeper_phase_started(run: RunInfoView, phase: Phase, split: Split) -> None:
    """A phase started; ``split`` is what the balancer confirmed."""


@hookspec
def gatekeeper_traffic_changed(
    run: RunInfoView, phase: Phase | None, split: Split, previous: Split | None
) -> None:
    """The balancer confirmed a new split (rollbacks included)."""


@hookspec
def gatekeeper_checkpoint_judged(
    run: RunInfoView,
    phase: Phase,
    result: GateResult,
    decision: Decision,
    next_at: datetime | None,
    next_checkpoint: str | None,
) -> None:
    """A gate was judged at a checkpoint and the policy decided."""


@hookspec
def gatekeeper_run_finished(run: RunInfoView, result: RunResult) -> None:
    """A run ended; ``result.outcome`` says how."""


@hookspec
def gatekeeper_phase_waiting(
    run: RunInfoView, phase: Phase, until: datetime | None, reason: str
) -> None:
    """A phase waits before it starts or advances: a start time, a window, a freeze or
    a person's hold. ``until`` is when it is expected to go on (None: unknown)."""


@hookspec
def gatekeeper_watch_report(run: RunInfoView, phase: Phase, report: WatchReport) -> None:
    """The watch between checkpoints has news: a criterion changed state (failing,
    passing again, no data), the watch failed, or its periodic summary. Never one
    call per look."""
