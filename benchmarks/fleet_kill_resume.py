"""Kill a real three-target fleet process with SIGKILL at random moments many times,
resume it each time, and count fleets that did not end exactly like the fleet run
never killed (balancer histories, target runs and decisions, fleet steps).

Run: .venv/bin/python benchmarks/fleet_kill_resume.py [--kills 120] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from fleetkillrun import kill_until_done, outcome, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kills = resumes = runs = different = 0
    began = time.perf_counter()
    while kills < args.kills:
        bad = runs % 2 == 1
        directory = Path(tempfile.mkdtemp())
        report = kill_until_done(directory, bad=bad, kills=8, rng=rng, delay=0.01)
        runs += 1
        kills += report.kills
        resumes += report.resumes
        expected_code = 1 if bad else 0
        if report.exit_code != expected_code or reference(bad) != outcome(directory):
            different += 1
            print(f"  fleet {runs} ({directory}) differs from the uninterrupted run")
    elapsed = time.perf_counter() - began
    print(f"fleets: {runs} (healthy and failing alternating)")
    print(f"kills (SIGKILL at random moments): {kills}")
    print(f"resumes: {resumes}")
    print(f"fleets ending differently from the uninterrupted run: {different}")
    print(f"wall time: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
