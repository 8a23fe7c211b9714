"""Durable runs from the command line: approvals, status, history, interrupts, rollback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper import Event, RunInfo
from gatekeeper._status import describe_run
from gatekeeper.store.sqlite import SQLiteStore

PLAN = """
[plan]
name = "cli-runs"
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


def gatekeeper(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=directory,
        check=False,
    )


def split(directory: Path) -> float:
    return float(json.loads((directory / "split.json").read_text())["canary"])


def events(directory: Path) -> list[str]:
    store = SQLiteStore(directory / "gates.journal.sqlite3")
    try:
        runs = store.runs()  # the file may exist a moment before its first run does
        return [e.kind for e in store.events(runs[-1].run_id)] if runs else []
    finally:
        store.close()


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    (tmp_path / "gates.toml").write_text(PLAN.format(first="1s"))
    return tmp_path


def run_id(directory: Path) -> str:
    store = SQLiteStore(directory / "gates.journal.sqlite3")
    try:
        return store.runs()[-1].run_id
    finally:
        store.close()


def test_a_held_approval_is_given_by_the_cli_and_the_run_resumes(plan: Path) -> None:
    """No approval: held (exit 3), traffic kept; `approve` records who; running again
    resumes the same run and finishes it."""
    held = gatekeeper(plan, "run", "gates.toml", "--no-wait", "-q")
    assert 3 == held.returncode, held.stdout + held.stderr
    assert "gatekeeper approve" in held.stdout
    assert 5.0 == split(plan)
    rid = run_id(plan)
    status = gatekeeper(plan, "status")
    assert f"run {rid} · plan cli-runs · held" in status.stdout
    assert "waiting for the go/no-go of full" in status.stdout
    given = gatekeeper(plan, "approve", rid[:6], "--by", "alice")
    assert f"run {rid}: full approved by alice" in given.stdout
    resumed = gatekeeper(plan, "run", "gates.toml", "-q")
    assert 0 == resumed.returncode, resumed.stdout + resumed.stderr
    assert "resumed from its journal" in resumed.stdout
    assert 100.0 == split(plan)
    assert rid == run_id(plan)
    history = gatekeeper(plan, "history", rid, "--json")
    lines = [json.loads(line) for line in history.stdout.splitlines()]
    given_event = next(e for e in lines if e["kind"] == "approval_given")
    assert ("full", "alice") == (given_event["phase"], given_event["data"]["by"])
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))


def test_a_rejection_rolls_back(plan: Path) -> None:
    """`reject` is a no-go: the resumed run rolls the canary back (exit 1)."""
    gatekeeper(plan, "run", "gates.toml", "--no-wait", "-q")
    rid = run_id(plan)
    gatekeeper(plan, "reject", rid, "--by", "bob", "--reason", "p99 looks off")
    again = gatekeeper(plan, "run", "gates.toml", "-q")
    assert 1 == again.returncode
    assert "no-go for full by bob" in again.stdout
    assert 0.0 == split(plan)


def test_sigterm_keeps_traffic_and_says_how_to_go_on(tmp_path: Path) -> None:
    """SIGTERM mid-phase: journaled, traffic untouched, exit 3, then `rollback` works."""
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
        while time.monotonic() < deadline:
            journal = tmp_path / "gates.journal.sqlite3"
            if journal.exists() and "phase_started" in events(tmp_path):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # never leave the runner behind, whatever failed
            proc.kill()
            proc.communicate(timeout=10)
    assert 3 == proc.returncode
    assert "result: INTERRUPTED" in out
    assert "gatekeeper rollback" in out
    assert 5.0 == split(tmp_path)
    assert "interrupted" in events(tmp_path)
    rid = run_id(tmp_path)
    rolled = gatekeeper(tmp_path, "rollback", rid)
    assert 0 == rolled.returncode, rolled.stderr
    assert 0.0 == split(tmp_path)
    status = gatekeeper(tmp_path, "status", rid)
    assert "rolled back" in status.stdout.splitlines()[0]


def test_an_edited_plan_is_refused_with_the_way_out(plan: Path) -> None:
    """A changed plan while its run is unfinished: exit 1 naming --restart."""
    gatekeeper(plan, "run", "gates.toml", "--no-wait", "-q")
    text = (plan / "gates.toml").read_text().replace("error_rate < 1%", "error_rate < 2%")
    (plan / "gates.toml").write_text(text)
    refused = gatekeeper(plan, "run", "gates.toml", "--no-wait", "-q")
    assert 1 == refused.returncode
    assert "the plan changed since it started" in refused.stderr
    assert "--restart" in refused.stderr
    restarted = gatekeeper(plan, "run", "gates.toml", "--no-wait", "--restart", "-q")
    assert 3 == restarted.returncode


def test_unknown_run_lists_the_latest(plan: Path) -> None:
    """A run id that is not in the journal is a clear error."""
    gatekeeper(plan, "run", "gates.toml", "--no-wait", "-q")
    missing = gatekeeper(plan, "history", "nope")
    assert 1 == missing.returncode
    assert "no run 'nope' in the journal (latest:" in missing.stderr


def test_status_shows_the_verdicts_of_the_last_decision_once() -> None:
    """A re-checked checkpoint lists only its last evaluation's verdicts."""
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def event(kind: str, checkpoint: str, **data: object) -> Event:
        return Event(kind=kind, at=at, phase="ramp", checkpoint=checkpoint, data=data)

    events = [
        Event(kind="phase_started", at=at, phase="ramp", data={}),
        event("verdict", "15m", outcome="inconclusive", criterion="m < 1", reason="no data"),
        event("decision", "15m", action="hold", reason="re-check", recheck_at="soon"),
        event("verdict", "15m", outcome="pass", criterion="m < 1", reason="0.5 < 1"),
        event("decision", "15m", action="continue", reason="gate passed"),
    ]
    info = RunInfo(run_id="r1", plan="p", plan_digest="d", started_at=at, status="running")
    lines = describe_run(info, events)
    verdict_lines = [line for line in lines if "m < 1:" in line]
    assert ["    PASS         m < 1: 0.5 < 1"] == verdict_lines
    assert "last decision at 15m: CONTINUE (gate passed)" in "\n".join(lines)
