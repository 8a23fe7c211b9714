"""Live: two instrumented apps scraped by a real Prometheus, a bounded burst of
requests, then the source sees exactly the counts and the gate's comparison holds."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

import gatekeeper
from gatekeeper._model import Measurement, Outcome, Query, compare
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import prometheus
from realservers import wait_until
from realservers.prometheus import PrometheusLauncher

pytestmark = pytest.mark.servers

BURST = 50


class App:
    """A tiny instrumented service: ``/`` answers (every ``fail_every``-th request a
    500), ``/metrics`` exposes ``http_requests_total{version, code}``."""

    def __init__(self, version: str, fail_every: int | None) -> None:
        registry = CollectorRegistry()
        requests = Counter(
            "http_requests", "Requests served.", ["version", "code"], registry=registry
        )
        served = 0
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                nonlocal served
                if self.path == "/metrics":
                    body, status = generate_latest(registry), 200
                else:
                    with lock:
                        served += 1
                        failing = fail_every is not None and served % fail_every == 0
                    status = 500 if failing else 200
                    requests.labels(version=version, code=str(status)).inc()
                    body = b"ok\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, App]]:
    started = {"baseline": App("baseline", None), "canary": App("canary", 10)}
    try:
        yield started
    finally:
        for app in started.values():
            app.stop()


PLAN = """
[plan]
name = "live"

[sources.prom]
type = "prometheus"
url = "PROM_URL"

[metrics.error_rate]
source = "prom"
numerator = 'sum(http_requests_total{version="{{variant}}",code="500"}) or vector(0)'
denominator = 'sum(http_requests_total{version="{{variant}}"})'

[[phases]]
name = "strict"
traffic = 10
checkpoints = ["1m"]
gate = ["error_rate < 5%"]

[[phases]]
name = "lenient"
traffic = 10
checkpoints = ["1m"]
gate = ["error_rate < 20%"]
"""


def test_source_sees_what_prometheus_scraped(
    apps: dict[str, App], prometheus_launcher: PrometheusLauncher, tmp_path: Path
) -> None:
    """After a burst, both variants' counts arrive and the canary's 10 % errors fail
    an error-rate < 5 % gate and pass a < 20 % one."""
    server = prometheus_launcher.scraping([app.address for app in apps.values()])
    try:
        with httpx.Client(timeout=5) as client:
            for app in apps.values():
                for _ in range(BURST):  # bounded burst
                    client.get(f"http://{app.address}/")
        source = prometheus.create(
            "prom", {"url": server.url}, PluginContext(base_dir=Path(), env={})
        )

        def measure(text: str, variant: str) -> Measurement:
            query = Query(
                metric="m",
                text=text,
                at=datetime.now(UTC),
                window=timedelta(minutes=1),
                variant=variant,
            )

            async def go() -> Measurement:
                try:
                    return await source.query(query)
                finally:
                    await source.aclose()

            return asyncio.run(go())

        total = 'sum(http_requests_total{version="{{variant}}"})'
        errors = 'sum(http_requests_total{version="{{variant}}",code="500"}) or vector(0)'
        wait_until(
            lambda: all(measure(total, v).value == BURST for v in apps),
            timeout=30,
            interval=0.5,
            what="both apps scraped with the whole burst",
        )
        ratios = {v: (measure(errors, v).value or 0.0) / BURST for v in apps}
        assert ratios == {"baseline": 0.0, "canary": 0.1}
        assert compare(ratios["baseline"], "<", 0.05)
        assert not compare(ratios["canary"], "<", 0.05)

        # The same numbers judged by a real gate, through the public API.
        plan = tmp_path / "gates.toml"
        plan.write_text(PLAN.replace("PROM_URL", server.url))
        strict = gatekeeper.check(plan, "strict")
        lenient = gatekeeper.check(plan, "lenient")
        assert strict.outcome is Outcome.FAIL, strict
        assert lenient.outcome is Outcome.PASS, lenient
        assert strict.verdicts[0].observed == pytest.approx(0.1)
    finally:
        server.stop()
