"""The most common real query: a service that never answered 5xx has no ``code=~"5.."``
series at all, so the error-rate numerator is an empty result. Over a positive
denominator that is 0 events, not "no data" (a healthy canary was rolled back 20 s in
for it); an empty denominator stays no data. Against a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import gatekeeper
from gatekeeper import Outcome
from realservers.prometheus import PrometheusLauncher, PrometheusServer, openmetrics_family

pytestmark = pytest.mark.servers

NOW = time.time()
POINTS = [(NOW - 3600 + 15 * i, 100.0 * i) for i in range(200)]


def plan_for(server: PrometheusServer) -> gatekeeper.Plan:
    def ratio(version: str) -> dict[str, str]:
        selector = f'version="{version}"'
        return {
            "source": "prom",
            "numerator": f'sum(increase(http_requests_total{{{selector},code=~"5.."}}[10m]))',
            "denominator": f"sum(increase(http_requests_total{{{selector}}}[10m]))",
        }

    return gatekeeper.Plan.from_mapping(
        {
            "plan": {"name": "ratio"},
            "sources": {"prom": {"type": "prometheus", "url": server.url}},
            "metrics": {"error_rate": ratio("v2"), "ghost_rate": ratio("ghost")},
            "phases": [
                {
                    "name": "canary",
                    "traffic": 5,
                    "checkpoints": ["1m"],
                    "gate": ["error_rate < 1%"],
                },
                {"name": "ghost", "traffic": 5, "checkpoints": ["1m"], "gate": ["ghost_rate < 1%"]},
            ],
        }
    )


@pytest.fixture(scope="module")
def prometheus(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    data = openmetrics_family(
        "http_requests",
        "counter",
        [
            ("http_requests_total", {"version": "v2", "code": "200"}, POINTS),
            ("http_requests_total", {"version": "v1", "code": "200"}, POINTS),
        ],
    )
    server = prometheus_launcher.backfilled(data + "# EOF\n")
    yield server
    server.stop()


def test_no_5xx_series_over_real_requests_is_a_zero_error_rate(
    prometheus: PrometheusServer,
) -> None:
    at = datetime.fromtimestamp(NOW - 600, UTC)
    assert [] == prometheus.query('http_requests_total{code=~"5.."}', at=at.timestamp())["result"]
    result = gatekeeper.check(plan_for(prometheus), "canary", clock=_at(at))
    verdict = result.verdicts[0]
    assert Outcome.PASS == verdict.outcome, verdict.reason
    assert 0.0 == verdict.observed
    canary = verdict.measurements[0]
    assert 0.0 == canary.numerator
    assert canary.denominator is not None and canary.denominator > 0


def test_an_empty_denominator_stays_no_data(prometheus: PrometheusServer) -> None:
    at = datetime.fromtimestamp(NOW - 600, UTC)
    result = gatekeeper.check(plan_for(prometheus), "ghost", clock=_at(at))
    verdict = result.verdicts[0]
    assert Outcome.INCONCLUSIVE == verdict.outcome
    assert "denominator" in verdict.reason


def _at(moment: datetime) -> gatekeeper.SimulatedClock:
    return gatekeeper.SimulatedClock(moment - timedelta(seconds=0))
