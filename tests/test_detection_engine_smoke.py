"""The through-the-engine detection benchmark runs: a few runs of the reference ramp,
watched every 5 s and at its checkpoints only, agree with the judge's arithmetic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_engine_detection_benchmark_probe_runs_and_agrees_with_the_judge() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "detection_engine.py"),
            "--probe",
            "2",
            "--runs",
            "healthy=1,x5=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "MISMATCH" not in done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    plans = {(row[1], row[2]) for row in rows[2:]}
    assert plans == {
        (canary, plan) for canary in ("healthy", "x5") for plan in ("checkpoints", "watch 5s")
    }
    for row in rows[2:]:
        assert "[" in row[4]  # a Clopper-Pearson interval
    # x5 at 1 %: the watch finds it before the 15m checkpoint would
    assert "# 1% x5 watch 5s: {'FAIL by the watch': 2}" in done.stdout
