"""The ``gatekeeper`` command end to end on the reference plan and its recordings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"
PLAN = EXAMPLE / "gates.toml"


def gatekeeper(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("recording", "code", "last_line"),
    [
        ("healthy.csv", 0, "result: ADVANCED · canary at 100% · every phase advanced"),
        (
            "bad-canary.csv",
            1,
            "result: ROLLED BACK · canary at 0% · ramp: rolled back: watch at 3m into ramp, "
            "before its 15m checkpoint: error_rate: 0.9% is not < 0.5% for 1m",
        ),
        (
            "no-data.csv",
            1,
            "result: ROLLED BACK · canary at 0% · ramp: rolled back: gate inconclusive 3 times",
        ),
    ],
)
def test_rehearsing_the_reference_plan(recording: str, code: int, last_line: str) -> None:
    """The three shipped recordings give their documented outcomes and exit codes."""
    done = gatekeeper("rehearse", str(PLAN), "--metrics", str(EXAMPLE / recording))
    assert code == done.returncode, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(last_line)
    assert "" == done.stderr


def test_bad_canary_is_stopped_by_the_ramps_watch_whole_or_phase_only() -> None:
    """A phase rehearsal lines the recording up as a whole-plan rehearsal does: the error
    rate jumps 2 minutes into the ramp, the watch sees it fail for its minute and rolls
    back at 3m, twelve minutes before the first checkpoint."""
    whole = gatekeeper("rehearse", str(PLAN), "--metrics", str(EXAMPLE / "bad-canary.csv"))
    phase = gatekeeper(
        "rehearse", str(PLAN), "--metrics", str(EXAMPLE / "bad-canary.csv"), "--phase", "ramp"
    )
    for done in (whole, phase):
        assert 1 == done.returncode
        assert "! watch: error_rate < 0.5% for 1m: failing (0.9% is not < 0.5%)" in done.stdout
        assert "ramp @ 15m (the watch, before it): FAIL" in done.stdout
        assert "→ ROLLBACK: watch at 3m into ramp, before its 15m checkpoint" in done.stdout
        assert "traffic: canary 10% → 0% confirmed" in done.stdout


def test_output_shows_phase_traffic_each_metric_and_the_next_checkpoint() -> None:
    """What a person follows: phase and share, each metric against its bound, next due."""
    done = gatekeeper("rehearse", str(PLAN), "--metrics", str(EXAMPLE / "healthy.csv"))
    out = done.stdout
    assert "▶ phase ramp [+14h] · canary 10% / baseline 90%" in out
    assert any(
        line.strip().startswith("✓ latency_p99") and line.endswith(" 42ms < 200ms")
        for line in out.splitlines()
    )
    assert "next: 30m at 2026-01-01 14:30:00 UTC (in 15m)" in out
    assert "approval: given by rehearsal" in out


def test_validate_accepts_the_reference_plan() -> None:
    """``validate`` builds every source and the backend from the plan without I/O."""
    done = gatekeeper("validate", str(PLAN))
    assert 0 == done.returncode, done.stderr
    assert "ok: plan 'progressive-rollout'" in done.stdout


def test_bad_plan_is_one_located_line_exit_2_no_traceback(tmp_path: Path) -> None:
    """A typo in a criterion names the file, the line, the key path and the known metrics."""
    text = PLAN.read_text().replace('"latency_p99 < 200ms"', '"latency_p9 < 200ms"')
    broken = tmp_path / "gates.toml"
    broken.write_text(text)
    line = text.splitlines().index('    "latency_p9 < 200ms",') + 1
    done = gatekeeper("validate", str(broken))
    assert 2 == done.returncode
    assert "Traceback" not in done.stderr
    assert (
        f"gatekeeper: {broken}:{line}: phases[1].gate[1]: unknown metric 'latency_p9' "
        "(known: availability, critical_incidents, error_rate, latency_p99, revenue_per_user)\n"
    ) == done.stderr


def test_unknown_source_option_is_located(tmp_path: Path) -> None:
    """A misspelled source option fails validation with its line, not at run time."""
    text = PLAN.read_text().replace('timeout = "10s"', 'timeuot = "10s"')
    broken = tmp_path / "gates.toml"
    broken.write_text(text)
    done = gatekeeper("validate", str(broken))
    assert 2 == done.returncode
    line = text.splitlines().index('timeuot = "10s"') + 1
    assert done.stderr.startswith(f"gatekeeper: {broken}:{line}: sources.prom.timeuot: ")


def test_unknown_phase_lists_the_known_ones() -> None:
    """``--phase`` with a typo exits 2 and lists the phases."""
    done = gatekeeper(
        "rehearse", str(PLAN), "--metrics", str(EXAMPLE / "healthy.csv"), "--phase", "rmap"
    )
    assert 2 == done.returncode
    assert (
        "unknown phase 'rmap' (known: canary, ramp, rollout, baseline-confirmation)" in done.stderr
    )


def test_bad_recording_names_file_and_line(tmp_path: Path) -> None:
    """A broken recording row is reported with its file and line, exit 2."""
    recording = tmp_path / "r.csv"
    recording.write_text("at,metric,value\n0,error_rate,0.1\nsoon,error_rate,0.2\n")
    done = gatekeeper("rehearse", str(PLAN), "--metrics", str(recording))
    assert 2 == done.returncode
    assert done.stderr.startswith(f"gatekeeper: {recording}:3: at: expected a duration")


def test_recording_with_an_unknown_metric_is_refused(tmp_path: Path) -> None:
    """A metric the plan does not know is a typo in the recording, not silent no-data."""
    recording = tmp_path / "r.csv"
    recording.write_text("at,metric,value\n0,eror_rate,0.1\n")
    done = gatekeeper("rehearse", str(PLAN), "--metrics", str(recording))
    assert 2 == done.returncode
    assert "unknown metric 'eror_rate'" in done.stderr


def test_withheld_approval_holds_with_exit_3(tmp_path: Path) -> None:
    """An approval the recording withholds stops the run held, never advanced."""
    recording = tmp_path / "r.csv"
    text = (EXAMPLE / "healthy.csv").read_text() + "0,approval:ramp,\n"
    recording.write_text(text)
    done = gatekeeper("rehearse", str(PLAN), "--metrics", str(recording))
    assert 3 == done.returncode
    assert "result: HELD" in done.stdout


def test_usage_errors_exit_2() -> None:
    """Missing arguments are usage errors (exit 2)."""
    done = gatekeeper("rehearse", str(PLAN))
    assert 2 == done.returncode
    assert "one of the arguments --metrics --since is required" in done.stderr


def test_a_misspelled_metric_option_is_located(tmp_path: Path) -> None:
    """A source-specific metric option with a typo fails validation with its line."""
    text = PLAN.read_text().replace('path = "$.value"', 'pth = "$.value"')
    broken = tmp_path / "gates.toml"
    broken.write_text(text)
    done = gatekeeper("validate", str(broken))
    assert 2 == done.returncode
    line = text.splitlines().index('pth = "$.value"') + 1
    assert done.stderr.startswith(
        f"gatekeeper: {broken}:{line}: metrics.revenue_per_user.pth: unknown option"
    )
