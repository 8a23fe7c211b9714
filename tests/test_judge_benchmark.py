"""The detection benchmarks' quick modes run, check the library against their vectorised
copies, and report every judge of every cell they simulate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_detection_benchmark_runs_through_the_engine_and_reports_every_judge() -> None:
    """``detection.py --quick`` drives every run through the engine and exits 0 within
    two minutes: every engine FAIL time equals the judge's copy's (it stops otherwise),
    the means copy agrees with the library, an unbounded mean gets no verdict, and each
    row carries a Clopper-Pearson interval."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "detection.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "MISMATCH" not in done.stderr
    assert "means copy vs library" in done.stderr
    assert "unbounded revenue: 0 verdicts" in done.stderr
    healthy = done.stdout.split("### Regressions")[0]
    rows = [line.split(" | ") for line in healthy.splitlines() if line.startswith("| ")]
    judges = {(row[0].removeprefix("| "), row[2]) for row in rows[2:]}
    assert {
        ("errors/base", "default"),
        ("errors/base", "z/look"),
        ("errors/nb k=1", "dispersion 2"),
        ("errors/bursts", "bursts 30% / 17m"),
        ("latency/lognormal1.5", "tail p50"),
        ("latency/lognormal1.5", "tail p90"),
        ("revenue/lognormal1.5 >=", "bounded mean"),
    } <= judges
    for row in rows[2:]:
        assert 7 == len(row)
        assert "[" in row[5]
        assert row[3] in ("engine", "—")
    assert "| errors/base | x5 | 1% | default | 8 | 100.0% |" in done.stdout


def test_quick_fail_only_power_benchmark_runs() -> None:
    """``fail_only_power.py`` with few runs exits 0 and prints its table."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fail_only_power.py"), "--runs", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "availability > 99.95 %" in done.stdout
