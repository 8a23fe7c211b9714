"""``gatekeeper status`` from the journal alone: where a run stands, its next
checkpoint, and when its phase and the run are expected to end."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gatekeeper
from gatekeeper import Event, RunInfo
from gatekeeper._schedule import schedule_data
from gatekeeper._status import describe_run, run_state
from gatekeeper.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"
START = datetime(2026, 1, 1, tzinfo=UTC)

PLAN = """
[plan]
name = "status-journal"
[sources.s]
type = "static"
values = {{ error_rate = 0.001 }}
[metrics.error_rate]
source = "s"
[traffic]
type = "file"
path = "split.json"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["{first}"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
approval = "go/no-go"
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


def gatekeeper_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def ramp_events(*decisions: Event, schedule: bool = True) -> list[Event]:
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    data: dict[str, object] = {"plan": plan.name, "phases": [p.name for p in plan.phases]}
    if schedule:
        data["schedule"] = schedule_data(plan.phases)
    ramp_start = START + timedelta(hours=1)
    return [
        Event(kind="run_started", at=START, data=data, seq=1),
        Event(
            kind="phase_started",
            at=ramp_start,
            phase="ramp",
            data={"traffic": 10, "started_at": ramp_start.isoformat()},
            seq=2,
        ),
        Event(kind="traffic_confirmed", at=ramp_start, phase="ramp", data={"canary": 10.0}),
        *decisions,
    ]


def decision(checkpoint: str, action: str, at: datetime, recheck: datetime | None = None) -> Event:
    return Event(
        kind="decision",
        at=at,
        phase="ramp",
        checkpoint=checkpoint,
        data={
            "action": action,
            "reason": "r",
            "recheck_at": recheck.isoformat() if recheck else None,
        },
    )


def info(digest: str = "d") -> RunInfo:
    return RunInfo(run_id="r1", plan="progressive-rollout", plan_digest=digest, started_at=START)


def test_status_says_the_next_checkpoint_and_the_ends_from_the_journal() -> None:
    """After ramp @ 15m continued: 30m next at 01:30; the ramp ends 05:00, the run on
    the plan's schedule (rollout 36h, confirmation 12d) — no plan file needed."""
    now = START + timedelta(hours=1, minutes=20)
    events = ramp_events(decision("15m", "continue", START + timedelta(hours=1, minutes=15)))
    lines = describe_run(info(), events, now=now)
    assert "  phase ramp, canary at 10%" in lines
    assert "  next: ramp @ 30m at 2026-01-01 01:30:00 UTC, in 10m" in lines
    assert "  phase ramp ends ~2026-01-01 05:00:00 UTC, in 3h40m" in lines
    assert "  run ends ~2026-01-14 17:00:00 UTC, in 13d15h" in lines


def test_a_phase_without_a_decision_yet_waits_for_its_first_checkpoint() -> None:
    """Just started: the first checkpoint is next."""
    state = run_state(info(), ramp_events())
    assert ("15m", "2026-01-01T01:15:00+00:00") == (state["next_checkpoint"], state["next_at"])


def test_a_hold_waits_for_its_recheck() -> None:
    """A hold with a re-check: that re-check is next; the later checkpoints keep their
    times, so the phase's end does not move."""
    recheck = START + timedelta(hours=1, minutes=20)
    events = ramp_events(decision("15m", "hold", START + timedelta(hours=1, minutes=15), recheck))
    state = run_state(info(), events)
    assert "15m (re-check)" == state["next_checkpoint"]
    assert recheck.isoformat() == state["next_at"]
    assert "2026-01-01T05:00:00+00:00" == state["phase_ends_at"]


def test_without_a_journaled_schedule_the_same_plan_supplies_it() -> None:
    """An older journal: the plan gives the schedule only when it is the run's plan."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    events = ramp_events(schedule=False)
    same = run_state(info(plan.digest), events, plan)
    assert "2026-01-01T01:15:00+00:00" == same["next_at"]
    other = run_state(info("another digest"), events, plan)
    assert other["next_at"] is None
    alone = run_state(info(plan.digest), events)
    assert "pass --plan" in alone["next_checkpoint"]


def test_finished_runs_have_nothing_next() -> None:
    """A run that is not running has no next checkpoint (its last decision stays)."""
    finished = RunInfo(
        run_id="r1", plan="p", plan_digest="d", started_at=START, status="rolled back"
    )
    events = ramp_events(decision("15m", "rollback", START + timedelta(hours=1, minutes=15)))
    state = run_state(finished, events)
    assert state["next_at"] is None
    assert "rollback" == state["last_decision"]["action"]


def test_status_works_with_the_store_alone(tmp_path: Path) -> None:
    """No plan file where status runs: ``--store`` is enough (so is $GATEKEEPER_STORE);
    without either, one clear message."""
    (tmp_path / "gates.toml").write_text(PLAN.format(first="1s"))
    held = gatekeeper_cli(tmp_path, "run", "gates.toml", "--no-wait", "-q")
    assert 3 == held.returncode, held.stdout + held.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    journal = str(tmp_path / "gates.journal.sqlite3")
    status = gatekeeper_cli(elsewhere, "status", "--store", journal)
    assert 0 == status.returncode, status.stderr
    assert "· plan status-journal · held" in status.stdout
    assert "waiting for the go/no-go of full" in status.stdout
    run_id = status.stdout.split()[1]
    assert f"    go:    gatekeeper approve {run_id} --phase full --by NAME --store {journal}" in (
        status.stdout
    )
    history = gatekeeper_cli(elsewhere, "history", status.stdout.split()[1], "--store", journal)
    assert 0 == history.returncode, history.stderr
    assert "approval_requested" in history.stdout
    neither = gatekeeper_cli(elsewhere, "status")
    assert 0 != neither.returncode
    assert "Traceback" not in neither.stderr


def test_status_of_a_live_run_says_when_its_next_checkpoint_is_due(tmp_path: Path) -> None:
    """A runner waiting for its 1h checkpoint: status (another process) names it, and
    when the phase and the run should end."""
    (tmp_path / "gates.toml").write_text(PLAN.format(first="1h"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml", "-q"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        kinds: list[str] = []
        while time.monotonic() < deadline and "phase_started" not in kinds:
            time.sleep(0.05)
            if (tmp_path / "gates.journal.sqlite3").exists():
                store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
                try:
                    runs = store.runs()
                    kinds = [e.kind for e in store.events(runs[-1].run_id)] if runs else []
                finally:
                    store.close()
        with_plan = gatekeeper_cli(tmp_path, "status")
        alone = gatekeeper_cli(
            tmp_path / "..", "status", "--store", str(tmp_path / "gates.journal.sqlite3")
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert 0 == with_plan.returncode, with_plan.stderr
    out = with_plan.stdout
    assert "· running ·" in out
    assert "  next: canary @ 1h at " in out
    assert ", in 1h\n" in out or ", in 59m\n" in out
    assert "  phase canary ends ~" in out
    assert "  run ends ~" in out and "(1 approval ahead)" in out
    # From the journal alone: the engine journals the schedule, so no plan is needed.
    assert 0 == alone.returncode, alone.stderr
    assert "  next: canary @ 1h at " in alone.stdout
    assert "pass --plan" not in alone.stdout


def test_a_waiting_phase_says_why_and_until_when() -> None:
    """A journaled ``phase_waiting`` is what status says the run waits for."""
    waits = Event(
        kind="phase_waiting",
        at=START,
        phase="ramp",
        data={"until": (START + timedelta(hours=14)).isoformat(), "reason": "ramp starts at 14:00"},
    )
    state = run_state(info(), [*ramp_events()[:1], waits])
    assert "ramp starts at 14:00 (until 2026-01-01 14:00:00 UTC)" == state["waiting"]


def test_status_says_how_the_watch_stands() -> None:
    """A watched phase: the looks as of the last change or snapshot, and what is
    failing or silent now (a criterion passing again leaves the list)."""
    ramp = START + timedelta(hours=1)

    def changed(minutes: int, criterion: str, status: str, looks: int) -> Event:
        line = f"{criterion}: {status} (detail)"
        data = {"criterion": criterion, "status": status, "looks": looks, "line": line}
        return Event(
            kind="watch_changed", at=ramp + timedelta(minutes=minutes), phase="ramp", data=data
        )

    snapshot = Event(
        kind="watch_snapshot",
        at=ramp + timedelta(minutes=10),
        phase="ramp",
        data={"looks": 120, "judges": {}, "looked": {}, "failing": {}},
    )
    events = ramp_events(
        changed(2, "error_rate < 0.5% for 1m", "failing", 24),
        changed(3, "latency_p99 < 200ms", "no data", 36),
        changed(4, "error_rate < 0.5% for 1m", "passing", 48),
        snapshot,
    )
    state = run_state(info(), events)
    assert {
        "looks": 120,
        "at": snapshot.at.isoformat(),
        "news": ["latency_p99 < 200ms: no data (detail)"],
    } == state["watch"]
    lines = describe_run(info(), events, now=ramp + timedelta(minutes=11))
    assert (
        "  watch: 120 looks by 2026-01-01 01:10:00 UTC; latency_p99 < 200ms: no data (detail)"
        in lines
    )
    assert run_state(info(), ramp_events())["watch"] is None  # no watch, or not yet looked
