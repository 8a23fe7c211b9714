"""Latency judged distribution-free from a histogram, against a real Prometheus: the
share of requests slower than a bucket bound, as a ratio metric (slow requests over
all requests), compared canary against baseline by the counts judge. The tail's shape
does not matter: a healthy canary advances, a canary with three times the slow share
rolls back. (Backfilled histograms, backtested with ``rehearse --since``.)"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from realservers.prometheus import PrometheusLauncher, PrometheusServer, openmetrics_family

pytestmark = pytest.mark.servers

STEP = 15.0
START = time.time() - 3 * 3600  # three hours of history, in the past
POINTS = int(3 * 3600 / STEP) - 40


def histogram(
    version: str, rate: float, slow: float
) -> list[tuple[str, dict[str, str], list[tuple[float, float]]]]:
    """Cumulative counters of a histogram: ``rate`` req/s, ``slow`` of them over 0.2 s."""
    total = [(START + i * STEP, rate * STEP * i) for i in range(POINTS)]
    fast = [(t, v * (1 - slow)) for t, v in total]
    labels = {"version": version}
    return [
        ("http_request_duration_seconds_bucket", {**labels, "le": "0.2"}, fast),
        ("http_request_duration_seconds_bucket", {**labels, "le": "+Inf"}, total),
        ("http_request_duration_seconds_count", labels, total),
    ]


BUCKET = 'http_request_duration_seconds_bucket{version="{{variant}}",le="%s"}'
SLOW = (
    f"sum(increase({BUCKET % '+Inf'}[{{{{window}}}}]))"
    f" - sum(increase({BUCKET % '0.2'}[{{{{window}}}}]))"
)
ALL = 'sum(increase(http_request_duration_seconds_count{version="{{variant}}"}[{{window}}]))'


def plan_text(url: str, canary: str) -> str:
    return "\n".join(
        [
            "[plan]",
            'name = "latency-tail"',
            "[variants]",
            f'canary = "{canary}"',
            'baseline = "v1"',
            "[sources.prom]",
            'type = "prometheus"',
            f'url = "{url}"',
            "[metrics.slow_share]",
            'source = "prom"',
            f"numerator = '{SLOW}'",
            f"denominator = '{ALL}'",
            "[[phases]]",
            'name = "ramp"',
            "traffic = 10",
            'checkpoints = ["10m", "20m", "30m", "40m", "50m", "1h"]',
            'gate = ["slow_share canary <= baseline * 1.2"]',
        ]
    )


@pytest.fixture(scope="module")
def prometheus(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    series = [
        *histogram("v1", 90.0, 0.10),  # the baseline: 10 % of requests slower than 200 ms
        *histogram("v2", 10.0, 0.10),  # a healthy canary: the same tail
        *histogram("v3", 10.0, 0.30),  # a slower canary: three times the slow share
    ]
    server = prometheus_launcher.backfilled(
        openmetrics_family("http_request_duration_seconds", "histogram", series) + "# EOF\n"
    )
    yield server
    server.stop()


def backtest(
    tmp_path: Path, server: PrometheusServer, canary: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{canary}.toml"
    path.write_text(plan_text(server.url, canary))
    since = datetime.fromtimestamp(START + 600, UTC).isoformat()
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", "rehearse", str(path), "--since", since],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_healthy_tail_advances(tmp_path: Path, prometheus: PrometheusServer) -> None:
    done = backtest(tmp_path, prometheus, "v2")
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "INCONCLUSIVE" not in done.stdout  # every look had its counts


def test_three_times_the_slow_share_rolls_back(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    done = backtest(tmp_path, prometheus, "v3")
    assert 1 == done.returncode, done.stdout + done.stderr
    result = done.stdout.strip().splitlines()[-1]
    assert "rolled back: gate failed: slow_share vs baseline" in result  # a FAIL, not no data
