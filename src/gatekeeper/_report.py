"""What a person watching a four-hour ramp wants to see: which phase, how much
traffic, each checkpoint as it comes, each metric against its bound, the decision
and why, and when the next checkpoint is due.

:class:`ConsoleReporter` is an ordinary plugin: it implements the event hooks.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TextIO

from ._approval import ApprovalAnswer
from ._criteria import show
from ._model import (
    Action,
    Decision,
    GateResult,
    Kind,
    Metric,
    Outcome,
    Phase,
    RunResult,
    Split,
    Verdict,
)
from ._registry import RunInfoView
from ._units import format_duration, format_number, format_quantity
from .hookspecs import hookimpl

__all__ = ["ConsoleReporter", "format_gate_table"]

_MARK = {Outcome.PASS: "✓", Outcome.FAIL: "✗", Outcome.INCONCLUSIVE: "?"}


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _in(delta: timedelta) -> str:
    return format_duration(max(delta, timedelta(0))) if delta > timedelta(0) else "now"


def _share(percent: float) -> str:
    """A traffic share as people say it: 5.08, not 5.07812 (weights round it)."""
    return format_number(round(percent, 2))


def format_verdict(verdict: Verdict, width: int = 20) -> str:
    return f"{_MARK[verdict.outcome]} {verdict.criterion.label:<{width}} {verdict.reason}"


def format_gate_table(result: GateResult, metrics: Mapping[str, Metric] | None = None) -> str:
    """A table for a failing pytest item: criterion, observed, bound, verdict, reason.

    With the plan's ``metrics``, values are shown in the unit the criterion was
    written in (0.9% rather than 0.009).
    """

    def shown(verdict: Verdict, value: float | None) -> str:
        criterion = verdict.criterion
        if criterion.kind is Kind.COMPARE and criterion.reference is not None:
            # A canary/baseline comparison: the estimate is a ratio, the bound a factor.
            if value is None and criterion.factor != 1.0:
                return f"×{criterion.factor:g}"
            return "-" if value is None else f"×{value:.3g}"
        if value is None:
            return "-"
        metric = (metrics or {}).get(verdict.criterion.metric)
        if metric is None or verdict.criterion.kind in (Kind.STABLE, Kind.COUNT):
            if verdict.criterion.kind is Kind.STABLE:
                return format_quantity(value, "%")
            return format_number(value)
        return show(value, metric, verdict.criterion.unit)

    rows = [("criterion", "observed", "bound", "verdict", "reason")]
    rows.extend(
        (
            v.criterion.text,
            shown(v, v.observed),
            shown(v, v.bound if v.criterion.kind is not Kind.COMPARE else v.criterion.bound),
            v.outcome.value.upper(),
            v.reason,
        )
        for v in result.verdicts
    )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
        lines.append(cells + "  " + row[4])
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


class ConsoleReporter:
    """Prints the run as it happens (to stdout unless told otherwise)."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self._start: datetime | None = None

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def _elapsed(self, run: RunInfoView, at: datetime) -> str:
        return "+" + (format_duration(at - run.started_at) or "0s")

    @hookimpl
    def gatekeeper_run_started(self, run: RunInfoView) -> None:
        mode = "rehearsal on a simulated clock" if run.rehearsal else "live"
        if run.resumed:
            mode += ", resumed from its journal"
        if run.judge_only:
            mode += ", judging only (traffic is never changed)"
        self._print(
            f"gatekeeper · plan {run.plan.name} · run {run.run_id} · {mode} · "
            f"started {_clock(run.started_at)}"
        )
        steps = []
        for phase in run.plan.phases:
            extra = ", approval first" if phase.approval else ""
            steps.append(
                f"{phase.name} {format_number(phase.traffic)}% "
                f"({format_duration(phase.duration)}{extra})"
            )
        self._print("plan: " + " → ".join(steps))

    @hookimpl
    def gatekeeper_approval_requested(self, run: RunInfoView, phase: Phase) -> None:
        assert phase.approval is not None
        self._print(f"\n… {phase.name}: waiting for the {phase.approval.prompt}")

    @hookimpl
    def gatekeeper_approval_answered(
        self, run: RunInfoView, phase: Phase, answer: ApprovalAnswer
    ) -> None:
        by = f" by {answer.by}" if answer.by else ""
        why = f" ({answer.reason})" if answer.reason else ""
        self._print(f"  approval: {answer.state.value}{by}{why}")

    @hookimpl
    def gatekeeper_phase_started(self, run: RunInfoView, phase: Phase, split: Split) -> None:
        checkpoints = " ".join(c.name for c in phase.checkpoints)
        self._print(
            f"\n▶ phase {phase.name} [{self._elapsed(run, run.clock.now())}] · canary "
            f"{_share(split.canary)}% / baseline {_share(split.baseline)}% · "
            f"checkpoints {checkpoints}"
        )
        if self.verbose:
            for criterion in phase.gate.criteria:
                self._print(f"    gate: {criterion.text}")

    @hookimpl
    def gatekeeper_traffic_changed(
        self, run: RunInfoView, phase: Phase | None, split: Split, previous: Split | None
    ) -> None:
        before = f"{_share(previous.canary)}% → " if previous is not None else ""
        detail = f" ({split.detail})" if split.detail and self.verbose else ""
        self._print(f"  traffic: canary {before}{_share(split.canary)}% confirmed{detail}")

    @hookimpl
    def gatekeeper_checkpoint_judged(
        self,
        run: RunInfoView,
        phase: Phase,
        result: GateResult,
        decision: Decision,
        next_at: datetime | None,
        next_checkpoint: str | None,
    ) -> None:
        attempt = f" (re-check {result.attempt - 1})" if result.attempt > 1 else ""
        self._print(
            f"  [{self._elapsed(run, result.at)}] {phase.name} @ {result.checkpoint}{attempt}: "
            f"{result.outcome.value.upper()}"
        )
        width = max((len(v.criterion.label) for v in result.verdicts), default=10)
        for verdict in result.verdicts:
            if self.verbose or verdict.outcome is not Outcome.PASS:
                self._print("      " + format_verdict(verdict, width))
        line = f"    → {decision.action.value.upper()}: {decision.reason}"
        if next_at is not None and next_checkpoint is not None:
            line += (
                f"\n    next: {next_checkpoint} at {_clock(next_at)} "
                f"(in {_in(next_at - result.at)})"
            )
        self._print(line)

    @hookimpl
    def gatekeeper_run_finished(self, run: RunInfoView, result: RunResult) -> None:
        split = ""
        if result.split is not None:
            split = f" · canary at {_share(result.split.canary)}%"
        self._print(
            f"\nresult: {result.outcome.value.upper()}{split} · {result.reason} "
            f"(exit {result.exit_code})"
        )
        held = [p for p in result.phases if p.decision.action is Action.HOLD]
        if held and not run.rehearsal:
            self._print(
                "  nothing was rolled back: traffic stays where it is until a person decides"
            )
