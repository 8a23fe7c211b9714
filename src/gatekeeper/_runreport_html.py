"""The run report as one self-contained HTML file: inline CSS, inline SVG, no script
and nothing fetched, so it can be attached to a ticket or opened offline."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from ._charts import Bound, Flag, Mark, Series, TimeAxis, line_chart, step_chart
from ._protocols import Event, RunInfo
from ._runreport import (
    Checkpoint,
    Story,
    VerdictRow,
    clock,
    count,
    evidence_rows,
    number,
    show,
    span,
    story,
    unit_of,
)

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;color:#1f2937;background:#f8fafc}
main{max-width:1000px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.meta{color:#4b5563}.badge{display:inline-block;padding:2px 10px;border-radius:12px;
font-weight:600;font-size:13px;color:#fff;background:#6b7280;vertical-align:middle}
.badge.advanced{background:#16a34a}.badge.rolled-back{background:#dc2626}
.badge.held,.badge.interrupted{background:#d97706}.badge.error{background:#7f1d1d}
.reason{background:#fff;border-left:4px solid #9ca3af;padding:8px 12px;margin:10px 0}
.reason.rolled-back{border-color:#dc2626}.reason.advanced{border-color:#16a34a}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #e5e7eb;
border-radius:6px;margin:6px 0}
.chart-title{font-weight:600;font-size:13px;fill:#111827}
.tick{font-size:11px;fill:#6b7280}.grid{stroke:#eef0f3;stroke-width:1}
.band{fill-opacity:.16;stroke:#fff;stroke-width:2}.band-label{font-size:12px;fill:#374151}
.band.advance{fill:#16a34a}.band.rollback{fill:#dc2626}.band.hold{fill:#d97706}
.band.running{fill:#2563eb}
.traffic{fill:none;stroke:#2563eb;stroke-width:2.5}.traffic-point{fill:#2563eb}
.series{fill:none;stroke-width:2}.series.canary{stroke:#2563eb}
.series.baseline{stroke:#9ca3af;stroke-dasharray:3 3}.series.estimate{stroke:#7c3aed}
.bound{stroke:#dc2626;stroke-width:1.5;stroke-dasharray:6 4}
.interval{stroke:#7c3aed;stroke-width:3;stroke-opacity:.45}
.mark{stroke:#fff;stroke-width:1.5}.mark.pass{fill:#16a34a}.mark.fail{fill:#dc2626}
.mark.inconclusive{fill:#d97706}.mark.prerun{fill:#6b7280}
.flag{stroke-width:2}.flag-rollback{stroke:#dc2626}.flag-hold{stroke:#d97706;
stroke-dasharray:4 3}.flag-advance{stroke:#16a34a;stroke-opacity:.5}
.flag-approval{stroke:#7c3aed;stroke-dasharray:2 3}
.legend span{margin-right:14px;font-size:12px;color:#4b5563}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin:6px 0}
th,td{border:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#15803d}.fail{color:#b91c1c;font-weight:600}.inconclusive{color:#b45309}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
footer{margin-top:30px;color:#9ca3af;font-size:12px}
"""

_COMPARE = re.compile(r"\bbaseline\b")
_FACTOR = re.compile(r"\*\s*(-?[\d.]+)")


def _kind(criterion: str) -> str:
    if " stable within " in criterion:
        return "stable"
    if _COMPARE.search(criterion):
        return "compare"
    return "threshold"


def _css(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _phase_end(s: Story, index: int) -> datetime:
    p = s.phases[index]
    if p.ended_at is not None:
        return p.ended_at
    later = [q.started_at for q in s.phases[index + 1 :]]
    return later[0] if later else s.ended_at


def _flags(s: Story) -> list[Flag]:
    flags = [
        Flag(cp.at, cp.action, f"{cp.phase} @ {cp.name}: {cp.action} — {cp.reason}")
        for cp in s.checkpoints
        if cp.action in ("hold", "rollback")
    ]
    flags += [
        Flag(a.answered_at or a.asked_at, "approval", f"{a.phase}: approval {a.state} by {a.by}")
        for a in s.approvals
    ]
    return flags


def _verdicts(s: Story, kind: str) -> dict[str, list[tuple[Checkpoint, VerdictRow]]]:
    """Verdicts of one criterion kind, by metric (threshold) or criterion (others)."""
    found: dict[str, list[tuple[Checkpoint, VerdictRow]]] = {}
    for cp in s.checkpoints:
        for v in cp.verdicts:
            if _kind(v.criterion) == kind:
                key = v.metric if kind == "threshold" else v.criterion
                found.setdefault(key, []).append((cp, v))
    return found


def _bounds(s: Story, rows: Sequence[tuple[Checkpoint, VerdictRow]]) -> list[Bound]:
    """Each criterion's bound over each phase it was judged in."""
    bounds = []
    seen = set()
    for cp, v in rows:
        if v.bound is None or (cp.phase, v.criterion) in seen:
            continue
        seen.add((cp.phase, v.criterion))
        index = max(
            i for i, p in enumerate(s.phases) if p.name == cp.phase and p.started_at <= cp.at
        )
        bounds.append(Bound(s.phases[index].started_at, _phase_end(s, index), v.bound, v.criterion))
    return bounds


def _shown_in(unit: str) -> Callable[[float], str]:
    def shown(value: float) -> str:
        return show(value, unit)

    return shown


def _metric_charts(s: Story, axis: TimeAxis, label: Callable[[datetime], str]) -> list[str]:
    charts = []
    flags = [f for f in _flags(s) if f.kind != "approval"]
    for metric, rows in _verdicts(s, "threshold").items():
        unit = next((unit_of(v.criterion) for _, v in rows if unit_of(v.criterion)), "")
        series = []
        for variant in ("canary", "baseline"):
            points = tuple(
                (p.at, p.value)
                for p in s.points
                if p.metric == metric
                and p.variant == variant
                and p.value is not None
                and not p.prerun
            )
            if points:
                series.append(Series(variant, variant, points))
        marks = [
            Mark(cp.at, v.observed, v.outcome, f"{cp.phase} @ {cp.name}: {v.outcome} — {v.reason}")
            for cp, v in rows
        ]
        marks += [
            Mark(p.at, p.value, "prerun", f"measured before the run: {show(p.value, unit)}")
            for p in s.points
            if p.prerun and p.metric == metric and p.value is not None
        ]
        charts.append(
            line_chart(
                title=f"{metric} against its bounds",
                axis=axis,
                show=_shown_in(unit),
                label=label,
                series=series,
                bounds=_bounds(s, rows),
                marks=marks,
                flags=flags,
            )
        )
    for criterion, rows in _verdicts(s, "compare").items():
        marks = []
        for cp, v in rows:
            estimate = number(v.evidence.get("estimate")) if v.evidence else v.observed
            if estimate is None:
                continue
            marks.append(
                Mark(
                    cp.at,
                    estimate,
                    v.outcome,
                    f"{cp.phase} @ {cp.name}: {v.outcome} — {v.reason}",
                    low=number(v.evidence.get("ci_low")),
                    high=number(v.evidence.get("ci_high")),
                )
            )
        factor = _FACTOR.search(criterion)
        bounds = []
        if factor and rows:
            first, last = rows[0][0], rows[-1][0]
            bounds.append(Bound(first.at, last.at, float(factor.group(1)), criterion))
        line = Series(
            "estimate", "estimate", tuple((m.at, m.value) for m in marks if m.value is not None)
        )
        charts.append(
            line_chart(
                title=f"{criterion} (canary/baseline, with its confidence sequence)",
                axis=axis,
                show=lambda value: f"×{value:.3g}",
                label=label,
                series=[line],
                bounds=bounds,
                marks=marks,
                flags=flags,
            )
        )
    for criterion, rows in _verdicts(s, "stable").items():
        unit = unit_of(criterion)
        marks = [
            Mark(cp.at, v.observed, v.outcome, f"{cp.phase} @ {cp.name}: {v.outcome} — {v.reason}")
            for cp, v in rows
            if v.observed is not None
        ]
        charts.append(
            line_chart(
                title=f"{criterion} (drift)",
                axis=axis,
                show=_shown_in(unit),
                label=label,
                series=[
                    Series(
                        "drift",
                        "canary",
                        tuple((m.at, m.value) for m in marks if m.value is not None),
                    )
                ],
                bounds=_bounds(s, rows),
                marks=marks,
                flags=flags,
            )
        )
    return charts


def _cls(outcome: str) -> str:
    return escape(_css(outcome))


def _observed_and_bound(v: VerdictRow) -> tuple[str, str]:
    """As the criterion reads: ``0.9%`` against ``0.5%``; ratios as ``×4.42``."""
    if _kind(v.criterion) == "compare":
        factor = _FACTOR.search(v.criterion)
        ratio = "—" if v.observed is None else f"×{v.observed:.3g}"
        return ratio, f"×{factor.group(1)}" if factor else "—"
    unit = unit_of(v.criterion)
    return show(v.observed, unit), show(v.bound, unit)


def _checkpoint_tables(s: Story) -> list[str]:
    parts = []
    for phase in dict.fromkeys(cp.phase for cp in s.checkpoints):
        rows = [cp for cp in s.checkpoints if cp.phase == phase]
        trouble = any(cp.action in ("hold", "rollback") or cp.outcome == "fail" for cp in rows)
        parts.append(
            f"<details{' open' if trouble else ''}><summary>{escape(phase)} — "
            f"{len(rows)} judgement{'s' if len(rows) != 1 else ''}</summary>"
        )
        parts.append(
            "<table><tr><th>checkpoint</th><th>at</th><th>criterion</th><th>outcome</th>"
            "<th>observed</th><th>bound</th><th>reason</th></tr>"
        )
        for cp in rows:
            again = f" (attempt {cp.attempt})" if cp.attempt > 1 else ""
            parts.append(
                f'<tr><td rowspan="{len(cp.verdicts) + 1}"><b>{escape(cp.name)}</b>{again}<br>'
                f'<span class="{_cls(cp.action)}">{escape(cp.action.upper())}</span></td>'
                f'<td rowspan="{len(cp.verdicts) + 1}">{escape(clock(cp.at))}</td>'
                f'<td colspan="5"><i>{escape(cp.reason)}</i></td></tr>'
            )
            for v in cp.verdicts:
                observed, bound = _observed_and_bound(v)
                parts.append(
                    f"<tr><td><code>{escape(v.criterion)}</code></td>"
                    f'<td class="{_cls(v.outcome)}">{escape(v.outcome.upper())}</td>'
                    f'<td class="num">{escape(observed)}</td>'
                    f'<td class="num">{escape(bound)}</td>'
                    f"<td>{escape(v.reason)}</td></tr>"
                )
        parts.append("</table></details>")
    return parts


def _delivery(e: Event) -> str:
    if e.data.get("delivered"):
        return '<span class="pass">delivered</span>'
    return f'<span class="fail">failed</span>: {escape(str(e.data.get("why", "")))}'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(info: RunInfo, events: Sequence[Event]) -> str:
    """The run as a self-contained HTML page (see ``docs/reports.md``)."""
    from . import __version__  # noqa: PLC0415 - the package imports this module lazily

    s = story(info, events)
    axis = TimeAxis.over([s.started_at, s.ended_at, *(p.started_at for p in s.phases)])

    def label(at: datetime) -> str:
        return span(at - s.started_at)

    bands = [
        (p.started_at, _phase_end(s, i), p.name, p.action or "running")
        for i, p in enumerate(s.phases)
    ]
    timeline = step_chart(
        title="Phases and the canary's share of traffic",
        axis=axis,
        label=label,
        bands=bands,
        steps=s.traffic,
        end=s.ended_at,
        flags=_flags(s),
    )
    outcome = _css(s.outcome)
    title = f"{s.info.plan}: {s.outcome}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)} — gatekeeper run {escape(s.info.run_id)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<h1>{escape(s.info.plan)} <span class="badge {outcome}">{escape(s.outcome)}</span></h1>',
        f'<div class="meta">run <code>{escape(s.info.run_id)}</code>'
        f"{' · rehearsal' if s.rehearsal else ''} · started {escape(clock(s.started_at))}"
        f" · {escape(span(s.duration))}</div>",
    ]
    if s.reason:
        parts.append(f'<div class="reason {outcome}">{escape(s.reason)}</div>')
    parts += [
        "<h2>Timeline</h2>",
        timeline,
        '<div class="legend"><span><i style="background:#2563eb"></i>canary share</span>'
        '<span><i style="background:#dc2626"></i>rollback / bound</span>'
        '<span><i style="background:#d97706"></i>hold / inconclusive</span>'
        '<span><i style="background:#16a34a"></i>pass / advanced</span>'
        '<span><i style="background:#7c3aed"></i>approval / estimate</span></div>',
        "<p class='meta'>Each phase gets an equal width; time is linear inside a phase.</p>",
        "<h2>Metrics against their bounds</h2>",
        *_metric_charts(s, axis, label),
        "<h2>Checkpoints and verdicts</h2>",
        *_checkpoint_tables(s),
    ]
    if s.approvals:
        parts += [
            "<h2>Approvals</h2>",
            _table(
                ["phase", "asked", "prompt", "answer", "by", "when", "reason"],
                [
                    [
                        escape(a.phase),
                        escape(clock(a.asked_at)),
                        escape(a.prompt),
                        f'<span class="{_cls(a.state)}">{escape(a.state)}</span>',
                        escape(a.by),
                        escape(clock(a.answered_at)) if a.answered_at else "—",
                        escape(a.reason),
                    ]
                    for a in s.approvals
                ],
            ),
        ]
    rows = evidence_rows(s)
    if rows:
        parts += [
            "<h2>Statistical evidence</h2>",
            _table(
                [
                    "checkpoint",
                    "criterion",
                    "estimate",
                    "interval",
                    "e-value",
                    "e (pass)",
                    "α",
                    "n canary",
                    "n baseline",
                    "outcome",
                ],
                [
                    [
                        escape(f"{cp.phase} @ {cp.name}"),
                        f"<code>{escape(v.criterion)}</code>",
                        escape(show(number(v.evidence.get("estimate")))),
                        escape(
                            f"{show(number(v.evidence.get('ci_low')))}–"
                            f"{show(number(v.evidence.get('ci_high')))}"
                        ),
                        escape(show(number(v.evidence.get("e_value")))),
                        escape(show(number(v.evidence.get("e_value_pass")))),
                        escape(show(number(v.evidence.get("alpha")))),
                        escape(count(number(v.evidence.get("n_canary")))),
                        escape(count(number(v.evidence.get("n_baseline")))),
                        f'<span class="{_cls(v.outcome)}">{escape(v.outcome)}</span>',
                    ]
                    for cp, v in rows
                ],
            ),
        ]
    parts += [
        "<h2>Traffic changes</h2>",
        _table(
            ["at", "canary", "why"],
            [
                [escape(clock(at)), escape(f"{share:g}%"), escape(why)]
                for at, share, why in s.traffic
            ],
        ),
    ]
    if s.notifications:
        parts += [
            "<h2>Notifications</h2>",
            _table(
                ["at", "notifier", "event", "attempt", "result"],
                [
                    [
                        escape(clock(e.at)),
                        escape(str(e.data.get("notifier", ""))),
                        escape(str(e.data.get("event", ""))),
                        escape(str(e.data.get("attempt", ""))),
                        _delivery(e),
                    ]
                    for e in s.notifications
                ],
            ),
        ]
    if s.other:
        parts += [
            "<h2>Other events</h2>",
            _table(
                ["at", "event", "phase", "detail"],
                [
                    [
                        escape(clock(e.at)),
                        f"<code>{escape(e.kind)}</code>",
                        escape(e.phase or ""),
                        escape(", ".join(f"{k}={v}" for k, v in e.data.items())),
                    ]
                    for e in s.other
                ],
            ),
        ]
    parts.append(
        f"<footer>gatekeeper {escape(__version__)} · from the run's journal"
        f" ({len(events)} events) · {escape(s.info.plan_digest[:12])}</footer>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
