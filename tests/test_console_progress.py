"""Progress a person can follow: what is next and when, when the phase and the run
end, a heartbeat during long waits, and the command that answers an approval."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper._cli import main
from gatekeeper._plugins import Plugins
from gatekeeper._registry import RunInfoView
from gatekeeper._report import ConsoleReporter, answer_commands, format_span
from gatekeeper._schedule import compact_checkpoints, outlook, schedule_data, schedule_from
from gatekeeper._units import parse_duration

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"
START = datetime(2026, 1, 1, tzinfo=UTC)

SHORT = """
[plan]
name = "short"
[sources.s]
type = "static"
values = {{ error_rate = 0.001 }}
[metrics.error_rate]
source = "s"
[traffic]
type = "{traffic}"
{traffic_options}
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1m", "2m"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
approval = "go/no-go"
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


# A plan of the reference plan's shape, kept here so that its times stay what these
# tests say (the reference plan grows a calendar): canary 1h, a go/no-go, ramp 4h,
# rollout 36h, twelve days of confirmation.
TIMED = """
[plan]
name = "timed"
[sources.s]
type = "static"
values = {{ error_rate = 0.001 }}
[metrics.error_rate]
source = "s"
[traffic]
type = "memory"
{calendar}
[[phases]]
name = "canary"
traffic = 1
checkpoints = ["15m", "30m", "1h"]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 10
approval = "go/no-go"
checkpoints = ["15m", "30m", "1h", "2h", "3h", "4h"]
gate = ["error_rate < 1%"]
{ramp}
[[phases]]
name = "rollout"
traffic = 100
checkpoints = ["15m", "30m", "1h", "2h", "4h", "8h", "24h", "36h"]
gate = ["error_rate < 1%"]
{rollout}
[[phases]]
name = "baseline-confirmation"
traffic = 100
checkpoints = {{ every = "1d", until = "12d" }}
gate = ["error_rate < 1%"]
"""
CALENDAR = """
[windows.staffed]
days = "mon-fri"
hours = "09:00-18:00"
"""


def timed_plan(directory: Path, *, calendar: bool = False) -> tuple[gatekeeper.Plan, Path]:
    text = TIMED.format(
        calendar=CALENDAR if calendar else "",
        ramp='start_at = "14:00"\nwindow = "staffed"' if calendar else "",
        rollout='start_at = "16:00"\nwindow = "staffed"' if calendar else "",
    )
    (directory / "gates.toml").write_text(text)
    (directory / "r.csv").write_text("at,metric,value\n0,error_rate,0.001\n")
    return gatekeeper.load_plan(directory / "gates.toml"), directory / "r.csv"


def rehearse(plan: gatekeeper.Plan, recording: Path, reporter: ConsoleReporter) -> str:
    plugins = Plugins()
    plugins.register(reporter, name=f"console-{id(reporter)}")
    rollout = gatekeeper.rehearsal(plan, recording, plugins=plugins)
    asyncio.run(rollout.run())
    stream = reporter.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> str:
    plan, recording = timed_plan(tmp_path_factory.mktemp("timed"))
    return rehearse(plan, recording, ConsoleReporter(io.StringIO(), verbose=False))


def test_a_phase_start_says_when_its_first_checkpoint_is_due(tmp_path: Path) -> None:
    """A one-minute gap is not silent: the phase's header says what comes and when."""
    (tmp_path / "gates.toml").write_text(SHORT.format(traffic="memory", traffic_options=""))
    (tmp_path / "r.csv").write_text("at,metric,value\n0,error_rate,0.001\n")
    plan = gatekeeper.load_plan(tmp_path / "gates.toml")
    out = rehearse(plan, tmp_path / "r.csv", ConsoleReporter(io.StringIO()))
    assert "    next: canary @ 1m in 1m, at 00:01 UTC\n" in out
    assert (
        "phase canary ends in 2m, at 00:02 UTC · run ends in ~2m, at 00:02:01 UTC, 1 approval ahead"
        in out
    )


def test_each_checkpoint_says_when_the_phase_and_the_run_end(healthy: str) -> None:
    """After ramp @ 15m: 3h45m of ramp left; the run (36h rollout, 12d confirmation)
    ends on the plan's schedule, at the same moment whatever the checkpoint."""
    lines = healthy.splitlines()
    at = lines.index("  [+1h15m] ramp @ 15m: PASS")
    after = "\n".join(lines[at : at + 6])
    assert "next: 30m at 2026-01-01 01:30:00 UTC (in 15m)" in after
    assert (
        "    phase ramp ends in 3h45m, at 05:00 UTC · run ends in ~13d15h, at 2026-01-14 17:00 UTC"
    ) in after
    ends = {line.rsplit(", at ", 1)[-1] for line in lines if "run ends in ~" in line}
    assert {"2026-01-14 17:00 UTC", "2026-01-14 17:00 UTC, 1 approval ahead"} == ends
    assert "  4 phases, 13d17h if nothing holds: ends ~2026-01-14 17:00 UTC" in lines


def test_the_run_end_keeps_the_plans_calendar(tmp_path: Path) -> None:
    """With start times and a staffed window, the run's end said at the start and at
    every checkpoint is the moment the rehearsed run really ends."""
    plan, recording = timed_plan(tmp_path, calendar=True)
    out = rehearse(plan, recording, ConsoleReporter(io.StringIO(), verbose=False))
    lines = out.splitlines()
    ends = {line.rsplit(", at ", 1)[-1].split(",")[0] for line in lines if "run ends in ~" in line}
    confirmation = next(line for line in lines if line.startswith("▶ phase baseline-conf"))
    started = START + parse_duration(confirmation.split("[+", 1)[1].split("]", 1)[0])
    assert {(started + timedelta(days=12)).strftime("%Y-%m-%d %H:%M UTC")} == ends
    assert "  ⏸ waiting: ramp starts at 14:00 UTC, in 13h · goes on in 13h, at 14:00 UTC" in lines


def test_evenly_spaced_checkpoints_are_compact_in_the_header(healthy: str) -> None:
    """Twelve daily checkpoints read as one phrase, not twelve names."""
    assert "· checkpoints every 1d until 12d (12)" in healthy
    assert "· checkpoints 15m 30m 1h 2h 4h 8h 24h 36h\n" in healthy


@pytest.mark.parametrize(
    ("offsets", "shown"),
    [
        (["1d", "2d", "3d", "4d"], "every 1d until 4d (4)"),
        (["2h", "3h", "4h", "5h"], "every 1h from 2h until 5h (4)"),
        (["15m", "30m", "1h"], "15m 30m 1h"),
        (
            ["1m", "2m", "4m", "8m", "16m", "32m", "64m", "128m", "256m", "512m"],
            "1m 2m 4m 8m 16m 32m … 512m (10)",
        ),
    ],
)
def test_compact_checkpoints(offsets: list[str], shown: str) -> None:
    """Evenly spaced offsets become ``every``; a long irregular list keeps its ends."""
    pairs = [(o, parse_duration(o)) for o in offsets]
    assert shown == compact_checkpoints(pairs)


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(days=1, hours=14, minutes=23), "1d14h"),
        (timedelta(hours=2, minutes=34, seconds=10), "2h34m"),
        (timedelta(minutes=34, seconds=29), "34m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
    ],
)
def test_spans_are_said_in_two_units(delta: timedelta, shown: str) -> None:
    """A person reads ``1d14h``, not ``1d14h23m12s``."""
    assert shown == format_span(delta)


def test_a_recheck_moves_the_end_only_past_the_last_checkpoint() -> None:
    """Re-checks keep the later checkpoints' times; the last one's re-check moves the end."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    schedule = schedule_from(schedule_data(plan.phases))
    assert schedule is not None
    mid = outlook(
        schedule,
        "ramp",
        START,
        next_checkpoint="15m (re-check)",
        next_at=START + timedelta(minutes=20),
    )
    last = outlook(
        schedule,
        "ramp",
        START,
        next_checkpoint="4h (re-check)",
        next_at=START + timedelta(hours=4, minutes=5),
    )
    assert mid is not None and last is not None
    assert START + timedelta(hours=4) == mid.phase_ends
    assert START + timedelta(hours=4, minutes=5) == last.phase_ends
    assert last.run_ends - last.phase_ends == timedelta(days=12, hours=36)


def test_an_approval_wait_prints_the_commands_that_answer_it(tmp_path: Path) -> None:
    """A live run waiting for a go/no-go prints ``gatekeeper approve`` and ``reject``
    exactly; the printed approve command, run as printed, lets the run finish."""
    (tmp_path / "gates.toml").write_text(
        SHORT.format(traffic="file", traffic_options='path = "split.json"').replace(
            '["1m", "2m"]', '["1s"]'
        )
    )
    plan_path = str(tmp_path / "gates.toml")
    out = io.StringIO()
    assert 3 == main(["run", plan_path, "--no-wait"], out=out)
    text = out.getvalue()
    approve = next(
        line.split("go:", 1)[1].strip() for line in text.splitlines() if "go:    " in line
    )
    reject = next(
        line.split("no-go:", 1)[1].strip() for line in text.splitlines() if "no-go: " in line
    )
    run_id = approve.split()[2]
    assert (approve, reject) == answer_commands(run_id, "full", ["--plan", plan_path])
    assert f"gatekeeper approve {run_id} --phase full --by NAME --plan {plan_path}" == approve
    argv = approve.replace("NAME", "alice").split()[1:]
    assert 0 == main(argv, out=io.StringIO())
    again = io.StringIO()
    assert 0 == main(["run", plan_path], out=again)
    assert "approval: given by alice" in again.getvalue()


class _StillClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    async def sleep_until(self, when: datetime) -> None:  # pragma: no cover - unused
        self.at = when


def _live_view(plan: gatekeeper.Plan, clock: _StillClock) -> RunInfoView:
    return RunInfoView(run_id="r1", plan=plan, clock=clock, started_at=clock.at)


def test_a_long_wait_gets_a_heartbeat_saying_when_it_ends() -> None:
    """In a live run, a wait longer than the heartbeat interval prints a line every
    interval: what it waits for, how long still, and when."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    clock = _StillClock(START)
    stream = io.StringIO()
    reporter = ConsoleReporter(stream, heartbeat=timedelta(milliseconds=20))
    reporter._wait_for(_live_view(plan, clock), "ramp @ 2h", START + timedelta(minutes=34))
    try:
        deadline = time.monotonic() + 5
        while "still waiting" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        reporter.close()
    line = stream.getvalue().splitlines()[0]
    assert "  … 00:00 UTC still waiting: ramp @ 2h in 34m, at 00:34 UTC" == line


def test_no_heartbeat_for_short_waits_or_rehearsals() -> None:
    """A wait shorter than the interval, and any rehearsal, start no heartbeat."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    clock = _StillClock(START)
    reporter = ConsoleReporter(io.StringIO(), heartbeat=timedelta(minutes=10))
    reporter._wait_for(_live_view(plan, clock), "canary @ 1m", START + timedelta(minutes=1))
    assert reporter._beater is None
    rehearsed = RunInfoView(run_id="r1", plan=plan, clock=clock, started_at=START, rehearsal=True)
    reporter._wait_for(rehearsed, "ramp @ 2h", START + timedelta(hours=2))
    assert reporter._beater is None
    reporter.close()


def test_an_approval_wait_gets_a_heartbeat_with_the_command() -> None:
    """Waiting for a go/no-go has no end time: the heartbeat repeats the command."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    clock = _StillClock(START)
    stream = io.StringIO()
    reporter = ConsoleReporter(stream, heartbeat=timedelta(milliseconds=20))
    reporter.gatekeeper_approval_requested(_live_view(plan, clock), plan.phase("ramp"))
    try:
        deadline = time.monotonic() + 5
        while "still waiting" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        reporter.close()
    beat = next(line for line in stream.getvalue().splitlines() if "still waiting" in line)
    command = answer_commands("r1", "ramp", ["--plan", str(EXAMPLE / "gates.toml")])[0]
    assert f"  … 00:00 UTC still waiting for the go/no-go of ramp: {command}" == beat


def test_a_phase_wait_says_why_and_until_when() -> None:
    """A phase held back by its start time or a window: why, and when it goes on."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    clock = _StillClock(START)
    stream = io.StringIO()
    reporter = ConsoleReporter(stream, heartbeat=None)
    view = _live_view(plan, clock)
    reporter.gatekeeper_phase_waiting(
        view, plan.phase("ramp"), START + timedelta(hours=14), "ramp starts at 14:00 UTC"
    )
    reporter.gatekeeper_phase_waiting(view, plan.phase("ramp"), None, "held by alice")
    assert [
        "  ⏸ waiting: ramp starts at 14:00 UTC · goes on in 14h, at 14:00 UTC",
        "  ⏸ waiting: held by alice",
    ] == stream.getvalue().splitlines()
