"""The calendar in a run: start times, go/no-go deadlines, windows and freezes.

Rehearsed on a simulated clock from several start moments (a Monday morning, a
Friday evening, inside a freeze), and live against a real HAProxy: advancing closes
mid-phase and a failure injected while closed still rolls back at once; an operator's
freeze holds a live run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import RunOutcome
from gatekeeper._clock import SimulatedClock
from gatekeeper.store.sqlite import SQLiteStore
from gatekeeper.traffic.memory import MemoryBackend
from realservers import wait_until
from realservers.haproxy import HAProxyLauncher, HAProxyServer, Upstreams

CALENDAR_PLAN = """
[plan]
name = "calendar"
timezone = "Europe/Berlin"
[sources.s]
type = "static"
values = {{ error_rate = 0.001 }}
[metrics.error_rate]
source = "s"
[windows.staffed]
days = "mon-fri"
hours = "09:00-18:00"
{freezes}
[policy]
window = "staffed"
[[phases]]
name = "canary"
traffic = 1
checkpoints = ["15m", "1h"]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 10
start_at = "14:00"
approval = {{ prompt = "go/no-go", ask_at = "13:00"{on_deadline} }}
checkpoints = ["1h", "4h"]
gate = ["error_rate < 1%"]
[[phases]]
name = "rollout"
traffic = 100
start_at = "16:00"
checkpoints = ["1h", "36h"]
gate = ["error_rate < 1%"]
"""

BERLIN = "Europe/Berlin"


def rehearse(
    tmp_path: Path, start: str, *, freezes: str = "", on_deadline: str = "", env: dict[str, str]
) -> tuple[RunOutcome, dict[tuple[str, str | None], datetime]]:
    path = tmp_path / "gates.toml"
    path.write_text(CALENDAR_PLAN.format(freezes=freezes, on_deadline=on_deadline))
    plan = gatekeeper.load_plan(path)
    clock = SimulatedClock(datetime.fromisoformat(start).astimezone(UTC))
    rollout = gatekeeper.Rollout(
        plan,
        clock=clock,
        traffic=MemoryBackend(0),
        plugins=gatekeeper.Plugins(load_entry_points=False),
        env=env,
    )
    result = rollout.run_sync()
    moments: dict[tuple[str, str | None], datetime] = {}
    for event in rollout.store.events(result.run_id):
        moments.setdefault(
            (str(event.kind), event.phase), event.at.astimezone(plan.calendar.timezone)
        )
    return result.outcome, moments


def local(text: str) -> datetime:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(BERLIN))


def test_the_seed_calendar_from_a_monday_morning(tmp_path: Path) -> None:
    """Go/no-go asked at 13:00, ramp at 14:00, rollout the next day at 16:00; the
    canary waits for the staffed window to open at 09:00."""
    outcome, at = rehearse(tmp_path, "2026-11-23T08:00:00+01:00", env={"GATEKEEPER_APPROVE": "*"})
    assert RunOutcome.ADVANCED == outcome
    assert local("2026-11-23T09:00") == at[("phase_started", "canary")]
    assert local("2026-11-23T13:00") == at[("approval_requested", "ramp")]
    assert local("2026-11-23T14:00") == at[("phase_started", "ramp")]
    assert local("2026-11-24T16:00") == at[("phase_started", "rollout")]
    # 36 h later it is 04:00 on Thursday: the last phase raises nothing more, so the
    # run ends then (a phase before it would wait for the window to open).
    assert local("2026-11-26T04:00") == at[("run_ended", None)]


def test_a_friday_evening_start_waits_for_monday(tmp_path: Path) -> None:
    outcome, at = rehearse(tmp_path, "2026-11-27T17:30:00+01:00", env={"GATEKEEPER_APPROVE": "*"})
    assert RunOutcome.ADVANCED == outcome
    assert local("2026-11-27T17:30") == at[("phase_started", "canary")]
    assert local("2026-11-30T09:00") == at[("phase_ended", "canary")]  # not over the weekend
    assert local("2026-11-30T14:00") == at[("phase_started", "ramp")]


def test_inside_a_freeze_nothing_starts_until_it_ends(tmp_path: Path) -> None:
    freezes = (
        '[freezes.year-end]\nfrom = "2026-12-20T00:00:00Z"\nto = "2027-01-05T00:00:00Z"\n'
        'reason = "year end"'
    )
    outcome, at = rehearse(
        tmp_path, "2026-12-22T10:00:00+01:00", freezes=freezes, env={"GATEKEEPER_APPROVE": "*"}
    )
    assert RunOutcome.ADVANCED == outcome
    assert local("2027-01-05T09:00") == at[("phase_started", "canary")]


def test_no_answer_by_the_start_follows_the_plan(tmp_path: Path) -> None:
    """The go/no-go is due at the ramp's 14:00 start: hold by default, or reject."""
    held, _ = rehearse(tmp_path, "2026-11-23T08:00:00+01:00", env={})
    assert RunOutcome.HELD == held
    other = tmp_path / "reject"
    other.mkdir()
    rejected, at = rehearse(
        other, "2026-11-23T08:00:00+01:00", on_deadline=', on_deadline = "reject"', env={}
    )
    assert RunOutcome.ROLLED_BACK == rejected
    assert local("2026-11-23T14:00") == at[("run_ended", None)]


# -- live, against a real HAProxy ------------------------------------------------------


LIVE_PLAN = """
[plan]
name = "calendar-live"
[sources.s]
type = "python"
callable = "probe:error_rate"
[metrics.error_rate]
source = "s"
[traffic]
type = "haproxy"
socket = "{socket}"
backend = "app"
[freezes.maintenance]
from = "{closes}"
to = "{opens}"
reason = "closes mid-phase"
[policy]
recheck_interval = "1s"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["2s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""

PROBE = """
from pathlib import Path

def error_rate(query):
    return float(Path(__file__).with_name("error_rate").read_text())
"""


@pytest.fixture
def haproxy(haproxy_launcher: HAProxyLauncher, upstreams: Upstreams) -> Iterator[HAProxyServer]:
    server = haproxy_launcher.start(upstreams)
    yield server
    server.stop()


def start_live(
    tmp_path: Path, haproxy: HAProxyServer, *, closes_in: float
) -> subprocess.Popen[str]:
    now = datetime.now(UTC)
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "error_rate").write_text("0.001")
    (tmp_path / "gates.toml").write_text(
        LIVE_PLAN.format(
            socket=haproxy.socket_path,
            closes=(now + timedelta(seconds=closes_in)).isoformat(),
            opens=(now + timedelta(seconds=closes_in, hours=1)).isoformat(),
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kinds(tmp_path: Path) -> list[str]:
    store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
    try:
        return [str(e.kind) for e in store.events(store.runs()[-1].run_id)]
    finally:
        store.close()


@pytest.mark.servers
def test_closed_mid_phase_a_failure_still_rolls_back_at_once(
    tmp_path: Path, haproxy: HAProxyServer
) -> None:
    """Advancing closes a second into the canary (a freeze begins): the canary may not
    advance, but it is still judged; a failure injected while closed rolls it back."""
    runner = start_live(tmp_path, haproxy, closes_in=1.0)
    try:
        wait_until(lambda: haproxy.weight() > 0, timeout=30)
        wait_until(lambda: "phase_waiting" in kinds(tmp_path), timeout=15)
        assert haproxy.weight() > 0  # held at the canary's share, not advanced
        (tmp_path / "error_rate").write_text("0.5")  # the canary starts failing
        injected = time.monotonic()
        wait_until(lambda: haproxy.weight() == 0, timeout=10)
        assert time.monotonic() - injected < 5
        assert 1 == runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate(timeout=10)


@pytest.mark.servers
def test_an_operator_freeze_holds_a_live_run(tmp_path: Path, haproxy: HAProxyServer) -> None:
    runner = start_live(tmp_path, haproxy, closes_in=3600)  # the plan's freeze is far away
    try:
        wait_until(lambda: haproxy.weight() > 0, timeout=30)
        store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
        try:
            run_id = store.runs()[-1].run_id
        finally:
            store.close()
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        frozen = subprocess.run(
            [
                sys.executable,
                "-m",
                "gatekeeper",
                "freeze",
                run_id,
                "--until",
                until,
                "--by",
                "sre",
                "--reason",
                "incident elsewhere",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == frozen.returncode, frozen.stderr
        time.sleep(4)  # the canary's 2s checkpoint passed: frozen, so no advance
        assert haproxy.weight() < 256
        assert "phase_waiting" in kinds(tmp_path)
        rollback = subprocess.run(
            [sys.executable, "-m", "gatekeeper", "rollback", run_id, "--by", "sre"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == rollback.returncode  # a freeze never blocks a rollback
        assert 0 == haproxy.weight()
        assert 1 == runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate(timeout=10)


def test_rehearse_start_runs_the_calendar_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "gates.toml").write_text(CALENDAR_PLAN.format(freezes="", on_deadline=""))
    (tmp_path / "rec.csv").write_text("at,metric,value\n0,error_rate,0.001\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper",
            "rehearse",
            "gates.toml",
            "--metrics",
            "rec.csv",
            "--start",
            "2026-11-27T16:30:00Z",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    # Friday 17:30 Berlin: the canary may not advance over the weekend, and the ramp
    # starts at Monday's 14:00 (2d20h30m after the run began).
    assert "outside window staffed" in done.stdout
    assert "▶ phase ramp [+2d20h30m]" in done.stdout


WINDOW_PLAN = """
[plan]
name = "window-live"
[sources.s]
type = "python"
callable = "probe:error_rate"
[metrics.error_rate]
source = "s"
[traffic]
type = "haproxy"
socket = "{socket}"
backend = "app"
[windows.open]
days = "mon-sun"
hours = "{hours}"
[policy]
window = "open"
recheck_interval = "1s"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["{last}s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


@pytest.mark.servers
def test_a_window_that_closes_mid_phase_stops_advancing_not_rolling_back(
    tmp_path: Path, haproxy: HAProxyServer
) -> None:
    """The window closes during the canary: at its checkpoint it may not advance; a
    failure injected while closed rolls it back at once (windows are minute-exact, so
    this waits for the next minute boundary: up to about a minute)."""
    now = datetime.now(UTC)
    closes = (now + timedelta(seconds=8)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    opens = closes - timedelta(hours=2)
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "error_rate").write_text("0.001")
    last = int((closes - now).total_seconds()) + 3
    (tmp_path / "gates.toml").write_text(
        WINDOW_PLAN.format(
            socket=haproxy.socket_path,
            hours=f"{opens:%H:%M}-{closes:%H:%M}",
            last=last,
        )
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: haproxy.weight() > 0, timeout=30)
        wait_until(lambda: "phase_waiting" in kinds(tmp_path), timeout=last + 20)
        assert 0 < haproxy.weight() < 256  # closed: the canary keeps its share
        (tmp_path / "error_rate").write_text("0.5")
        injected = time.monotonic()
        wait_until(lambda: haproxy.weight() == 0, timeout=10)
        assert time.monotonic() - injected < 5
        assert 1 == runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate(timeout=10)


REFERENCE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


def rehearse_reference(
    tmp_path: Path, start: str, extra: str = ""
) -> dict[tuple[str, str | None], datetime]:
    from gatekeeper._rehearsal import rehearsal  # noqa: PLC0415

    path = tmp_path / "gates.toml"
    path.write_text((REFERENCE / "gates.toml").read_text() + extra)
    plan = gatekeeper.load_plan(path)
    rollout = rehearsal(plan, REFERENCE / "healthy.csv", origin=datetime.fromisoformat(start))
    result = rollout.run_sync()
    assert RunOutcome.ADVANCED == result.outcome
    moments: dict[tuple[str, str | None], datetime] = {}
    for event in rollout.store.events(result.run_id):
        moments.setdefault((str(event.kind), event.phase), event.at)
    return moments


def test_the_reference_plan_from_a_friday_evening(tmp_path: Path) -> None:
    """Its ramp's 14:00 start reached on a Friday evening is Monday's 14:00 (go/no-go
    Monday 13:00), the rollout Tuesday 16:00."""
    at = rehearse_reference(tmp_path, "2026-11-27T17:00:00+00:00")
    utc = UTC
    assert datetime(2026, 11, 30, 13, tzinfo=utc) == at[("approval_requested", "ramp")]
    assert datetime(2026, 11, 30, 14, tzinfo=utc) == at[("phase_started", "ramp")]
    assert datetime(2026, 12, 1, 16, tzinfo=utc) == at[("phase_started", "rollout")]


def test_the_reference_plan_inside_a_freeze(tmp_path: Path) -> None:
    """Started inside the year-end freeze: nothing raises traffic until it ends (the
    canary waits for 2027-01-05 00:00), and the ramp starts at 14:00 that day."""
    freeze = '\n[freezes.year-end]\nfrom = "2026-12-20T00:00:00Z"\nto = "2027-01-05T00:00:00Z"\n'
    at = rehearse_reference(tmp_path, "2026-12-22T10:00:00+00:00", freeze)
    assert datetime(2027, 1, 5, tzinfo=UTC) == at[("phase_started", "canary")]
    assert datetime(2027, 1, 5, 14, tzinfo=UTC) == at[("phase_started", "ramp")]
