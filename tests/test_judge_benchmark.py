"""The detection benchmark's quick mode runs, checks the library against its vectorised
copy, and reports every judge for every cell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "detection.py"


def test_quick_benchmark_runs_and_reports_every_judge() -> None:
    """``detection.py --quick`` exits 0 within a minute, its replica agrees with
    ``gatekeeper._judge``, and the sequential judge raises no false alarm on the
    healthy error-rate cells."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "library vs replica" in done.stderr
    blocks = done.stdout.split("\n\n")[1:]
    assert len(blocks) == 16
    for block in blocks:
        for judge in ("threshold", "fixed/look", "fixed/ckpt", "sequential", "oracle"):
            assert f"  {judge} " in block
    for block in blocks:
        if block.startswith("errors healthy @"):
            line = next(x for x in block.splitlines() if "sequential" in x)
            assert "alarms   0.0%" in line
