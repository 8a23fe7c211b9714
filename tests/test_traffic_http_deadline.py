"""The http backend's ``timeout`` bounds each whole request: a balancer API that
drips one byte every 0.5 s (headers, body, an endless chunked body) is cut off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import TrafficError
from gatekeeper.traffic import http
from test_source_faulty_answers import DripServer


@pytest.fixture(params=["headers", "body", "chunked"])
def drip(request: pytest.FixtureRequest) -> Iterator[DripServer]:
    server = DripServer(request.param)
    try:
        yield server
    finally:
        server.stop()


def test_timeout_bounds_a_slow_drip(drip: DripServer) -> None:
    """``timeout = "2s"`` ends a dripping answer in about 2 s (per-read time-outs
    alone would wait as long as the server keeps dripping)."""
    backend = http.create(
        {"url": drip.url + "/split", "timeout": "2s", "attempts": 1},
        PluginContext(base_dir=Path(), env={}),
    )
    started = time.monotonic()
    try:
        with pytest.raises(TrafficError, match="within 2s"):
            backend.get_split()
    finally:
        backend.close()
    elapsed = time.monotonic() - started
    print(f"traffic http slow-drip {drip.mode}: timeout 2s, ended after {elapsed:.2f}s")
    assert 1.8 <= elapsed < 2.6
