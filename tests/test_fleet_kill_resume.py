"""A real fleet process killed with SIGKILL at random moments, resumed each time:
every target ends where a fleet run never killed ends, no traffic change repeated."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import fleetcrashrun
from fleetkillrun import kill_until_done, outcome, reference
from gatekeeper.store.sqlite import SQLiteStore

KILLS = 30


def test_sigkills_at_random_moments_change_nothing() -> None:
    """At least 30 kills over healthy and failing fleets (a failure in the second wave
    with rollback-all): each ends with the balancer histories, target runs, decisions
    and fleet steps of the uninterrupted run."""
    rng = random.Random(20261127)
    kills = runs = 0
    while kills < KILLS and runs < 4 * KILLS:  # bounded: a fleet that ends first kills 0
        bad = runs % 2 == 1
        directory = Path(tempfile.mkdtemp())
        report = kill_until_done(directory, bad=bad, kills=8, rng=rng, delay=0.01)
        runs += 1
        kills += report.kills
        assert (1 if bad else 0) == report.exit_code
        assert reference(bad) == outcome(directory), directory
    assert kills >= KILLS


def test_a_fleet_killed_after_journaling_its_end_is_reported_not_resumed() -> None:
    """Killed between journaling ``fleet_ended`` and marking the run finished (a moment
    the random kills found): run again, the fleet run is reported as it ended — no
    ``fleet_resumed``, no second end — and its status is completed."""
    directory = Path(tempfile.mkdtemp())
    assert 1 == fleetcrashrun.run(directory, bad=True).exit_code
    store = SQLiteStore(directory / "journal.sqlite3")
    try:
        (fleet,) = [r for r in store.runs() if r.plan.endswith("@fleet")]
        store.set_status(fleet.run_id, "running")  # the status the dead process left
    finally:
        store.close()
    again = fleetcrashrun.run(directory, bad=True)
    assert 1 == again.exit_code
    assert "already finished" in again.reason
    assert reference(True) == outcome(directory)
    store = SQLiteStore(directory / "journal.sqlite3")
    try:
        (fleet,) = [r for r in store.runs() if r.plan.endswith("@fleet")]
        assert "rolled back" == fleet.status
    finally:
        store.close()
