"""Kill a real rollout process with SIGKILL at random points many times, resume it
each time, and count invariant violations (journal, decisions, verdicts, traffic).

Run: .venv/bin/python benchmarks/kill_resume.py [--kills 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from journal_invariants import check
from killrun import kill_until_done
from test_resume import changes, journal, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kills = resumes = runs = violations = 0
    began = time.perf_counter()
    while kills < args.kills:
        bad = runs % 2 == 1
        directory = Path(tempfile.mkdtemp())
        report = kill_until_done(directory, bad=bad, kills=15, rng=rng, delay=0.01)
        runs += 1
        kills += report.kills
        resumes += report.resumes
        problems = check(journal(directory), reference(bad), changes(directory))
        violations += len(problems)
        for problem in problems:
            print(f"  run {runs} ({directory}): {problem}")
    elapsed = time.perf_counter() - began
    print(f"runs: {runs} (healthy and bad alternating)")
    print(f"kills (SIGKILL at random points): {kills}")
    print(f"resumes: {resumes}")
    print(f"invariant violations: {violations}")
    print(f"wall time: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
