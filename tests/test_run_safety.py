"""The run's promises at its edges (issue 9): observers never block an effect, an
operator can always intervene, a rollback stays a rollback, a finished run is
reported, the balancer's truth is re-read, time is monotonic, library runs are
durable. Each test was a reproduced break; they drive the real command where the
break was found with it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import RunOutcome, hookimpl
from gatekeeper._clock import SystemClock
from gatekeeper._plugins import Plugins
from gatekeeper.store.sqlite import SQLiteStore
from realservers import wait_until

PLAN = """
[plan]
name = "safety"
[sources.s]
type = "static"
values = {{ error_rate = {error_rate} }}
[metrics.error_rate]
source = "s"
[traffic]
type = "file"
path = "split.json"
[[phases]]
name = "canary"
traffic = 5
checkpoints = [{canary}]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 25
checkpoints = [{ramp}]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
{approval}
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


def write_plan(
    directory: Path,
    *,
    error_rate: float = 0.001,
    canary: str = '"1s"',
    ramp: str = '"1s"',
    approval: str = "",
) -> Path:
    path = directory / "gates.toml"
    path.write_text(PLAN.format(error_rate=error_rate, canary=canary, ramp=ramp, approval=approval))
    return path


def gatekeeper_cli(
    directory: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=directory,
        check=False,
    )


def start_runner(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml", *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def share(directory: Path) -> float | None:
    try:
        return float(json.loads((directory / "split.json").read_text())["canary"])
    except (FileNotFoundError, json.JSONDecodeError, IsADirectoryError):
        return None


def journal(directory: Path) -> list[tuple[str, dict[str, object]]]:
    store = SQLiteStore(directory / "gates.journal.sqlite3")
    try:
        runs = store.runs()
        return [(str(e.kind), dict(e.data)) for e in store.events(runs[-1].run_id)] if runs else []
    finally:
        store.close()


def last_run(directory: Path) -> str:
    store = SQLiteStore(directory / "gates.journal.sqlite3")
    try:
        return store.runs()[-1].run_id
    finally:
        store.close()


@pytest.fixture
def runners() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


# -- 1. effects before observers ---------------------------------------------------


class Raising:
    @hookimpl
    def gatekeeper_checkpoint_judged(self) -> None:
        raise ConnectionRefusedError("webhook at 127.0.0.1:9 refused")

    @hookimpl
    def gatekeeper_traffic_changed(self) -> None:
        raise RuntimeError("observer bug")


class Hanging:
    @hookimpl
    def gatekeeper_checkpoint_judged(self) -> None:
        time.sleep(30)


def test_an_observer_that_raises_never_keeps_a_failing_canarys_traffic(tmp_path: Path) -> None:
    """The break: a raising hook killed the run after ROLLBACK was decided and before
    traffic moved. Now the effect comes first; the failure is journaled."""
    plan = gatekeeper.load_plan(write_plan(tmp_path, error_rate=0.5))
    plugins = Plugins(load_entry_points=False, plugins=[Raising()])
    result = gatekeeper.run(plan, plugins=plugins, phases=["canary"])
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert 1 == result.exit_code
    assert 0.0 == share(tmp_path)
    kinds = [kind for kind, _ in journal(tmp_path)]
    assert "observer_failed" in kinds
    assert kinds.index("traffic_confirmed", kinds.index("decision")) < kinds.index(
        "observer_failed", kinds.index("decision")
    )


def test_a_hung_observer_is_abandoned_after_its_timeout(tmp_path: Path) -> None:
    plan = gatekeeper.load_plan(write_plan(tmp_path, error_rate=0.5))
    plugins = Plugins(load_entry_points=False, plugins=[Hanging()])
    started = time.monotonic()
    result = gatekeeper.run(plan, plugins=plugins, phases=["canary"], observer_timeout=0.5)
    assert time.monotonic() - started < 10
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert 0.0 == share(tmp_path)
    problems = [d["problem"] for k, d in journal(tmp_path) if k == "observer_failed"]
    assert any("did not return within 0.5s" in str(p) for p in problems)


def test_a_closed_stdout_never_stops_the_rollback(tmp_path: Path) -> None:
    """`gatekeeper run gates.toml | head -1`: the reader goes away; the run still
    rolls back and exits 1."""
    write_plan(tmp_path, error_rate=0.5, canary='"1s", "2s"')
    process = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()  # like head -1
    process.wait(timeout=60)
    assert 1 == process.returncode
    assert 0.0 == share(tmp_path)
    ended = [d for k, d in journal(tmp_path) if k == "run_ended"]
    assert "rolled back" == ended[-1]["outcome"]
    assert process.stderr is not None
    errors = process.stderr.read()
    process.stderr.close()
    assert b"Traceback" not in errors


# -- 2. live operator control ------------------------------------------------------


def test_rollback_reaches_a_live_runner_within_seconds(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    """The break: `gatekeeper rollback` was refused while a runner held the lease."""
    write_plan(tmp_path, canary='"10m"')
    runner = start_runner(tmp_path)
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 5.0, timeout=20)
    run_id = last_run(tmp_path)
    asked = time.monotonic()
    done = gatekeeper_cli(tmp_path, "rollback", run_id, "--by", "bob", "--reason", "pager")
    assert 0 == done.returncode, done.stdout + done.stderr
    wait_until(lambda: share(tmp_path) == 0.0, timeout=5)
    elapsed = time.monotonic() - asked
    assert elapsed < 5
    assert 1 == runner.wait(timeout=20)
    kinds = [k for k, _ in journal(tmp_path)]
    assert "rollback_requested" in kinds
    assert "operator_applied" in kinds
    assert "rolled back" in done.stdout


def test_rollback_with_no_live_runner_applies_itself(tmp_path: Path) -> None:
    write_plan(tmp_path, ramp='"10m"')
    assert 0 == gatekeeper_cli(tmp_path, "run", "gates.toml", "--phase", "canary").returncode
    run_id = last_run(tmp_path)
    done = gatekeeper_cli(tmp_path, "rollback", run_id, "--by", "bob")
    assert 0 == done.returncode, done.stderr
    assert 0.0 == share(tmp_path)


def test_hold_stops_advancing_and_resume_lets_it_go_on(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    write_plan(tmp_path, canary='"2s"')
    runner = start_runner(tmp_path)
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 5.0, timeout=20)
    run_id = last_run(tmp_path)
    held = gatekeeper_cli(tmp_path, "hold", run_id, "--by", "alice")
    assert 0 == held.returncode, held.stderr
    time.sleep(4)  # the canary's 2s checkpoint passed meanwhile: no advance while held
    assert 5.0 == share(tmp_path)
    assert 0 == gatekeeper_cli(tmp_path, "resume", run_id, "--by", "alice").returncode
    assert 0 == runner.wait(timeout=30)
    assert 100.0 == share(tmp_path)


def test_an_early_approval_counts_and_answers_to_a_finished_run_are_refused(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    """The break: an approval given before the phase asked was ignored by a live run;
    approving a finished run exited 0; --by '' was accepted."""
    write_plan(tmp_path, canary='"3s"', approval='approval = "go/no-go"')
    runner = start_runner(tmp_path, "--no-wait")
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 5.0, timeout=20)
    run_id = last_run(tmp_path)
    empty = gatekeeper_cli(tmp_path, "approve", run_id, "--phase", "full", "--by", " ")
    assert 2 == empty.returncode
    given = gatekeeper_cli(tmp_path, "approve", run_id, "--phase", "full", "--by", "alice")
    assert 0 == given.returncode, given.stderr
    assert 0 == runner.wait(timeout=30)  # --no-wait: it would have held had it asked again
    assert 100.0 == share(tmp_path)
    late = gatekeeper_cli(tmp_path, "approve", run_id, "--phase", "full", "--by", "alice")
    assert 2 == late.returncode
    assert "already finished" in late.stderr


# -- 3. a rollback stays a rollback -------------------------------------------------


def test_a_later_phase_of_a_rolled_back_run_needs_force(tmp_path: Path) -> None:
    write_plan(tmp_path)
    assert 0 == gatekeeper_cli(tmp_path, "run", "gates.toml", "--phase", "canary").returncode
    run_id = last_run(tmp_path)
    assert 0 == gatekeeper_cli(tmp_path, "rollback", run_id, "--by", "bob").returncode
    refused = gatekeeper_cli(tmp_path, "run", "gates.toml", "--phase", "ramp")
    assert 0 != refused.returncode
    assert "rolled back" in refused.stderr
    assert "--force" in refused.stderr
    assert 0.0 == share(tmp_path)
    forced = gatekeeper_cli(tmp_path, "run", "gates.toml", "--phase", "ramp", "--force")
    assert 0 == forced.returncode, forced.stdout + forced.stderr
    assert 25.0 == share(tmp_path)


def test_a_failed_rollback_is_finished_first_and_never_promoted(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    """The break: a rollback whose balancer write failed left a dangling intent; the
    next run reconciled to 0 %, judged the ramp there and promoted it to 100 %."""
    write_plan(tmp_path, ramp='"10m"')
    runner = start_runner(tmp_path)
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 25.0, timeout=20)
    runner.kill()
    runner.wait(timeout=10)
    run_id = last_run(tmp_path)
    (tmp_path / "split.json").unlink()
    (tmp_path / "split.json").mkdir()  # the balancer refuses every write
    failed = gatekeeper_cli(tmp_path, "rollback", run_id, "--by", "bob")
    assert 3 == failed.returncode, failed.stdout + failed.stderr
    assert "NOT confirmed" in failed.stdout
    (tmp_path / "split.json").rmdir()
    (tmp_path / "split.json").write_text(json.dumps({"canary": 25.0}))
    again = gatekeeper_cli(tmp_path, "run", "gates.toml")
    assert 1 == again.returncode, again.stdout + again.stderr
    assert 0.0 == share(tmp_path)
    events = journal(tmp_path)
    intents = [d["canary"] for k, d in events if k == "traffic_intent"]
    assert 100.0 not in intents
    assert not [d for k, d in events if k == "decision" and d["action"] == "advance"][1:]


# -- 5. a finished run is reported, not repeated --------------------------------------


def test_a_finished_run_is_reported_not_repeated(tmp_path: Path) -> None:
    write_plan(tmp_path)
    assert 0 == gatekeeper_cli(tmp_path, "run", "gates.toml").returncode
    before = [k for k, _ in journal(tmp_path)].count("traffic_intent")
    written = (tmp_path / "split.json").stat().st_mtime_ns
    again = gatekeeper_cli(tmp_path, "run", "gates.toml")
    assert 0 == again.returncode
    assert "already finished" in again.stdout
    assert written == (tmp_path / "split.json").stat().st_mtime_ns
    assert before == [k for k, _ in journal(tmp_path)].count("traffic_intent")
    restarted = gatekeeper_cli(tmp_path, "run", "gates.toml", "--restart")
    assert 0 == restarted.returncode
    assert written != (tmp_path / "split.json").stat().st_mtime_ns


def test_a_run_killed_after_journaling_its_end_is_reported_not_resumed(tmp_path: Path) -> None:
    """Killed between journaling ``run_ended`` and marking the run finished: the next
    ``gatekeeper run`` reports it (and completes its status), never resumes or ends it
    a second time."""
    write_plan(tmp_path)
    assert 0 == gatekeeper_cli(tmp_path, "run", "gates.toml").returncode
    store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
    try:
        store.set_status(last_run(tmp_path), "running")  # what the dead process left
    finally:
        store.close()
    before = [k for k, _ in journal(tmp_path)]
    again = gatekeeper_cli(tmp_path, "run", "gates.toml")
    assert 0 == again.returncode, again.stdout + again.stderr
    assert "already finished" in again.stdout
    assert before == [k for k, _ in journal(tmp_path)]  # no "resumed", no second end
    store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
    try:
        assert "advanced" == store.runs()[-1].status
    finally:
        store.close()


# -- 6. the balancer's truth ------------------------------------------------------------


def test_a_split_changed_under_the_run_holds_instead_of_passing(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    write_plan(tmp_path, canary='"3s"')
    runner = start_runner(tmp_path)
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 5.0, timeout=20)
    (tmp_path / "split.json").write_text(json.dumps({"canary": 0.0}))  # a hand edit
    assert 3 == runner.wait(timeout=30)
    events = journal(tmp_path)
    drift = [d for k, d in events if k == "traffic_drift"]
    assert drift
    assert "changed under the run" in str(drift[0]["reason"])
    assert not [d for k, d in events if k == "phase_ended" and d["action"] == "advance"]


# -- 8. time -----------------------------------------------------------------------------


def test_a_wall_clock_step_does_not_move_the_run_clock() -> None:
    """The break: a +2 h step judged the 30m and 1h checkpoints at once."""
    wall = [datetime(2026, 11, 27, 12, tzinfo=UTC)]
    mono = [100.0]
    clock = SystemClock(wall=lambda: wall[0], monotonic=lambda: mono[0])
    start = clock.now()
    wall[0] += timedelta(hours=2)  # NTP step, VM resume, date -s
    assert start == clock.now()
    mono[0] += 30
    assert start + timedelta(seconds=30) == clock.now()


# -- 9. library defaults ------------------------------------------------------------------


def test_the_library_journals_durably_by_default(tmp_path: Path) -> None:
    """The break: gatekeeper.run() journaled in memory; store='x.sqlite3' raised."""
    path = write_plan(tmp_path)
    assert gatekeeper.run(path, phases=["canary"]).ok
    assert (tmp_path / "gates.journal.sqlite3").exists()
    status = gatekeeper_cli(tmp_path, "status")
    assert "advanced" in status.stdout
    assert gatekeeper.run(path, phases=["ramp"]).ok  # finds the canary that advanced
    other = gatekeeper.run(path, phases=["canary"], store="x.sqlite3", restart=True)
    assert other.ok
    assert (tmp_path / "x.sqlite3").exists()


def test_a_relative_plan_path_finds_one_journal_from_anywhere(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write_plan(sub)
    done = gatekeeper_cli(tmp_path, "run", "sub/gates.toml", "--phase", "canary")
    assert 0 == done.returncode, done.stderr
    assert (sub / "gates.journal.sqlite3").exists()
    assert not (sub / "sub").exists()
    again = gatekeeper_cli(sub, "run", "gates.toml", "--phase", "canary")
    assert "already finished" in again.stdout


# -- 7. writes are fenced -------------------------------------------------------------------


def test_a_runner_paused_past_its_lease_never_writes_to_the_balancer(tmp_path: Path) -> None:
    """The break: a runner paused past its lease had its set_split land after the new
    runner finished (balancer 25 %, journal 100 %). The lease is checked right before
    every balancer write; a fenced runner stops without writing."""
    import asyncio  # noqa: PLC0415

    from gatekeeper.store.base import LeaseLost  # noqa: PLC0415
    from gatekeeper.traffic.file import FileBackend  # noqa: PLC0415

    plan = gatekeeper.load_plan(write_plan(tmp_path, ramp='"1s"'))
    journal_path = tmp_path / "gates.journal.sqlite3"
    stale_store = SQLiteStore(journal_path, lease=timedelta(seconds=1))
    stale = gatekeeper.Rollout(
        plan, store=stale_store, traffic=FileBackend(tmp_path / "split.json")
    )

    async def freeze_after_the_canary_starts() -> None:
        await stale.start()
        await stale.begin_phase(plan.phases[0])
        stale.lease.stop_renewing()  # the process freezes (GC pause, SIGSTOP, a VM stall)

    asyncio.run(freeze_after_the_canary_starts())
    assert 5.0 == share(tmp_path)
    time.sleep(1.5)  # the lease expires
    fresh_store = SQLiteStore(journal_path)
    try:
        taken = gatekeeper.run(plan, store=fresh_store, lease_wait=timedelta(seconds=5))
    finally:
        fresh_store.close()
    assert taken.ok
    assert 100.0 == share(tmp_path)

    async def wake_up() -> None:
        await stale.set_traffic(plan.phases[1], 25.0, "the stale runner goes on")

    with pytest.raises(LeaseLost):
        asyncio.run(wake_up())
    assert 100.0 == share(tmp_path)  # the balancer never heard from the stale runner
    stale_store.close()


# -- 4. one driver per run ------------------------------------------------------------------


def test_runners_started_together_drive_one_run(tmp_path: Path) -> None:
    """The break: 2 of 20 simultaneous `gatekeeper run` made two advancing runs with
    interleaved traffic changes. Now one claims the run; the others are refused
    (exit 3, another runner drives it) or report the run it finished."""
    write_plan(tmp_path)
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(16)
    ]
    codes = [process.wait(timeout=120) for process in starts]
    assert set(codes) <= {0, 3}
    store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
    try:
        runs = store.runs()
        assert 1 == len(runs)
        kinds = [str(e.kind) for e in store.events(runs[0].run_id)]
        intents = [
            e.data["canary"] for e in store.events(runs[0].run_id) if e.kind == "traffic_intent"
        ]
    finally:
        store.close()
    assert 1 == kinds.count("run_started")
    assert [5.0, 25.0, 100.0] == intents


def test_a_journal_deleted_under_a_live_run_stops_it_loudly(
    tmp_path: Path, runners: list[subprocess.Popen[str]]
) -> None:
    """The break: a journal deleted mid-run went unnoticed (exit 0, no journal left).
    Now the runner stops within its lease's renewal period, leaves traffic where it
    is and says why (exit 3, never a success)."""
    write_plan(tmp_path, canary='"10m"')
    runner = start_runner(tmp_path)
    runners.append(runner)
    wait_until(lambda: share(tmp_path) == 5.0, timeout=20)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"gates.journal.sqlite3{suffix}").unlink(missing_ok=True)
    out, errors = runner.communicate(timeout=40)
    assert 3 == runner.returncode
    assert 5.0 == share(tmp_path)  # traffic left as it was
    assert "journal" in out + errors
