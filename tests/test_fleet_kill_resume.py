"""A real fleet process killed with SIGKILL at random moments, resumed each time:
every target ends where a fleet run never killed ends, no traffic change repeated."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from fleetkillrun import kill_until_done, outcome, reference

KILLS = 30


def test_sigkills_at_random_moments_change_nothing() -> None:
    """At least 30 kills over healthy and failing fleets (a failure in the second wave
    with rollback-all): each ends with the balancer histories, target runs, decisions
    and fleet steps of the uninterrupted run."""
    rng = random.Random(20261127)
    kills = runs = 0
    while kills < KILLS:
        bad = runs % 2 == 1
        directory = Path(tempfile.mkdtemp())
        report = kill_until_done(directory, bad=bad, kills=8, rng=rng, delay=0.01)
        runs += 1
        kills += report.kills
        assert (1 if bad else 0) == report.exit_code
        assert reference(bad) == outcome(directory), directory
    assert kills >= KILLS
