"""Three regions, each behind its own real HAProxy, judged on region-labelled
metrics in one real Prometheus: wave by wave to 100 %, or a failure in the second
region rolled back there (0 % read back from the balancer, bounded load proves
it), the third region never touched, and the first following on_fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper import Plugins, RunOutcome, SimulatedClock
from gatekeeper._fleet import FleetEvent, FleetResult, fleet_from_text, run_fleet
from gatekeeper.store.sqlite import SQLiteStore
from realservers.haproxy import HAProxyLauncher, HAProxyServer, Upstreams, burst
from realservers.prometheus import PrometheusLauncher, PrometheusServer, openmetrics_series

pytestmark = pytest.mark.servers

REGIONS = ("r1", "r2", "r3")
# Five hours of history ending two days ago: in the TSDB's reach, in the past.
T0 = (datetime.now(UTC) - timedelta(days=2, hours=5)).replace(second=0, microsecond=0)
MINUTES = 300
START = T0 + timedelta(minutes=20)


def _history() -> str:
    """Per-minute request counters by service, region, version and code; in service
    "bad" the canary (v2) of r2 answers 5 % errors, everywhere else 0.1 %."""
    lines = ["# TYPE http_requests counter\n"]
    for service in ("good", "bad"):
        for region in REGIONS:
            for version in ("v1", "v2"):
                rate = 0.05 if (service, region, version) == ("bad", "r2", "v2") else 0.001
                for code, share in (("200", 1 - rate), ("500", rate)):
                    total, points = 0.0, []
                    for minute in range(MINUTES + 1):
                        at = T0 + timedelta(minutes=minute)
                        points.append((at.timestamp(), total))
                        total += 600 * share
                    labels = {"service": service, "region": region, "version": version}
                    lines.append(
                        openmetrics_series("http_requests_total", {**labels, "code": code}, points)
                    )
    lines.append("# TYPE incidents gauge\n")
    for region in REGIONS:
        points = [((T0 + timedelta(minutes=m)).timestamp(), 0.0) for m in range(0, MINUTES + 1, 5)]
        lines.append(openmetrics_series("incidents", {"region": region}, points))
    return "".join(lines) + "# EOF\n"


PLAN = """
[plan]
name = "regions-{service}-{on_fail}"
[variants]
canary = "v2"
baseline = "v1"
[args]
service = "{service}"
[sources.prom]
type = "prometheus"
url = "{url}"
timeout = "5s"
[metrics.error_rate]
source = "prom"
numerator = '''sum(increase(http_requests_total{{service="{{{{service}}}}",
    region="{{{{region}}}}",version="{{{{variant}}}}",code="500"}}[{{{{window}}}}]))'''
denominator = '''sum(increase(http_requests_total{{service="{{{{service}}}}",
    region="{{{{region}}}}",version="{{{{variant}}}}"}}[{{{{window}}}}]))'''
[metrics.incidents]
source = "prom"
query = 'max(max_over_time(incidents{{region="{{{{region}}}}"}}[{{{{window}}}}]))'
[[phases]]
name = "canary"
traffic = 10
checkpoints = ["10m", "20m"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["10m"]
gate = ["error_rate < 1%"]
[fleet]
on_fail = "{on_fail}"
entry = ["incidents == 0"]
requests = "error_rate"
{targets}
[[waves]]
name = "first"
targets = ["r1"]
bake = {{ for = "30m", requests = 1000 }}
[[waves]]
name = "second"
targets = ["r2"]
bake = {{ for = "20m" }}
[[waves]]
name = "third"
targets = ["r3"]
"""

TARGET = """
[targets.{region}]
args = {{ region = "{region}" }}
[targets.{region}.traffic]
type = "haproxy"
socket = "{socket}"
backend = "app"
canary = "canary"
baseline = "baseline"
"""


@pytest.fixture(scope="module")
def prometheus(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    server = prometheus_launcher.backfilled(_history())
    yield server
    server.stop()


@pytest.fixture
def regions(
    haproxy_launcher: HAProxyLauncher, upstreams: Upstreams
) -> Iterator[dict[str, HAProxyServer]]:
    """One real HAProxy per region, all traffic on the baseline."""
    servers = {region: haproxy_launcher.start(upstreams) for region in REGIONS}
    yield servers
    for server in servers.values():
        server.stop()


def fleet_run(
    prometheus: PrometheusServer,
    regions: dict[str, HAProxyServer],
    tmp_path: Path,
    *,
    service: str,
    on_fail: str,
) -> tuple[FleetResult, SQLiteStore]:
    targets = "".join(TARGET.format(region=r, socket=regions[r].socket_path) for r in REGIONS)
    text = PLAN.format(service=service, on_fail=on_fail, url=prometheus.url, targets=targets)
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    fleet = fleet_from_text(text, path=str(path))
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    result = asyncio.run(
        run_fleet(
            fleet,
            store=store,
            plugins=Plugins(load_entry_points=False),
            clock=SimulatedClock(START),
            clock_at=SimulatedClock,
        )
    )
    return result, store


def share(server: HAProxyServer) -> float:
    """The canary's share as HAProxy itself reports the weights."""
    canary = int(server.command("get weight app/canary").split()[0])
    baseline = int(server.command("get weight app/baseline").split()[0])
    return 100.0 * canary / (canary + baseline)


def test_a_healthy_release_reaches_all_three_regions_wave_by_wave(
    prometheus: PrometheusServer, regions: dict[str, HAProxyServer], tmp_path: Path
) -> None:
    result, store = fleet_run(
        prometheus, regions, tmp_path, service="good", on_fail="rollback-wave"
    )
    try:
        assert RunOutcome.ADVANCED is result.outcome, result.reason
        assert dict.fromkeys(REGIONS, 100.0) == {r: share(s) for r, s in regions.items()}
        for server in regions.values():
            assert {"canary": 200} == dict(burst(server.url, 200))
        fleet_run_id = next(r.run_id for r in store.runs() if r.plan.endswith("@fleet"))
        started = [
            e.data["wave"] for e in store.events(fleet_run_id) if e.kind == FleetEvent.WAVE_STARTED
        ]
        assert ["first", "second", "third"] == started
        ends = [e.at for e in store.events(fleet_run_id) if e.kind == FleetEvent.TARGET_ENDED]
        assert ends == sorted(ends)
    finally:
        store.close()


@pytest.mark.parametrize(("on_fail", "first"), [("rollback-all", 0.0), ("rollback-wave", 100.0)])
def test_a_failure_in_the_second_region_is_rolled_back_there_and_stops_the_fleet(
    prometheus: PrometheusServer,
    regions: dict[str, HAProxyServer],
    tmp_path: Path,
    on_fail: str,
    first: float,
) -> None:
    """r2's canary fails: r2 back to 0 % (read back, and 200 requests all on the
    baseline), r3 never moved, r1 per on_fail."""
    result, store = fleet_run(prometheus, regions, tmp_path, service="bad", on_fail=on_fail)
    try:
        assert RunOutcome.ROLLED_BACK is result.outcome, result.reason
        assert "wave second: r2 failed" in result.reason
        r2 = next(r for r in store.runs() if r.plan.endswith("@r2"))
        verdicts = [e.data for e in store.events(r2.run_id) if e.kind == "verdict"]
        assert "fail" == verdicts[-1]["outcome"]
        assert 0.04 < float(verdicts[-1]["observed"]) < 0.06  # 5 %, as Prometheus holds it
        assert 0.0 == share(regions["r2"])
        assert {"baseline": 200} == dict(burst(regions["r2"].url, 200))
        assert 0.0 == share(regions["r3"])
        assert not any(r.plan.endswith("@r3") for r in store.runs())
        assert first == share(regions["r1"])
        expected = "canary" if first else "baseline"
        assert {expected: 200} == dict(burst(regions["r1"].url, 200))
    finally:
        store.close()
