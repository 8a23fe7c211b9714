"""What a person watching a four-hour ramp wants to see: which phase, how much
traffic, each checkpoint as it comes, each metric against its bound, the decision
and why, what is next and when, when the phase and the run should end, and the
command that answers an approval.

:class:`ConsoleReporter` is an ordinary plugin: it implements the event hooks. In a
live run it also prints a heartbeat while a long wait goes on (its own daemon
thread; it never touches the run).
"""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

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
from ._schedule import Outlook, PlanTiming, Progress, compact_checkpoints, outlook
from ._units import format_duration, format_number, format_quantity
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._run.watch import WatchReport

__all__ = ["ConsoleReporter", "answer_args", "answer_commands", "format_gate_table", "format_span"]

_MARK = {Outcome.PASS: "✓", Outcome.FAIL: "✗", Outcome.INCONCLUSIVE: "?"}


def _clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _in(delta: timedelta) -> str:
    return format_duration(max(delta, timedelta(0))) if delta > timedelta(0) else "now"


def format_span(delta: timedelta) -> str:
    """A span as people say it: its two largest units, whole minutes above one
    (``1d14h``, ``2h34m``, ``34m``, ``45s``)."""
    if delta <= timedelta(0):
        return "0s"
    if delta >= timedelta(minutes=1):
        delta = timedelta(minutes=round(delta.total_seconds() / 60))
    units = []
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")):
        if value:
            units.append(f"{value}{unit}")
    return "".join(units[:2]) or "0s"


def _at(at: datetime, now: datetime) -> str:
    """A moment, short when it is today: ``16:00 UTC``, else with its date."""
    fmt = "%H:%M:%S" if at.second else "%H:%M"
    if at.date() != now.date():
        fmt = "%Y-%m-%d " + fmt
    return at.strftime(fmt + " UTC")


def describe_outlook(view: Outlook, now: datetime) -> str:
    """``phase ramp ends in 2h34m, at 16:00 UTC · run ends in ~1d14h, at …``."""
    ahead = ""
    if view.approvals_ahead:
        s = "s" if view.approvals_ahead > 1 else ""
        ahead = f", {view.approvals_ahead} approval{s} ahead"
    return (
        f"phase {view.phase} ends in {format_span(view.phase_ends - now)}, at "
        f"{_at(view.phase_ends, now)} · run ends in ~{format_span(view.run_ends - now)}, at "
        f"{_at(view.run_ends, now)}{ahead}"
    )


def answer_args(plan: str | None, store: str | None) -> tuple[str, ...]:
    """What follows ``gatekeeper approve RUN …`` for this run: ``--plan`` unless it is
    ./gates.toml, ``--store`` when one was named (a URL with a password is never
    printed: the placeholder says to repeat it)."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    extra: tuple[str, ...] = ()
    if plan and Path(plan).resolve() != Path("gates.toml").resolve():
        extra += ("--plan", plan)
    if store:
        try:
            secret = urlsplit(store).password is not None
        except ValueError:
            secret = True
        extra += ("--store", "<the same --store>" if secret else store)
    return extra


def answer_commands(run_id: str, phase: str, extra: Sequence[str] = ()) -> tuple[str, str]:
    """The exact commands that give and refuse a phase's go/no-go."""
    tail = "".join(" " + shlex.quote(arg) for arg in extra)
    return (
        f"gatekeeper approve {run_id} --phase {shlex.quote(phase)} --by NAME{tail}",
        f"gatekeeper reject {run_id} --phase {shlex.quote(phase)} --by NAME --reason WHY{tail}",
    )


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


HEARTBEAT = timedelta(minutes=10)  # a wait longer than this gets a line this often


class ConsoleReporter:
    """Prints the run as it happens (to stdout unless told otherwise).

    ``phases`` are the phases the run was asked for (default: the plan's), so "run
    ends in" counts only those. ``command_args`` follow the printed ``gatekeeper
    approve``/``reject`` commands (``--plan`` and ``--store`` when not the defaults).
    ``heartbeat`` is how often a live run's long wait gets a line (``None``: never).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbose: bool = True,
        phases: Sequence[str] | None = None,
        command_args: Sequence[str] | None = None,
        heartbeat: timedelta | None = HEARTBEAT,
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.progress = Progress(phases)
        self.command_args = None if command_args is None else tuple(command_args)
        self.heartbeat = heartbeat
        self._start: datetime | None = None
        self._lock = threading.Lock()
        # What a live run waits for: (run, what, until when; None for an approval).
        self._waiting: tuple[RunInfoView, str, datetime | None] | None = None
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def _print(self, text: str = "") -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def _elapsed(self, run: RunInfoView, at: datetime) -> str:
        return "+" + (format_duration(at - run.started_at) or "0s")

    def _answer_args(self, run: RunInfoView) -> tuple[str, ...]:
        if self.command_args is not None:
            return self.command_args
        return answer_args(run.plan.path, None)

    # -- the heartbeat: a line every ``heartbeat`` while a long wait goes on -----------

    def _wait_for(
        self, run: RunInfoView, what: str, due: datetime | None, *, open_ended: bool = False
    ) -> None:
        """A wait for ``what`` until ``due`` starts; ``open_ended``: until somebody
        answers (an approval). ``due=None`` and not open-ended: no wait now."""
        waiting = due is not None or open_ended
        self._waiting = (run, what, due) if waiting else None
        if (
            not waiting
            or run.rehearsal
            or self.heartbeat is None
            or (due is not None and due - run.clock.now() <= self.heartbeat)
            or self._beater is not None
        ):
            return
        self._beater = threading.Thread(
            target=self._beat_until_stopped, name="gatekeeper-heartbeat", daemon=True
        )
        self._beater.start()

    def _beat_until_stopped(self) -> None:
        assert self.heartbeat is not None
        while not self._stop.wait(self.heartbeat.total_seconds()):
            try:
                self.beat()
            except (OSError, ValueError):  # a closed stream: no more heartbeats
                return

    def beat(self) -> None:
        """One heartbeat line, if a wait is going on."""
        waiting = self._waiting
        if waiting is None:
            return
        run, what, due = waiting
        now = run.clock.now()
        if due is None:
            self._print(f"  … {_at(now, now)} still waiting for {what}")
            return
        if due <= now:
            return
        self._print(
            f"  … {_at(now, now)} still waiting: {what} in {format_span(due - now)}, "
            f"at {_at(due, now)}"
        )

    def close(self) -> None:
        """Stop the heartbeat (the run finished)."""
        self._waiting = None
        self._stop.set()

    # -- hooks ---------------------------------------------------------------------------

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
        schedule = self.progress.schedule(run.plan)
        if schedule and not run.resumed:
            now = run.clock.now()
            timing = PlanTiming(run.plan)
            first = schedule[0].name
            view = outlook(
                schedule,
                first,
                timing.start(first, now),
                next_checkpoint=None,
                next_at=None,
                timing=timing,
            )
            if view is not None:
                self._print(
                    f"  {len(schedule)} phase{'s' if len(schedule) > 1 else ''}, "
                    f"{format_span(view.run_ends - now)} if nothing holds: "
                    f"ends ~{_at(view.run_ends, now)}"
                )

    @hookimpl
    def gatekeeper_approval_requested(self, run: RunInfoView, phase: Phase) -> None:
        assert phase.approval is not None
        self._print(f"\n… {phase.name}: waiting for the {phase.approval.prompt}")
        if run.rehearsal:
            return
        give, refuse = answer_commands(run.run_id, phase.name, self._answer_args(run))
        self._print(f"    go:    {give}\n    no-go: {refuse}")
        self._wait_for(
            run, f"the {phase.approval.prompt} of {phase.name}: {give}", None, open_ended=True
        )
        timeout = phase.approval.timeout
        if timeout is not None:
            now = run.clock.now()
            self._print(
                f"    unanswered in {format_span(timeout)} (at {_at(now + timeout, now)}), "
                "the phase does not start"
            )

    @hookimpl
    def gatekeeper_approval_answered(
        self, run: RunInfoView, phase: Phase, answer: ApprovalAnswer
    ) -> None:
        self._waiting = None
        by = f" by {answer.by}" if answer.by else ""
        why = f" ({answer.reason})" if answer.reason else ""
        self._print(f"  approval: {answer.state.value}{by}{why}")

    @hookimpl
    def gatekeeper_phase_started(self, run: RunInfoView, phase: Phase, split: Split) -> None:
        checkpoints = compact_checkpoints([(c.name, c.offset) for c in phase.checkpoints])
        now = run.clock.now()
        self._print(
            f"\n▶ phase {phase.name} [{self._elapsed(run, now)}] · canary "
            f"{_share(split.canary)}% / baseline {_share(split.baseline)}% · "
            f"checkpoints {checkpoints}"
        )
        if self.verbose:
            for criterion in phase.gate.criteria:
                self._print(f"    gate: {criterion.text}")
        if phase.watch is not None:
            watched = len(phase.watch.gate.criteria)
            self._print(
                f"    watch: every {format_duration(phase.watch.every)} between checkpoints, "
                f"{watched} criteria (a failure stops the phase at once; it never advances it)"
            )
        self.progress.started[phase.name] = now
        if phase.checkpoints:
            first = phase.checkpoints[0]
            due = now + first.offset
            self._progress(run, phase, now, first.name, due)

    def _progress(
        self, run: RunInfoView, phase: Phase, now: datetime, name: str, due: datetime
    ) -> None:
        line = f"    next: {phase.name} @ {name} in {format_span(due - now)}, at {_at(due, now)}"
        view = self.progress.outlook(run.plan, phase, now, name, due)
        if view is not None:
            line += "\n    " + describe_outlook(view, now)
        self._print(line)
        self._wait_for(run, f"{phase.name} @ {name}", due)

    @hookimpl
    def gatekeeper_phase_waiting(
        self, run: RunInfoView, phase: Phase, until: datetime | None, reason: str
    ) -> None:
        now = run.clock.now()
        when = ""
        if until is not None:
            when = f" · goes on in {format_span(until - now)}, at {_at(until, now)}"
        self._print(f"  ⏸ waiting: {reason}{when}")
        self._wait_for(run, f"{phase.name} ({reason})", until, open_ended=until is None)

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
        self._waiting = None
        attempt = f" (re-check {result.attempt - 1})" if result.attempt > 1 else ""
        if decision.by_watch:  # the watch stopped the phase before this checkpoint
            attempt = " (the watch, before it)"
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
        if next_at is not None and next_checkpoint is not None:
            now = run.clock.now()
            view = self.progress.outlook(run.plan, phase, now, next_checkpoint, next_at)
            if view is not None:
                self._print("    " + describe_outlook(view, now))
            self._wait_for(run, f"{phase.name} @ {next_checkpoint}", next_at)

    @hookimpl
    def gatekeeper_watch_report(self, run: RunInfoView, phase: Phase, report: WatchReport) -> None:
        if report.kind == "failed":
            return  # the decision that follows says it, with every verdict
        mark = {"failing": "!", "no data": "?", "passing": "✓"}.get(report.kind, "·")
        self._print(f"  [{self._elapsed(run, report.at)}] {mark} watch: {report.line}")

    @hookimpl
    def gatekeeper_run_finished(self, run: RunInfoView, result: RunResult) -> None:
        self.close()
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
