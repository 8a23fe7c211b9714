"""A real process killed with SIGKILL at random points, resumed each time: the
journal and the balancer say it went exactly as a run that was never killed."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from journal_invariants import check
from killrun import kill_until_done
from test_resume import changes, journal, reference

KILLS = 50


def test_fifty_sigkills_at_random_points_each_resumed() -> None:
    """At least 50 kills over healthy and bad rollouts; every run, resumed after each
    kill, ends like the run that was never killed (decisions, verdicts, traffic)."""
    rng = random.Random(20261121)
    kills = resumes = runs = 0
    while kills < KILLS:
        bad = runs % 2 == 1
        directory = Path(tempfile.mkdtemp())
        report = kill_until_done(directory, bad=bad, kills=12, rng=rng, delay=0.01)
        runs += 1
        kills += report.kills
        resumes += report.resumes
        assert (1 if bad else 0) == report.exit_code
        assert [] == check(journal(directory), reference(bad), changes(directory)), directory
        split = json.loads((directory / "split.json").read_text())
        assert (0.0 if bad else 100.0) == split["canary"]
    assert kills >= KILLS
    assert resumes >= kills - runs  # a run's last kill may land after it ended
