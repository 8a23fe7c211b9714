"""The run report, from the journals of rehearsals of the reference plan: what the
Markdown and the HTML say, that the HTML is self-contained, and the step summary."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import Event, MemoryStore, RunInfo
from gatekeeper._runreport import (
    github_step_summary,
    render_markdown,
    story,
    write_reports,
)
from gatekeeper._runreport_html import render_html
from gatekeeper.notify import NotificationEvent, attempt_data
from gatekeeper.store import open_store

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


def rehearse(recording: str) -> tuple[RunInfo, list[Event]]:
    """A rehearsal of the reference plan, read back from its journal."""
    store = MemoryStore()
    gatekeeper.rehearse(
        gatekeeper.load_plan(EXAMPLE / "gates.toml"), EXAMPLE / recording, store=store
    )
    (info,) = store.runs()
    return info, list(store.events(info.run_id))


@pytest.fixture(scope="module")
def bad() -> tuple[RunInfo, list[Event]]:
    return rehearse("bad-canary.csv")


@pytest.fixture(scope="module")
def healthy() -> tuple[RunInfo, list[Event]]:
    return rehearse("healthy.csv")


def test_story_of_a_rolled_back_run(bad: tuple[RunInfo, list[Event]]) -> None:
    """Phases with their end, traffic steps, checkpoints, approvals and evidence."""
    s = story(*bad)
    assert ("rolled back", True) == (s.outcome, s.rehearsal)
    assert [("canary", "advance", 1.0), ("ramp", "rollback", 10.0)] == [
        (p.name, p.action, p.traffic) for p in s.phases
    ]
    assert [0.0, 1.0, 10.0, 0.0] == [share for _, share, _ in s.traffic]
    assert s.traffic[-1][2].startswith("rollback: watch at 3m into ramp, before its 15m")
    assert [
        ("canary", "15m"),
        ("canary", "30m"),
        ("canary", "1h"),
        ("ramp", "15m"),  # the watch's failing look, kept under the checkpoint it preceded
    ] == [(cp.phase, cp.name) for cp in s.checkpoints]
    last = s.checkpoints[-1]
    assert ("rollback", ["fail", "pass", "pass", "pass", "fail"]) == (
        last.action,
        [v.outcome for v in last.verdicts],
    )
    assert [("ramp", "given", "rehearsal", "go/no-go")] == [
        (a.phase, a.state, a.by, a.prompt) for a in s.approvals
    ]
    assert timedelta(hours=14, minutes=3) == s.duration  # the ramp starts at 14:00


def test_markdown_tells_the_rollback(bad: tuple[RunInfo, list[Event]]) -> None:
    """Outcome, phases, approvals, every verdict with its reason, the evidence."""
    text = render_markdown(*bad)
    assert text.startswith("## gatekeeper: progressive-rollout — rolled back\n")
    assert "| ramp | 2026-01-01 14:00:00 UTC | 3m | 10% | ⏪ rollback — watch at 3m into" in text
    assert "Not started: rollout, baseline-confirmation." in text
    assert "| ramp | 2026-01-01 13:00:00 UTC | given | rehearsal |" in text
    assert "- ❌ FAIL `error_rate < 0.5% for 1m`: 0.9% is not < 0.5%" in text
    assert "**ramp @ 15m** — 2026-01-01 14:03:00 UTC — ⏪ ROLLBACK: watch at 3m into ramp" in text
    assert re.search(r"\| ramp @ 15m \| `error_rate canary <= baseline \* 1.2` \| 4\.4\d* \|", text)
    assert "36,000 / 324,000" in text
    assert (6, 2, 0) == (
        text.count("- ✅ PASS"),
        text.count("- ❌ FAIL"),
        text.count("- ⚠️ INCONCLUSIVE"),
    )


def test_markdown_lists_every_verdict(healthy: tuple[RunInfo, list[Event]]) -> None:
    """A verdict line per journaled verdict: nothing summarised away."""
    info, events = healthy
    verdicts = sum(1 for e in events if e.kind == "verdict")
    text = render_markdown(info, events)
    assert verdicts == len(re.findall(r"^- (✅ PASS|❌ FAIL|⚠️ INCONCLUSIVE) ", text, re.M))


def test_html_is_self_contained(healthy: tuple[RunInfo, list[Event]]) -> None:
    """No script, no stylesheet or image fetched, nothing that needs a network."""
    page = render_html(*healthy)
    assert page.startswith("<!DOCTYPE html>")
    for needle in ("<script", "src=", "href=", "url(", "@import", "<link"):
        assert needle not in page
    assert "<style>" in page


def test_html_has_a_chart_per_metric_and_criterion(healthy: tuple[RunInfo, list[Event]]) -> None:
    """The timeline, one chart per metric with its bounds, one per statistical and
    per stability criterion."""
    page = render_html(*healthy)
    titles = re.findall(r'<text class="chart-title"[^>]*>([^<]*)</text>', page)
    assert [
        "Phases and the canary&#x27;s share of traffic",
        "error_rate against its bounds",
        "latency_p99 against its bounds",
        "availability against its bounds",
        "critical_incidents against its bounds",
        "revenue_per_user against its bounds",
        "error_rate canary &lt;= baseline * 1.2 (canary/baseline, with its confidence sequence)",
        "error_rate stable within 50% (drift)",
        "latency_p99 stable within 10% (drift)",
        "availability stable within 0.01% (drift)",
        "revenue_per_user stable within 5% (drift)",
    ] == titles
    assert 11 == page.count("<svg")
    assert 4 == page.count('class="band advance"')


def test_html_marks_the_rollback(bad: tuple[RunInfo, list[Event]]) -> None:
    """The failed verdicts are red marks, the rollback a red flag, the bound drawn."""
    page = render_html(*bad)
    assert 'class="badge rolled-back"' in page
    assert 'class="mark fail"' in page
    assert 'class="flag flag-rollback"' in page
    assert 'class="bound"' in page
    assert "<td><code>error_rate &lt; 0.5% for 1m</code></td>" in page
    assert '<td class="num">0.9%</td><td class="num">0.5%</td>' in page.replace("\n", "")
    assert '<td class="num">×4.41</td><td class="num">×1.2</td>' in page.replace("\n", "")


def test_held_run_shows_missing_data(tmp_path: Path) -> None:
    """No data: the inconclusive checkpoints are marked on the time axis, the holds flagged."""
    page = render_html(*rehearse("no-data.csv"))
    assert 'class="mark missing inconclusive"' in page
    assert 2 <= page.count('class="flag flag-hold"')


def test_text_from_the_journal_is_escaped() -> None:
    """A reason holding markup is shown, never interpreted."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    info = RunInfo(run_id="r<1>", plan="p&q", plan_digest="d", started_at=at)
    events = [
        Event(kind="run_started", at=at, data={"phases": ["x"]}, seq=1),
        Event(kind="phase_started", at=at, phase="<b>x</b>", data={"traffic": 5}, seq=2),
        Event(
            kind="run_ended",
            at=at + timedelta(minutes=5),
            data={"outcome": "held", "reason": "<script>alert(1)</script>"},
            seq=3,
        ),
    ]
    page = render_html(info, events)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
    assert "r&lt;1&gt;" in page


def test_non_finite_values_render() -> None:
    """NaN and infinities from the journal are shown as such and left out of lines."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    info = RunInfo(run_id="r", plan="p", plan_digest="d", started_at=at)
    later = at + timedelta(minutes=15)
    events = [
        Event(kind="phase_started", at=at, phase="canary", data={"traffic": 1}, seq=1),
        Event(
            kind="measurement",
            at=later,
            phase="canary",
            checkpoint="15m",
            data={"metric": "error_rate", "variant": "canary", "value": "NaN", "attempt": 1},
            seq=2,
        ),
        Event(
            kind="verdict",
            at=later,
            phase="canary",
            checkpoint="15m",
            data={
                "criterion": "error_rate < 1%",
                "outcome": "inconclusive",
                "reason": "value is NaN",
                "observed": "NaN",
                "bound": 0.01,
                "attempt": 1,
            },
            seq=3,
        ),
        Event(
            kind="decision",
            at=later,
            phase="canary",
            checkpoint="15m",
            data={"action": "hold", "reason": "no data", "outcome": "inconclusive", "attempt": 1},
            seq=4,
        ),
    ]
    page = render_html(info, events)
    assert '<td class="num">NaN</td>' in page.replace("\n", "")
    assert "- ⚠️ INCONCLUSIVE `error_rate < 1%`: value is NaN" in render_markdown(info, events)


def test_an_empty_journal_still_reports() -> None:
    """A run that journaled nothing but its start renders (an abandoned run, say)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    info = RunInfo(run_id="r", plan="p", plan_digest="d", started_at=at, status="running")
    events = [Event(kind="run_started", at=at, data={"phases": ["canary"]}, seq=1)]
    assert "Not started: canary." in render_markdown(info, events)
    assert "<svg" in render_html(info, events)
    assert "<svg" in render_html(info, [])


def test_report_from_a_sqlite_journal(tmp_path: Path) -> None:
    """The report reads what a durable store gives back, not the engine's objects."""
    store = open_store(tmp_path / "journal.sqlite3")
    try:
        plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
        gatekeeper.rehearse(plan, EXAMPLE / "bad-canary.csv", store=store)
        (info,) = store.runs()
        events = store.events(info.run_id)
        written = write_reports(
            info, events, html=tmp_path / "run.html", markdown=tmp_path / "run.md"
        )
    finally:
        store.close()
    assert [tmp_path / "run.html", tmp_path / "run.md"] == written
    assert "⏪ ROLLBACK" in (tmp_path / "run.md").read_text()
    assert 'class="badge rolled-back"' in (tmp_path / "run.html").read_text()
    assert not list(tmp_path.glob("*.partial"))


def test_github_step_summary_appends(tmp_path: Path) -> None:
    """With GITHUB_STEP_SUMMARY set, each summary is appended; unset, nothing happens."""
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(target)}
    assert target == github_step_summary("## first", env)
    assert target == github_step_summary("## second\n", env)
    assert "earlier step\n## first\n## second\n" == target.read_text()
    assert None is github_step_summary("## ignored", {})


def test_notification_attempts_have_their_own_section(bad: tuple[RunInfo, list[Event]]) -> None:
    """Journaled delivery attempts (``attempt_data``) are listed: delivered or why not."""
    info, events = bad
    end = events[-1].at
    sent = NotificationEvent(kind="rollback", run_id=info.run_id, plan="p", at=end, what="x")
    attempts = [
        Event(
            kind="notification",
            at=end,
            data=attempt_data("oncall", sent, False, "HTTP 500 Internal Server Error", 1),
            seq=900,
        ),
        Event(
            kind="notification",
            at=end,
            data=attempt_data("oncall", sent, True, "delivered", 2),
            seq=901,
        ),
    ]
    text = render_markdown(info, [*events, *attempts])
    assert "oncall ← rollback (attempt 1): failed: HTTP 500 Internal Server Error" in text
    assert "oncall ← rollback (attempt 2): delivered" in text
    page = render_html(info, [*events, *attempts])
    assert "<h2>Notifications</h2>" in page
    others = page.split("<h2>Other events</h2>", 1)[1] if "<h2>Other events</h2>" in page else ""
    assert "notification" not in others  # attempts have their section, not "other events"


def test_a_metric_line_never_crosses_from_one_phase_into_the_next() -> None:
    """Values of two phases (with a wait between) are two lines, not one drawn across
    the wait: the report shows only what was measured."""
    from gatekeeper._charts import Series, TimeAxis, line_chart  # noqa: PLC0415

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    axis = TimeAxis.over(
        [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=14), t0 + timedelta(hours=15)]
    )
    points = (
        (t0 + timedelta(minutes=15), 0.1),
        (t0 + timedelta(minutes=30), 0.2),
        (t0 + timedelta(hours=14, minutes=15), 0.3),
        (t0 + timedelta(hours=14, minutes=30), 0.4),
    )
    svg = line_chart(
        title="m",
        axis=axis,
        show=str,
        label=lambda at: at.isoformat(),
        series=[Series(label="m", css="canary", points=points)],
    )
    assert 2 == svg.count("<polyline")
