"""Backtesting (``gatekeeper rehearse --since``) and ``gatekeeper check`` against a
real Prometheus holding exactly known, backfilled history."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from realservers.prometheus import PrometheusLauncher, PrometheusServer, openmetrics_series

pytestmark = pytest.mark.servers

# Three hours of history ending two days ago: in the TSDB's reach, safely in the past.
T0 = (datetime.now(UTC) - timedelta(days=2, hours=3)).replace(second=0, microsecond=0)
MINUTES = 180
GOOD = T0 + timedelta(minutes=10)  # a release window where the canary was healthy
BAD = T0 + timedelta(minutes=100)  # one where its errors jumped at +15m
JUMP = BAD + timedelta(minutes=15)


def _counter(per_minute: dict[str, float]) -> list[tuple[float, float]]:
    """A counter whose per-minute increase changes at JUMP (``before``/``after``)."""
    points = []
    total = 0.0
    for minute in range(MINUTES + 1):
        at = T0 + timedelta(minutes=minute)
        points.append((at.timestamp(), total))
        total += per_minute["after" if at >= JUMP else "before"]
    return points


def _history() -> str:
    lines = ["# TYPE http_requests counter\n"]
    series: dict[tuple[str, str], dict[str, float]] = {
        ("200", "v1"): {"before": 900, "after": 900},
        ("500", "v1"): {"before": 1, "after": 1},
        ("200", "v2"): {"before": 600, "after": 570},
        ("500", "v2"): {"before": 0.6, "after": 30},  # 0.1 % → 5 %
    }
    for (code, version), rates in series.items():
        lines.append(
            openmetrics_series(
                "http_requests_total", {"code": code, "version": version}, _counter(rates)
            )
        )
    return "".join(lines) + "# EOF\n"


PLAN = """
[plan]
name = "backtest"
[variants]
canary = "v2"
baseline = "v1"
[sources.prom]
type = "prometheus"
url = "{url}"
timeout = "5s"
[metrics.error_rate]
source = "prom"
numerator = '''sum(increase(http_requests_total{{version="{{{{variant}}}}",
    code="500"}}[{{{{window}}}}]))'''
denominator = 'sum(increase(http_requests_total{{version="{{{{variant}}}}"}}[{{{{window}}}}]))'
[traffic]
type = "memory"
[[phases]]
name = "canary"
traffic = 10
checkpoints = ["10m", "20m", "30m"]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 50
checkpoints = ["10m", "20m"]
gate = [
    "error_rate < 1%",
    {{ criterion = "error_rate canary <= baseline * 2", fail_only = true }},
]
"""


@pytest.fixture(scope="module")
def server(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    started = prometheus_launcher.backfilled(_history())
    yield started
    started.stop()


@pytest.fixture(scope="module")
def plan(server: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "gates.toml"
    path.write_text(PLAN.format(url=server.url))
    return path


def gatekeeper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_good_window_advances(plan: Path) -> None:
    """Backtesting a window where the canary was healthy advances every phase."""
    done = gatekeeper("rehearse", str(plan), "--since", GOOD.isoformat())
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "result: ADVANCED" in done.stdout
    assert "✓ error_rate" in done.stdout


def test_a_bad_window_rolls_back_at_the_first_checkpoint_after_the_jump(plan: Path) -> None:
    """Errors jumped 15 minutes into the window: the 20m checkpoint rolls back."""
    done = gatekeeper("rehearse", str(plan), "--since", BAD.isoformat())
    assert 1 == done.returncode, done.stdout + done.stderr
    assert "canary @ 10m: PASS" in done.stdout
    assert "canary @ 20m: FAIL" in done.stdout
    assert "result: ROLLED BACK" in done.stdout


def test_a_window_in_the_future_is_refused(plan: Path) -> None:
    """A backtest must lie in the past."""
    soon = datetime.now(UTC) - timedelta(minutes=5)
    done = gatekeeper("rehearse", str(plan), "--since", soon.isoformat())
    assert 2 == done.returncode
    assert "in the future" in done.stderr


def test_check_shows_each_query_and_why_it_has_no_value(plan: Path) -> None:
    """``check`` judges now: the history is two days old, so every query is empty, and
    the output says which query, on which source, and why — inconclusive, exit 3."""
    done = gatekeeper("check", str(plan), "--phase", "ramp")
    assert 3 == done.returncode, done.stdout + done.stderr
    assert "error_rate < 1%: INCONCLUSIVE" in done.stdout
    assert 'http_requests_total{version="v2",' in done.stdout
    assert "from prom" in done.stdout
    assert "empty" in done.stdout.lower()
