"""The prometheus source against a real, backfilled Prometheus: exact values."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import prometheus
from realservers.prometheus import (
    PrometheusLauncher,
    PrometheusServer,
    openmetrics_family,
    openmetrics_series,
)

pytestmark = pytest.mark.servers

# Two days ago, on the minute: inside the TSDB's reach, safely in the past.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
MINUTES = 60
CHECK = T0 + timedelta(minutes=30)


def _points(per_minute: float) -> list[tuple[float, float]]:
    """A counter growing by ``per_minute`` every minute from 0 at T0."""
    return [
        ((T0 + timedelta(minutes=m)).timestamp(), float(per_minute * m)) for m in range(MINUTES + 1)
    ]


def _constant(value: float) -> list[tuple[float, float]]:
    return [((T0 + timedelta(minutes=m)).timestamp(), value) for m in range(MINUTES + 1)]


def _history() -> str:
    lines = ["# TYPE http_requests counter\n"]
    # canary: 98 ok + 2 errors a minute (2 %); baseline: 199 ok + 1 error (0.5 %)
    for code, version, rate in (
        ("200", "baseline", 199),
        ("200", "canary", 98),
        ("500", "baseline", 1),
        ("500", "canary", 2),
    ):
        lines.append(
            openmetrics_series(
                "http_requests_total", {"code": code, "version": version}, _points(rate)
            )
        )
    lines.append("# TYPE request_duration_seconds histogram\n")
    buckets = {"0.05": 900, "0.1": 950, "0.2": 990, "0.5": 1000, "+Inf": 1000}
    for le, count in buckets.items():
        lines.append(
            openmetrics_series(
                "request_duration_seconds_bucket",
                {"le": le, "version": "canary"},
                _constant(float(count)),
            )
        )
    lines.append(
        openmetrics_series(
            "request_duration_seconds_count", {"version": "canary"}, _constant(1000.0)
        )
    )
    lines.append(
        openmetrics_series("request_duration_seconds_sum", {"version": "canary"}, _constant(60.0))
    )
    lines.append(
        openmetrics_family(
            "odd",
            "gauge",
            [
                ("odd", {"kind": "inf"}, _constant(math.inf)),
                ("odd", {"kind": "nan"}, _constant(math.nan)),
            ],
        )
    )
    return "".join(lines) + "# EOF\n"


@pytest.fixture(scope="module")
def server(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    started = prometheus_launcher.backfilled(_history())
    yield started
    started.stop()


@pytest.fixture(scope="module")
def source(server: PrometheusServer) -> prometheus.PrometheusSource:
    return prometheus.create(
        "prom", {"url": server.url, "timeout": "5s"}, PluginContext(base_dir=Path(), env={})
    )


def ask(
    source: prometheus.PrometheusSource, text: str, *, variant: str = "canary", **options: Any
) -> Measurement:
    query = Query(
        metric="m",
        text=text,
        at=CHECK,
        window=timedelta(minutes=10),
        variant=variant,
        options=options,
    )
    return run(source, query)


def run(source: prometheus.PrometheusSource, query: Query, *, ranged: bool = False) -> Measurement:
    """One event loop per call, the source's own client closed before the loop ends."""

    async def go() -> Measurement:
        try:
            if ranged:
                return await source.query_range(query, step=timedelta(minutes=1))
            return await source.query(query)
        finally:
            await source.aclose()

    return asyncio.run(go())


def test_error_ratio_per_variant(source: prometheus.PrometheusSource) -> None:
    """The same templated ratio query gives each variant's exact error ratio."""
    text = (
        'sum(http_requests_total{version="{{variant}}",code="500"})'
        ' / sum(http_requests_total{version="{{variant}}"})'
    )
    canary = ask(source, text, variant="canary")
    baseline = ask(source, text, variant="baseline")
    assert canary.value == pytest.approx(0.02)
    assert baseline.value == pytest.approx(0.005)
    assert (canary.problem, baseline.problem) == (None, None)
    assert 'version="canary"' in canary.query
    assert canary.source == "prom"


def test_ratio_of_two_counts(source: prometheus.PrometheusSource) -> None:
    """Numerator and denominator are separate exact counts (the engine divides)."""
    errors = ask(
        source, 'sum(increase(http_requests_total{version="{{variant}}",code="500"}[{{window}}]))'
    )
    total = ask(source, 'sum(increase(http_requests_total{version="{{variant}}"}[{{window}}]))')
    assert errors.value == pytest.approx(20.0)
    assert total.value == pytest.approx(1000.0)


def test_p99_from_histogram(source: prometheus.PrometheusSource) -> None:
    """histogram_quantile over the backfilled buckets gives the exact p99 bound."""
    measured = ask(
        source,
        "histogram_quantile(0.99,"
        ' sum by (le) (request_duration_seconds_bucket{version="{{variant}}"}))',
    )
    assert measured.value == pytest.approx(0.2)
    assert measured.problem is None


def test_nan_is_reported_not_passed(source: prometheus.PrometheusSource) -> None:
    """A NaN sample comes back as NaN, and the measurement has a problem."""
    measured = ask(source, 'odd{kind="nan"}')
    assert measured.value is not None and math.isnan(measured.value)
    assert measured.problem == "value is NaN"


def test_inf_is_reported_not_passed(source: prometheus.PrometheusSource) -> None:
    """+Inf comes back as +Inf, and the measurement has a problem."""
    measured = ask(source, 'odd{kind="inf"}')
    assert measured.value == math.inf
    assert measured.problem == "value is +Inf"


def test_empty_result(source: prometheus.PrometheusSource) -> None:
    """A selector that matches nothing is no data with a reason, not zero."""
    measured = ask(source, 'http_requests_total{version="nope"}')
    assert measured.value is None
    assert measured.problem == "empty result: no series matched"


def test_several_series_without_pick_is_an_error(source: prometheus.PrometheusSource) -> None:
    """Two series and no pick: no value, and the reason lists both series."""
    measured = ask(source, "sum by (version) (http_requests_total)")
    assert measured.value is None
    assert measured.problem is not None
    assert measured.problem.startswith("2 series where one was expected")
    assert '{version="baseline"}' in measured.problem
    assert '{version="canary"}' in measured.problem


def test_pick_by_label_per_variant(source: prometheus.PrometheusSource) -> None:
    """pick = {version = "{{variant}}"} selects the variant's own series."""
    text = "sum by (version) (http_requests_total)"
    canary = ask(source, text, pick={"version": "{{variant}}"})
    baseline = ask(source, text, variant="baseline", pick={"version": "{{variant}}"})
    assert (canary.value, baseline.value) == (3000.0, 6000.0)
    assert canary.labels == ('{version="canary"}',)


def test_pick_sum(source: prometheus.PrometheusSource) -> None:
    """pick = "sum" adds the series up."""
    assert ask(source, "sum by (version) (http_requests_total)", pick="sum").value == 9000.0


def test_pick_matching_nothing(source: prometheus.PrometheusSource) -> None:
    """A pick that matches no series says which series there were."""
    measured = ask(source, "sum by (version) (http_requests_total)", pick={"version": "other"})
    assert measured.value is None
    assert measured.problem is not None
    assert "matched none of the 2 series" in measured.problem


def test_bad_query_is_a_status_error(source: prometheus.PrometheusSource) -> None:
    """A PromQL syntax error (HTTP 400, status error) is no data with Prometheus' message."""
    measured = ask(source, "sum(")
    assert measured.value is None
    assert measured.problem is not None
    assert measured.problem.startswith("status error: HTTP 400, bad_data:")
    assert measured.retries == 0


def test_arg_cannot_change_the_query(source: prometheus.PrometheusSource) -> None:
    """An arg crafted to close the string and widen the selector still matches nothing."""
    query = Query(
        metric="m",
        text='sum(http_requests_total{version="{{v}}"})',
        at=CHECK,
        window=timedelta(minutes=10),
        args={"v": 'canary"} or vector(1) or http_requests_total{version="'},
    )
    measured = run(source, query)
    assert measured.value is None
    assert measured.problem == "empty result: no series matched"


def test_range_query_series(source: prometheus.PrometheusSource) -> None:
    """query_range returns the window's samples at the step, value = the last one."""
    query = Query(
        metric="m",
        text='sum(http_requests_total{version="{{variant}}",code="500"})',
        at=CHECK,
        window=timedelta(minutes=5),
    )
    measured = run(source, query, ranged=True)
    assert [v for _t, v in measured.series] == [50.0, 52.0, 54.0, 56.0, 58.0, 60.0]
    assert measured.series[-1][0] == CHECK
    assert measured.value == 60.0


def test_query_at_the_past_moment(source: prometheus.PrometheusSource) -> None:
    """The query is evaluated at query.at (the checkpoint's time), not now."""
    early = Query(
        metric="m",
        text='sum(http_requests_total{version="canary"})',
        at=T0 + timedelta(minutes=10),
        window=timedelta(minutes=10),
    )
    assert run(source, early).value == 1000.0


def test_range_query_with_several_series(source: prometheus.PrometheusSource) -> None:
    """A range query over several series needs a pick too; pick = "sum" adds them per step."""
    query = Query(
        metric="m",
        text="sum by (version) (http_requests_total)",
        at=CHECK,
        window=timedelta(minutes=2),
    )
    without = run(source, query, ranged=True)
    summed = run(source, attrs.evolve(query, options={"pick": "sum"}), ranged=True)
    assert without.value is None
    assert without.problem is not None
    assert without.problem.startswith("2 series where one was expected")
    assert [v for _t, v in summed.series] == [8400.0, 8700.0, 9000.0]
