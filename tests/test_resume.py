"""Resuming runs from the journal: crash anywhere, run again, same decisions."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import crashrun
import gatekeeper
from gatekeeper import Event, RunOutcome
from gatekeeper.store.sqlite import SQLiteStore
from gatekeeper.traffic.file import FileBackend
from journal_invariants import check


class Crash(BaseException):
    """The process dies: nothing after this point happens."""


class CrashingStore(SQLiteStore):
    """Dies right before (or right after) its N-th append from now."""

    def __init__(self, path: Path, *, after: int, before_write: bool) -> None:
        super().__init__(path, lease=timedelta(seconds=2))
        self.left = after
        self.before_write = before_write

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int:
        self.left -= 1
        if self.left < 0 and self.before_write:
            raise Crash
        seq = super().append(run_id, event, fenced=fenced)
        if self.left < 0:
            raise Crash
        return seq


def run_once(directory: Path, *, bad: bool, crash_after: int | None, before: bool) -> bool:
    """Run (or resume) the crash plan; True when the run ended."""
    path = directory / "journal.sqlite3"
    store = (
        SQLiteStore(path, lease=timedelta(seconds=2))
        if crash_after is None
        else CrashingStore(path, after=crash_after, before_write=before)
    )
    try:
        asyncio.run(crashrun.rollout(directory, store, bad=bad).run())
    except Crash:
        return False
    finally:
        # A dead process keeps nothing: drop the lease as the OS would drop the file lock.
        store.close()
    return True


def journal(directory: Path) -> list[Event]:
    store = SQLiteStore(directory / "journal.sqlite3")
    try:
        runs = store.runs()
        assert len(runs) == 1, runs
        return list(store.events(runs[0].run_id))
    finally:
        store.close()


def changes(directory: Path) -> list[float]:
    return crashrun.history_of(directory / "split.json")


REFERENCE: dict[bool, list[Event]] = {}


def reference(bad: bool) -> list[Event]:
    if bad not in REFERENCE:
        directory = Path(tempfile.mkdtemp())
        assert run_once(directory, bad=bad, crash_after=None, before=False)
        REFERENCE[bad] = journal(directory)
    return REFERENCE[bad]


class CrashAndResume(RuleBasedStateMachine):
    """Crash the engine at any journal step, resume, repeat; then finish."""

    @initialize(bad=st.booleans())
    def start(self, bad: bool) -> None:
        self.bad = bad
        self.directory = Path(tempfile.mkdtemp())
        self.done = False

    @precondition(lambda self: not self.done)
    @rule(after=st.integers(min_value=0, max_value=40), before=st.booleans())
    def crash(self, after: int, before: bool) -> None:
        self.done = run_once(self.directory, bad=self.bad, crash_after=after, before=before)

    @precondition(lambda self: not self.done)
    @rule()
    def finish(self) -> None:
        self.done = run_once(self.directory, bad=self.bad, crash_after=None, before=False)

    @precondition(lambda self: self.done)
    @rule()
    def ended_runs_stay_ended(self) -> None:
        """Running an ended plan again never resumes it (it starts a fresh run)."""
        events = journal(self.directory)
        assert "run_ended" == events[-1].kind

    @invariant()
    def journal_is_a_prefix_of_a_good_run(self) -> None:
        path = self.directory / "journal.sqlite3"
        if not path.exists():
            return
        store = SQLiteStore(path)
        try:
            runs = store.runs()
            events = list(store.events(runs[-1].run_id)) if runs else []
        finally:
            store.close()
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(events) + 1))

    def teardown(self) -> None:
        if not getattr(self, "directory", None):
            return
        while not self.done:
            self.done = run_once(self.directory, bad=self.bad, crash_after=None, before=False)
        problems = check(journal(self.directory), reference(self.bad), changes(self.directory))
        assert [] == problems


TestCrashAndResume = CrashAndResume.TestCase
TestCrashAndResume.settings = settings(max_examples=25, stateful_step_count=6, deadline=None)


@pytest.mark.parametrize("bad", [False, True])
@pytest.mark.parametrize("before", [False, True])
def test_a_crash_at_every_step_resumes_to_the_same_end(bad: bool, before: bool) -> None:
    """Crash once at each journal step in turn: every resumed run ends exactly like
    the run without a crash (decisions, verdicts, traffic changes)."""
    total = len(reference(bad))
    # Every third step, and every one of the last few (the end of a run is where a
    # rollback, the phase's end and the run's end follow each other closely).
    for step in sorted({*range(0, total, 3), *range(max(0, total - 16), total)}):
        directory = Path(tempfile.mkdtemp())
        assert not run_once(directory, bad=bad, crash_after=step, before=before) or step >= total
        while not run_once(directory, bad=bad, crash_after=None, before=False):
            pass
        assert [] == check(journal(directory), reference(bad), changes(directory)), step


def test_an_edited_plan_is_refused_unless_restarted(tmp_path: Path) -> None:
    """A plan changed mid-run is refused with the way out; --restart abandons the old run."""
    assert not run_once(tmp_path, bad=False, crash_after=12, before=False)
    edited = dict(crashrun.PLAN, policy={"recheck_interval": "3m"})
    plan = gatekeeper.Plan.from_mapping(edited)
    store = SQLiteStore(tmp_path / "journal.sqlite3")

    def rollout(**options: Any) -> gatekeeper.Rollout:
        return crashrun.rollout(tmp_path, store, plan=plan, **options)

    try:
        with pytest.raises(gatekeeper.GatekeeperError, match="the plan changed since it started"):
            asyncio.run(rollout().start())
        result = rollout(restart=True).run_sync()
        assert RunOutcome.ADVANCED == result.outcome
        statuses = sorted(r.status for r in store.runs())
        assert ["advanced", "restarted"] == statuses
    finally:
        store.close()


def test_a_later_phase_needs_the_one_before_it_advanced(tmp_path: Path) -> None:
    """Running the ramp alone is refused until the canary advanced, unless forced."""
    plan = gatekeeper.Plan.from_mapping(crashrun.PLAN)
    store = SQLiteStore(tmp_path / "journal.sqlite3")

    def rollout(**options: Any) -> gatekeeper.Rollout:
        return crashrun.rollout(tmp_path, store, plan=plan, **options)

    try:
        with pytest.raises(
            gatekeeper.GatekeeperError, match="'ramp' follows 'canary', which has not advanced"
        ):
            rollout().run_sync(["ramp"])
        assert RunOutcome.ADVANCED == rollout().run_sync(["canary"]).outcome
        assert RunOutcome.ADVANCED == rollout().run_sync(["ramp"]).outcome
        assert RunOutcome.ADVANCED == rollout(force=True).run_sync(["full"]).outcome
    finally:
        store.close()


def test_the_balancer_is_put_back_to_the_journal_before_anything_else(tmp_path: Path) -> None:
    """Someone moved traffic while the run was down: resuming restores the confirmed split."""
    assert not run_once(tmp_path, bad=False, crash_after=20, before=False)
    events = journal(tmp_path)
    confirmed = [e.data["canary"] for e in events if e.kind == "traffic_confirmed"][-1]
    FileBackend(tmp_path / "split.json").set_split(50.0)  # by hand, unrecorded
    while not run_once(tmp_path, bad=False, crash_after=None, before=False):
        pass
    after = journal(tmp_path)
    reconcile = next(e for e in after if e.kind == "traffic_reconcile")
    assert (50.0, confirmed) == (reconcile.data["found"], reconcile.data["wanted"])
    assert "advanced" == [e.data["outcome"] for e in after if e.kind == "run_ended"][-1]
