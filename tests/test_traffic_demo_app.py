"""The live demo's service and load generator, behind a real HAProxy moved by gatekeeper."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from gatekeeper._protocols import PluginContext
from gatekeeper.traffic.haproxy import create
from realservers import free_port, stop_process, wait_until
from realservers.haproxy import HAProxyLauncher, HAProxyServer

pytestmark = pytest.mark.servers

DEMO = Path(__file__).resolve().parent.parent / "examples" / "live-canary"


def load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("live_canary_loadgen", DEMO / "loadgen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


loadgen = load_loadgen()


def get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start_app(version: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(DEMO / "app.py"), "--port", str(port), "--version", version, *extra],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: get(url + "/healthz")[0] == 200, timeout=15, what=f"app {version}")
    return proc, url


@pytest.fixture(scope="module")
def apps() -> Iterator[tuple[str, str]]:
    """A healthy baseline and a canary failing one request in two."""
    baseline, baseline_url = start_app("baseline")
    canary, canary_url = start_app("canary", "--error-rate", "0.5")
    yield baseline_url, canary_url
    stop_process(baseline)
    stop_process(canary)


@pytest.fixture(scope="module")
def balancer(haproxy_launcher: HAProxyLauncher, apps: tuple[str, str]) -> HAProxyServer:
    addresses = (apps[0].removeprefix("http://"), apps[1].removeprefix("http://"))
    return haproxy_launcher.start(addresses)


def test_app_counts_requests_per_version_and_code(apps: tuple[str, str]) -> None:
    """The canary's 500s and 200s land in http_requests_total{version,code}; the
    latency histogram counts every request."""
    canary_url = apps[1]
    codes = [get(canary_url + "/")[0] for _ in range(40)]
    assert set(codes) <= {200, 500}
    assert 500 in codes
    _, metrics = get(canary_url + "/metrics")
    fails = codes.count(500)
    assert f'http_requests_total{{code="500",version="canary"}} {float(fails)}' in metrics
    assert f'http_requests_total{{code="200",version="canary"}} {float(40 - fails)}' in metrics
    assert 'http_request_duration_seconds_count{version="canary"} 40.0' in metrics


def test_admin_endpoint_turns_errors_on_and_off(apps: tuple[str, str]) -> None:
    """PUT /admin?error_rate=0 makes the canary healthy from then on."""
    canary_url = apps[1]
    assert get(canary_url + "/admin?error_rate=0", "PUT")[0] == 200
    assert {get(canary_url + "/")[0] for _ in range(20)} == {200}
    assert get(canary_url + "/admin?error_rate=0.5", "PUT")[0] == 200


def test_loadgen_sees_the_split_gatekeeper_sets_and_none_after_rollback(
    balancer: HAProxyServer,
) -> None:
    """25 % through HAProxy: the load generator counts about a quarter canary
    answers; after set_split(0) it counts none at all (the demo's 'bad' ending)."""
    backend = create(
        {"socket": str(balancer.socket_path), "backend": "app"},
        PluginContext(base_dir=Path("/x"), env={}),
    )
    backend.set_split(25)
    summary = loadgen.run(balancer.url + "/", count=800, duration=20, concurrency=4)
    assert summary.requests == 800
    assert summary.transport_errors == 0
    assert abs(100 * summary.versions["canary"] / 800 - 25) <= 2.5
    backend.set_split(0)
    after = loadgen.run(balancer.url + "/", count=400, duration=20, concurrency=4)
    assert after.versions == {"baseline": 400}


def test_loadgen_is_bounded_by_duration_and_refuses_other_hosts(
    balancer: HAProxyServer,
) -> None:
    """A huge count stops at the duration; a non-local URL is refused outright."""
    started = time.monotonic()
    summary = loadgen.run(balancer.url + "/", count=10**9, duration=0.5, rate=100)
    assert time.monotonic() - started < 3
    assert 0 < summary.requests <= 60
    with pytest.raises(ValueError, match=r"only http://127\.0\.0\.1"):
        loadgen.run("http://example.com/", count=1, duration=1)
