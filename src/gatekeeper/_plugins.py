"""The plugin host: a pluggy manager behind a typed facade, and the type registries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs
from ._registry import BackendRegistry, RunInfoView, SourceRegistry

if TYPE_CHECKING:
    from ._approval import ApprovalAnswer
    from ._model import Decision, GateResult, Phase, RunResult, Split

PROJECT = "gatekeeper"


class Plugins:
    """Typed facade over the pluggy manager: one method per hook, so ``pm.hook.*``
    (typed ``Any``) never leaks into the engine."""

    def __init__(self, *, load_entry_points: bool = True, plugins: Iterable[object] = ()) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        from . import _builtin  # noqa: PLC0415 - built-ins register like any other plugin

        self.pm.register(_builtin, name="gatekeeper.builtin")
        for plugin in plugins:
            self.pm.register(plugin)
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(PROJECT)
        # A misspelled hook implementation fails here, loudly.
        self.pm.check_pending()
        self.sources = SourceRegistry()
        self.backends = BackendRegistry()
        self.pm.hook.gatekeeper_add_sources(sources=self.sources)
        self.pm.hook.gatekeeper_add_traffic_backends(backends=self.backends)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add an event plugin (a reporter, say) after start-up."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()

    def unregister(self, plugin: object) -> None:
        self.pm.unregister(plugin)

    def run_started(self, run: RunInfoView) -> None:
        self.pm.hook.gatekeeper_run_started(run=run)

    def approval_requested(self, run: RunInfoView, phase: Phase) -> None:
        self.pm.hook.gatekeeper_approval_requested(run=run, phase=phase)

    def approval_answered(self, run: RunInfoView, phase: Phase, answer: ApprovalAnswer) -> None:
        self.pm.hook.gatekeeper_approval_answered(run=run, phase=phase, answer=answer)

    def phase_started(self, run: RunInfoView, phase: Phase, split: Split) -> None:
        self.pm.hook.gatekeeper_phase_started(run=run, phase=phase, split=split)

    def traffic_changed(
        self, run: RunInfoView, phase: Phase | None, split: Split, previous: Split | None
    ) -> None:
        self.pm.hook.gatekeeper_traffic_changed(
            run=run, phase=phase, split=split, previous=previous
        )

    def checkpoint_judged(
        self,
        run: RunInfoView,
        phase: Phase,
        result: GateResult,
        decision: Decision,
        next_at: datetime | None,
        next_checkpoint: str | None,
    ) -> None:
        self.pm.hook.gatekeeper_checkpoint_judged(
            run=run,
            phase=phase,
            result=result,
            decision=decision,
            next_at=next_at,
            next_checkpoint=next_checkpoint,
        )

    def run_finished(self, run: RunInfoView, result: RunResult) -> None:
        self.pm.hook.gatekeeper_run_finished(run=run, result=result)


_default: Plugins | None = None


def default_plugins() -> Plugins:
    """The process-wide plugin host, built on first use (never at import time)."""
    global _default  # noqa: PLW0603 - one lazily built host per process, like pytest's
    if _default is None:
        _default = Plugins()
    return _default
