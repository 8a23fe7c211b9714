"""A report of one run, read from its journal: ``gatekeeper report RUN``.

:func:`story` folds the journal's events into what a person wants to see (phases
and traffic over time, every checkpoint's verdicts and decision, approvals, the
statistical evidence); :func:`render_markdown` writes it as Markdown (for a pull
request or ``$GITHUB_STEP_SUMMARY``), :func:`~gatekeeper._runreport_html.render_html`
as one self-contained HTML file with charts. Only the journal is read: a report of
a run needs neither the plan file nor any server.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from ._protocols import Event, RunInfo

__all__ = [
    "Approval",
    "Checkpoint",
    "Story",
    "count",
    "github_step_summary",
    "render_markdown",
    "story",
    "write_reports",
]

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

# Journal kinds the report shows in their own sections; the rest are listed as
# "other events" so nothing the journal holds is hidden.
_SHOWN = frozenset(
    {
        "run_started",
        "run_ended",
        "phase_started",
        "phase_ended",
        "traffic_intent",
        "traffic_confirmed",
        "traffic_read",
        "measurement",
        "verdict",
        "decision",
        "judge_state",
        "step_started",
        "approval_requested",
        "approval_given",
        "approval_rejected",
        "prerun",
        "notification",
    }
)


def number(value: Any) -> float | None:
    """A journaled number (``"NaN"``, ``"+Inf"``, ``"-Inf"`` spelled as strings)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}.get(value)
    if isinstance(value, int | float):
        return float(value)
    return None


@attrs.frozen(kw_only=True)
class VerdictRow:
    criterion: str
    outcome: str
    reason: str
    observed: float | None
    bound: float | None
    evidence: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def metric(self) -> str:
        return self.criterion.split()[0] if self.criterion.split() else ""


@attrs.frozen(kw_only=True)
class Checkpoint:
    """One judged checkpoint (an attempt, for re-checks) and its decision."""

    phase: str
    name: str
    attempt: int
    at: datetime
    action: str
    reason: str
    outcome: str
    recheck_at: str | None
    verdicts: tuple[VerdictRow, ...]


@attrs.frozen(kw_only=True)
class PhaseSpan:
    name: str
    started_at: datetime
    ended_at: datetime | None
    traffic: float | None
    action: str | None
    reason: str


@attrs.frozen(kw_only=True)
class Approval:
    phase: str
    asked_at: datetime
    prompt: str
    answered_at: datetime | None = None
    state: str = "pending"  # given, rejected, pending
    by: str = ""
    reason: str = ""


@attrs.frozen(kw_only=True)
class Point:
    """One measurement: a metric's value for a variant at a moment."""

    at: datetime
    phase: str | None
    metric: str
    variant: str
    value: float | None
    reason: str | None
    prerun: bool = False  # measured before the run, the reference of "prerun * k"


@attrs.frozen(kw_only=True)
class Story:
    """A run's journal, folded for a report."""

    info: RunInfo
    started_at: datetime
    ended_at: datetime
    planned: tuple[str, ...]
    rehearsal: bool
    outcome: str
    reason: str
    phases: tuple[PhaseSpan, ...]
    traffic: tuple[tuple[datetime, float, str], ...]  # (at, canary %, why)
    checkpoints: tuple[Checkpoint, ...]
    approvals: tuple[Approval, ...]
    points: tuple[Point, ...]
    notifications: tuple[Event, ...]  # one per delivery attempt
    other: tuple[Event, ...]

    @property
    def duration(self) -> timedelta:
        return self.ended_at - self.started_at


def story(info: RunInfo, events: Sequence[Event]) -> Story:  # noqa: PLR0915 - one fold
    """Fold a run's journal into a :class:`Story`."""
    started = events[0].at if events else info.started_at
    planned: tuple[str, ...] = ()
    rehearsal = False
    outcome, reason = info.status, ""
    phases: list[PhaseSpan] = []
    traffic: list[tuple[datetime, float, str]] = []
    checkpoints: list[Checkpoint] = []
    approvals: list[Approval] = []
    points: list[Point] = []
    notifications: list[Event] = []
    other: list[Event] = []
    pending: dict[tuple[str, str, int], list[VerdictRow]] = {}
    why = ""
    for event in events:
        data = event.data
        kind = event.kind
        if kind == "run_started":
            planned = tuple(str(p) for p in data.get("phases", ()))
            rehearsal = bool(data.get("rehearsal", False))
        elif kind == "run_ended":
            outcome = str(data.get("outcome", outcome))
            reason = str(data.get("reason", ""))
        elif kind == "phase_started" and event.phase:
            phases.append(
                PhaseSpan(
                    name=event.phase,
                    started_at=event.at,
                    ended_at=None,
                    traffic=number(data.get("traffic")),
                    action=None,
                    reason="",
                )
            )
        elif kind == "phase_ended" and event.phase:
            for index in range(len(phases) - 1, -1, -1):
                if phases[index].name == event.phase and phases[index].ended_at is None:
                    phases[index] = attrs.evolve(
                        phases[index],
                        ended_at=event.at,
                        action=str(data.get("action", "")),
                        reason=str(data.get("reason", "")),
                    )
                    break
        elif kind == "traffic_intent":
            why = str(data.get("why", ""))
        elif kind in ("traffic_confirmed", "traffic_read"):
            share = number(data.get("canary"))
            if share is not None:
                label = why if kind == "traffic_confirmed" else "read from the balancer"
                traffic.append((event.at, share, label))
            why = ""
        elif kind in ("measurement", "prerun"):
            points.append(
                Point(
                    at=event.at,
                    phase=event.phase,
                    metric=str(data.get("metric", "")),
                    variant=str(data.get("variant", "canary")),
                    value=number(data.get("value")),
                    reason=data.get("reason"),
                    prerun=kind == "prerun",
                )
            )
        elif kind == "verdict" and event.phase and event.checkpoint:
            key = (event.phase, event.checkpoint, int(data.get("attempt", 1)))
            pending.setdefault(key, []).append(
                VerdictRow(
                    criterion=str(data.get("criterion", "")),
                    outcome=str(data.get("outcome", "")),
                    reason=str(data.get("reason", "")),
                    observed=number(data.get("observed")),
                    bound=number(data.get("bound")),
                    evidence=dict(data.get("evidence") or {}),
                )
            )
        elif kind == "decision" and event.phase and event.checkpoint:
            attempt = int(data.get("attempt", 1))
            checkpoints.append(
                Checkpoint(
                    phase=event.phase,
                    name=event.checkpoint,
                    attempt=attempt,
                    at=event.at,
                    action=str(data.get("action", "")),
                    reason=str(data.get("reason", "")),
                    outcome=str(data.get("outcome", "")),
                    recheck_at=data.get("recheck_at"),
                    verdicts=tuple(pending.pop((event.phase, event.checkpoint, attempt), [])),
                )
            )
        elif kind == "approval_requested" and event.phase:
            approvals.append(
                Approval(phase=event.phase, asked_at=event.at, prompt=str(data.get("prompt", "")))
            )
        elif kind in ("approval_given", "approval_rejected") and event.phase:
            asked = next((a for a in reversed(approvals) if a.phase == event.phase), None)
            answered = Approval(
                phase=event.phase,
                asked_at=asked.asked_at if asked else event.at,
                prompt=asked.prompt if asked else "",
                answered_at=event.at,
                state="given" if kind == "approval_given" else "rejected",
                by=str(data.get("by", "")),
                reason=str(data.get("reason", "")),
            )
            if asked is not None:
                approvals[approvals.index(asked)] = answered
            else:
                approvals.append(answered)
        elif kind == "notification":
            notifications.append(event)
        elif kind not in _SHOWN:
            other.append(event)
    ended = events[-1].at if events else started
    return Story(
        info=info,
        started_at=started,
        ended_at=ended,
        planned=planned,
        rehearsal=rehearsal,
        outcome=outcome,
        reason=reason,
        phases=tuple(phases),
        traffic=tuple(traffic),
        checkpoints=tuple(checkpoints),
        approvals=tuple(approvals),
        points=tuple(points),
        notifications=tuple(notifications),
        other=tuple(other),
    )


# -- showing values ---------------------------------------------------------------

_BOUND = re.compile(r"(?:<=|>=|==|!=|<|>|within)\s*-?[\d.]+\s*(%|ms|s)?(?:\s|$)")


def unit_of(criterion: str) -> str:
    """How a criterion wrote its bound: ``"%"``, ``"ms"``, ``"s"`` or ``""``."""
    match = _BOUND.search(criterion)
    return (match.group(1) or "") if match else ""


def show(value: float | None, unit: str = "") -> str:
    """A value in the unit its criterion used: ``0.009`` with ``%`` is ``0.9%``."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    scaled = value * {"%": 100.0, "ms": 1000.0}.get(unit, 1.0)
    return f"{scaled:.4g}{unit}"


def count(value: float | None) -> str:
    """A sample size: ``360,000``."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}"


def span(delta: timedelta) -> str:
    """``1d17h``, ``2h30m``, ``15m``, ``0s``."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    parts.append(f"{minutes}m" if minutes and days < 2 else "")
    parts.append(f"{secs}s" if secs and not days and not hours else "")
    return "".join(parts) or "0s"


def clock(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def evidence_rows(s: Story) -> list[tuple[Checkpoint, VerdictRow]]:
    """Every statistical verdict (one with evidence), in order."""
    return [(cp, v) for cp in s.checkpoints for v in cp.verdicts if v.evidence]


# -- Markdown ---------------------------------------------------------------------

_MARK = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
_ACTION = {"advance": "✅", "rollback": "⏪", "hold": "⏸️", "continue": "▶️"}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: object) -> str:
    """Markdown table cell text: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(info: RunInfo, events: Sequence[Event]) -> str:
    """The run as Markdown: summary, phases, approvals, every checkpoint with its
    verdicts, and the statistical evidence."""
    s = story(info, events)
    lines = [
        f"## gatekeeper: {s.info.plan} — {s.outcome}",
        "",
        f"Run `{s.info.run_id}`{' (rehearsal)' if s.rehearsal else ''}, started "
        f"{clock(s.started_at)}, {span(s.duration)} long.",
    ]
    if s.reason:
        lines.extend(["", f"**{s.outcome}**: {s.reason}"])
    lines.extend(["", "### Phases", "", "| phase | started | lasted | canary | ended |"])
    lines.append("| --- | --- | --- | --- | --- |")
    for p in s.phases:
        lasted = span(p.ended_at - p.started_at) if p.ended_at else "running"
        share = show(p.traffic) + "%" if p.traffic is not None else "—"
        ended = f"{_ACTION.get(p.action or '', '')} {p.action} — {p.reason}" if p.action else ""
        lines.append(
            f"| {_cell(p.name)} | {clock(p.started_at)} | {lasted} | {share} | {_cell(ended)} |"
        )
    not_started = [name for name in s.planned if name not in {p.name for p in s.phases}]
    if not_started:
        lines.extend(["", f"Not started: {', '.join(not_started)}."])
    if s.approvals:
        lines.extend(["", "### Approvals", "", "| phase | asked | answer | by | when | reason |"])
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for a in s.approvals:
            when = clock(a.answered_at) if a.answered_at else "—"
            lines.append(
                f"| {_cell(a.phase)} | {clock(a.asked_at)} | {a.state} | {_cell(a.by)} | "
                f"{when} | {_cell(a.reason)} |"
            )
    lines.extend(["", "### Checkpoints"])
    for phase in dict.fromkeys(cp.phase for cp in s.checkpoints):
        judged = [cp for cp in s.checkpoints if cp.phase == phase]
        # A phase that went well folds away (GitHub renders <details> in Markdown).
        trouble = any(cp.action in ("hold", "rollback") or cp.outcome == "fail" for cp in judged)
        lines.extend(
            [
                "",
                f"<details{' open' if trouble else ''}><summary>{_html(phase)}: "
                f"{len(judged)} judgement{'s' if len(judged) != 1 else ''}</summary>",
            ]
        )
        for cp in judged:
            again = f" (attempt {cp.attempt})" if cp.attempt > 1 else ""
            lines.extend(
                [
                    "",
                    f"**{_cell(cp.phase)} @ {cp.name}**{again} — {clock(cp.at)} — "
                    f"{_ACTION.get(cp.action, '')} {cp.action.upper()}: {_cell(cp.reason)}",
                    "",
                ]
            )
            lines.extend(
                f"- {_MARK.get(v.outcome, '')} {v.outcome.upper()} `{v.criterion}`: {v.reason}"
                for v in cp.verdicts
            )
        lines.extend(["", "</details>"])
    rows = evidence_rows(s)
    if rows:
        lines.extend(["", "### Statistical evidence", ""])
        lines.append(
            "| checkpoint | criterion | estimate | interval | e-value "
            "| n canary / baseline | outcome |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for cp, v in rows:
            e = v.evidence
            interval = f"{show(number(e.get('ci_low')))}–{show(number(e.get('ci_high')))}"
            lines.append(
                f"| {_cell(cp.phase)} @ {cp.name} | `{_cell(v.criterion)}` | "
                f"{show(number(e.get('estimate')))} | {interval} | "
                f"{show(number(e.get('e_value')))} | "
                f"{count(number(e.get('n_canary')))} / {count(number(e.get('n_baseline')))} | "
                f"{v.outcome} |"
            )
    if s.notifications:
        lines.extend(["", "### Notifications", ""])
        lines.extend(
            f"- {clock(e.at)} {_cell(e.data.get('notifier', ''))} ← "
            f"{_cell(e.data.get('event', ''))} (attempt {e.data.get('attempt', '')}): "
            + (
                "delivered"
                if e.data.get("delivered")
                else f"failed: {_cell(e.data.get('why', ''))}"
            )
            for e in s.notifications
        )
    if s.other:
        lines.extend(["", "### Other events", ""])
        lines.extend(
            f"- {clock(e.at)} `{e.kind}` {_cell(e.phase or '')} "
            + _cell(", ".join(f"{k}={v}" for k, v in e.data.items()))
            for e in s.other
        )
    return "\n".join(lines) + "\n"


def github_step_summary(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append ``markdown`` to the file named by ``$GITHUB_STEP_SUMMARY`` (GitHub
    Actions shows it on the job's page); the path written, or None when unset."""
    env = os.environ if env is None else env
    target = env.get(SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as summary:
        summary.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


def write_reports(
    info: RunInfo,
    events: Sequence[Event],
    *,
    html: Path | None = None,
    markdown: Path | None = None,
) -> list[Path]:
    """``gatekeeper report RUN --html out.html --markdown out.md``: write the files
    asked for (each written whole to a temporary file, then renamed into place)."""
    written = []
    if html is not None:
        from ._runreport_html import render_html  # noqa: PLC0415 - only when asked for

        written.append(_write(html, render_html(info, events)))
    if markdown is not None:
        written.append(_write(markdown, render_markdown(info, events)))
    return written


def _write(path: Path, text: str) -> Path:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path
